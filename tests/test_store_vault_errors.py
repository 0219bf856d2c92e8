"""Vault answers a dev server cannot produce: standby 429, 412, uninitialised, odd 5xx.

A scripted stub speaks just enough of the Vault HTTP API (over real loopback HTTP, through
hvac) to replay those answers, so the mapping of :mod:`impromptu_ops.store.vault_errors`
is checked end to end: the right error class, exit code, one line, a useful hint, and 412
retried with backoff before giving up.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from impromptu_ops.errors import CasConflict, SecretNotFound, StoreError, StoreUnavailable
from impromptu_ops.secret import Secret
from impromptu_ops.store import vault_errors
from impromptu_ops.store.vault import VaultStore
from impromptu_ops.store.vault_auth import VaultAuth

DATA = "/v1/secret/data/impromptu/a1/impromptu-api-key"
META = "/v1/secret/metadata/impromptu/a1/impromptu-api-key"
OK_READ = {"data": {"data": {"value": "value-from-stub"},
                    "metadata": {"version": 3, "created_time": "2026-01-01T00:00:00Z"}}}


class StubVault:
    """Replays scripted ``(status, body)`` answers per ``METHOD path``; records requests."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, Any]]] = {}
        self.seen: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                key = f"{self.command} {self.path.split('?')[0]}"
                stub.seen.append(key)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                queue = stub.script.get(key) or [(404, {"errors": []})]
                status, body = queue.pop(0) if len(queue) > 1 else queue[0]
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_LIST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.script["GET /v1/auth/token/lookup-self"] = [
            (200, {"data": {"ttl": 0, "renewable": False}})]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def stub() -> Iterator[StubVault]:
    s = StubVault()
    try:
        yield s
    finally:
        s.close()


def _store(stub: StubVault, sleeps: list[float] | None = None) -> VaultStore:
    record: list[float] = [] if sleeps is None else sleeps
    return VaultStore(stub.addr, VaultAuth(token=Secret("stub-token-123")), agent="a1",
                      timeout=5, sleep=record.append)


def test_standby_429_is_store_unavailable_standby(stub: StubVault) -> None:
    stub.script[f"GET {DATA}"] = [(429, {"errors": []})]
    stub.script["GET /v1/sys/health"] = [(429, {"initialized": True, "sealed": False,
                                                "standby": True})]
    with pytest.raises(StoreUnavailable) as err:
        _store(stub).read("impromptu-api-key")
    assert err.value.exit_code == 69
    assert "standby" in err.value.diagnostics() and "active node" in err.value.diagnostics()


def test_429_from_an_active_node_is_a_rate_limit(stub: StubVault) -> None:
    stub.script[f"GET {DATA}"] = [(429, {"errors": ["request rate limited"]})]
    stub.script["GET /v1/sys/health"] = [(200, {"initialized": True, "sealed": False})]
    with pytest.raises(StoreUnavailable, match="rate limit"):
        _store(stub).read("impromptu-api-key")


def test_412_is_retried_with_backoff_then_succeeds(stub: StubVault) -> None:
    stub.script[f"GET {DATA}"] = [(412, {"errors": ["required index state not present"]}),
                                  (412, {"errors": ["required index state not present"]}),
                                  (200, OK_READ)]
    sleeps: list[float] = []
    got = _store(stub, sleeps).read("impromptu-api-key")
    assert (got.version, got.value().reveal()) == (3, "value-from-stub")
    assert sleeps == [0.1, 0.2]
    assert stub.seen.count(f"GET {DATA}") == 3


def test_412_forever_gives_up_clearly(stub: StubVault) -> None:
    stub.script[f"GET {DATA}"] = [(412, {"errors": ["required index state not present"]})]
    sleeps: list[float] = []
    with pytest.raises(StoreUnavailable, match="caught up"):
        _store(stub, sleeps).read("impromptu-api-key")
    assert len(sleeps) == 3


def test_uninitialised(stub: StubVault) -> None:
    stub.script[f"GET {DATA}"] = [(503, {"errors": ["Vault is sealed"]})]
    stub.script["GET /v1/sys/health"] = [(501, {"initialized": False, "sealed": True})]
    with pytest.raises(StoreUnavailable, match="uninitialised"):
        _store(stub).read("impromptu-api-key")


def test_server_side_cas_rejection_is_cas_conflict(stub: StubVault) -> None:
    # metadata says version 1 (our pre-check passes), then someone wins the race
    stub.script[f"GET {META}"] = [(200, {"data": {
        "current_version": 1, "max_versions": 10, "created_time": "2026-01-01T00:00:00Z",
        "updated_time": "2026-01-01T00:00:00Z",
        "versions": {"1": {"created_time": "2026-01-01T00:00:00Z", "deletion_time": "",
                           "destroyed": False}}}})]
    stub.script["GET /v1/secret/config"] = [(200, {"data": {"max_versions": 0}})]
    stub.script[f"POST {DATA}"] = [(400, {"errors": [
        "check-and-set parameter did not match the current version"]})]
    with pytest.raises(CasConflict) as err:
        _store(stub).write("impromptu-api-key", {"value": Secret("next-value-123")}, cas=1)
    assert err.value.exit_code == 75


def test_other_5xx_is_a_store_error_with_vaults_words(stub: StubVault) -> None:
    stub.script[f"GET {DATA}"] = [(500, {"errors": ["internal error: storage backend"]})]
    with pytest.raises(StoreError) as err:
        _store(stub).read("impromptu-api-key")
    assert type(err.value) is StoreError and err.value.exit_code == 74
    assert "storage backend" in err.value.diagnostics()


def test_not_found(stub: StubVault) -> None:
    with pytest.raises(SecretNotFound):
        _store(stub).read("impromptu-api-key")


@pytest.mark.parametrize(("status", "body", "state"), [
    (200, {"initialized": True, "sealed": False}, "active"),
    (429, None, "standby"),
    (472, None, "dr-secondary"),
    (473, None, "performance-standby"),
    (501, None, "uninitialised"),
    (503, None, "sealed"),
    (503, {"initialized": False}, "uninitialised"),
    (200, {"sealed": True}, "sealed"),
    (418, None, "unhealthy (HTTP 418)"),
])
def test_health_states(status: int, body: dict[str, Any] | None, state: str) -> None:
    assert vault_errors.health_state(status, body) == state
    error = vault_errors.unavailable_for(state, "http://v")
    assert (error is None) == (state in ("active", "performance-standby"))
