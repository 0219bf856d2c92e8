"""Vault-only behaviour against a real OpenBao dev server.

Ambiguous writes (a proxy that lets the write land but drops the answer, or drops the
request itself), sealed and unreachable servers, token TTL and renewal, AppRole (plain
and response-wrapped secret_id), the least-privilege policies, and hvac's metadata trap.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.errors import ConfigError, StoreError, StoreUnavailable
from impromptu_ops.secret import Secret
from impromptu_ops.store.factory import open_store
from impromptu_ops.store.vault import VaultStore
from impromptu_ops.store.vault_auth import VaultAuth
from tests.fixtures_vault import BaoServer


class DroppingProxy:
    """A loopback TCP proxy that can lose the next KV write's answer (or the write).

    ``arm("answer")``: forward the next ``POST /v1/<mount>/data/`` but never send back
    Vault's answer, so the write lands and the client times out. ``arm("request")``:
    swallow that request, so it never lands and the client times out. ``arm("late")``: hold
    it back and deliver it just before the client's next write (the retry), so the first
    attempt lands late, after the read-back said "not landed".
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)  # so the accept loop notices close() promptly
        self.addr = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode = ""
        self.dropped = 0
        self.held: tuple[socket.socket, bytes] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def arm(self, mode: str) -> None:
        with self._lock:
            self.mode = mode

    def _take(self, data: bytes, upstream: socket.socket) -> str:
        with self._lock:
            if b"POST /v1/secret/data/" not in data:
                return ""
            if self.held is not None:
                # "late": the held first attempt reaches Vault just before the retry
                held_upstream, held_data = self.held
                self.held = None
                held_upstream.sendall(held_data)
                time.sleep(0.3)
                return ""
            if self.mode:
                mode, self.mode = self.mode, ""
                self.dropped += 1
                if mode == "late":
                    self.held = (upstream, data)
                return mode
        return ""

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.upstream)
            self._socks += [client, upstream]
            t = threading.Thread(target=self._pipe, args=(client, upstream), daemon=True)
            self._threads.append(t)
            t.start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        mute = False
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        mode = self._take(data, upstream)
                        if mode in ("request", "late"):
                            mute = mute or mode == "late"
                            continue  # swallowed (or held back for later)
                        mute = mute or mode == "answer"
                        upstream.sendall(data)
                    elif not mute:
                        client.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.close()
        for t in self._threads:
            t.join(timeout=2)


@pytest.fixture
def proxy(bao_server: BaoServer) -> Iterator[DroppingProxy]:
    p = DroppingProxy(bao_server.addr)
    try:
        yield p
    finally:
        p.close()


def _store_via(addr: str, token: str, agent: str, timeout: float = 1.0) -> VaultStore:
    return VaultStore(addr, VaultAuth(token=Secret(token)), agent=agent, timeout=timeout)


def test_ambiguous_write_that_landed_is_read_back_not_repeated(
        bao_server: BaoServer, proxy: DroppingProxy, unique_agent: str) -> None:
    store = _store_via(proxy.addr, bao_server.root_token, unique_agent)
    store.write("impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    proxy.arm("answer")
    assert store.write("impromptu-api-key", {"value": Secret("value-two-222")}, cas=1) == 2
    assert proxy.dropped == 1
    meta = store.metadata("impromptu-api-key")
    assert meta.current_version == 2  # no duplicate version 3
    read = store.read("impromptu-api-key")
    assert read.value().reveal() == "value-two-222"
    assert set(read.data) == {"value"}  # the write id never shows


def test_ambiguous_write_that_did_not_land_is_retried_under_cas(
        bao_server: BaoServer, proxy: DroppingProxy, unique_agent: str) -> None:
    store = _store_via(proxy.addr, bao_server.root_token, unique_agent)
    store.write("impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    proxy.arm("request")
    assert store.write("impromptu-api-key", {"value": Secret("value-two-222")}, cas=1) == 2
    assert proxy.dropped == 1
    assert store.metadata("impromptu-api-key").current_version == 2


def test_ambiguous_write_that_lands_late_is_still_ours(
        bao_server: BaoServer, proxy: DroppingProxy, unique_agent: str) -> None:
    store = _store_via(proxy.addr, bao_server.root_token, unique_agent)
    store.write("impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    proxy.arm("late")
    assert store.write("impromptu-api-key", {"value": Secret("value-two-222")}, cas=1) == 2
    assert proxy.dropped == 1
    meta = store.metadata("impromptu-api-key")
    assert meta.current_version == 2  # the retry lost its CAS to our own first attempt
    assert store.read("impromptu-api-key").value().reveal() == "value-two-222"


def test_unreachable_is_one_clear_error(unique_agent: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave the block
    store = _store_via(f"http://127.0.0.1:{port}", "whatever-token", unique_agent)
    for call in (store.check, lambda: store.read("impromptu-api-key"),
                 lambda: store.write("impromptu-api-key", {"value": Secret("v-123456")}, 0)):
        with pytest.raises(StoreUnavailable) as err:
            call()
        assert err.value.exit_code == 69
        assert "unreachable" in err.value.diagnostics()
        assert "\n" not in err.value.diagnostics()


def test_sealed_is_one_clear_error(fresh_bao_server: BaoServer, unique_agent: str) -> None:
    store = open_store(fresh_bao_server.settings(unique_agent))
    store.write("impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    fresh_bao_server.seal()
    for call in (store.check, lambda: store.read("impromptu-api-key")):
        with pytest.raises(StoreUnavailable) as err:
            call()
        assert err.value.exit_code == 69
        assert "sealed" in err.value.diagnostics()


def test_uninitialised_is_one_clear_error(uninitialised_bao: BaoServer,
                                         unique_agent: str) -> None:
    store = _store_via(uninitialised_bao.addr, "no-token-exists-yet", unique_agent)
    for call in (store.check, lambda: store.read("impromptu-api-key"),
                 lambda: store.write("impromptu-api-key", {"value": Secret("v-123456")}, 0)):
        with pytest.raises(StoreUnavailable) as err:
            call()
        assert err.value.exit_code == 69
        line = err.value.diagnostics()
        assert "uninitialised" in line and "\n" not in line
        assert "bao operator init" in line


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_standby_node_is_one_clear_error_and_the_active_node_serves(
        tmp_path: Path, unique_agent: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real two-node Raft cluster: the standby answers ``sys/health`` with 429.

    ``check`` (what ``secrets check`` and ``health`` run) names the standby and points at the
    active node: the store relies on reading its own writes back, which a standby may not
    give. The active node passes the same check.
    """
    from impromptu_ops.cli.main import run
    from tests.fixtures_raft import start_raft_cluster

    cluster = start_raft_cluster(tmp_path / "raft", size=2)
    try:
        leader = cluster.wait_for_leader()
        standby = next(n for n in cluster.nodes if n is not leader)
        assert "active" in _store_via(leader.addr, cluster.root_token, unique_agent
                                      ).check().summary
        with pytest.raises(StoreUnavailable) as err:
            _store_via(standby.addr, cluster.root_token, unique_agent).check()
        assert err.value.exit_code == 69
        assert "standby" in err.value.diagnostics() and "active node" in err.value.diagnostics()
        monkeypatch.setenv("VAULT_ADDR", standby.addr)
        monkeypatch.setenv("VAULT_TOKEN", cluster.root_token)
        code = run(["secrets", "check", "--agent", unique_agent])
        out, errout = capsys.readouterr()
        assert (code, out) == (69, "")
        assert errout.count("\n") == 1 and "standby" in errout
        assert cluster.root_token not in errout
    finally:
        cluster.stop()


def test_heartbeat_policy_reads_only_the_platform_key(
        bao_server: BaoServer, unique_agent: str) -> None:
    root = open_store(bao_server.settings(unique_agent))
    root.write("impromptu-api-key", {"value": Secret("impr_value-123456")}, cas=0)
    root.write("openrouter-api-key", {"value": Secret("or_value-1234567")}, cas=0)
    hb = open_store(bao_server.settings(unique_agent, bao_server.token_for("heartbeat",
                                                                           unique_agent)))
    assert hb.read("impromptu-api-key").value().reveal() == "impr_value-123456"
    with pytest.raises(StoreError, match="denied"):
        hb.write("impromptu-api-key", {"value": Secret("new-value-999")}, cas=1)
    with pytest.raises(StoreError, match="denied"):
        hb.read("openrouter-api-key")
    with pytest.raises(StoreError, match="denied"):
        hb.list()
    assert root.read("impromptu-api-key").version == 1


def test_rotation_policy_is_confined_to_its_agent(
        bao_server: BaoServer, unique_agent: str) -> None:
    other = unique_agent + "x"
    open_store(bao_server.settings(other)).write(
        "openrouter-api-key", {"value": Secret("other-agent-key-1")}, cas=0)
    token = bao_server.token_for("rotation", unique_agent)
    mine = open_store(bao_server.settings(unique_agent, token))
    assert mine.write("openrouter-api-key", {"value": Secret("mine-key-123456")}, cas=0) == 1
    assert mine.write("openrouter-api-key", {"value": Secret("mine-key-234567")}, cas=1) == 2
    mine.set_custom_metadata("openrouter-api-key", {"rotation": "phase=done"})
    assert mine.list() == ["openrouter-api-key"]
    theirs = open_store(bao_server.settings(other, token))
    with pytest.raises(StoreError, match="denied"):
        theirs.read("openrouter-api-key")
    with pytest.raises(StoreError, match="denied"):
        theirs.write("openrouter-api-key", {"value": Secret("hijack-123456")}, cas=1)
    # rotation may not destroy history
    client = bao_server.client(token)
    with pytest.raises(Exception, match="permission denied"):
        client.secrets.kv.v2.destroy_secret_versions(
            f"impromptu/{unique_agent}/openrouter-api-key", [1])


def test_operator_policy_administers_its_agent_only(
        bao_server: BaoServer, unique_agent: str) -> None:
    token = bao_server.token_for("operator", unique_agent)
    store = open_store(bao_server.settings(unique_agent, token))
    store.write("impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    kv = bao_server.client(token).secrets.kv.v2
    kv.destroy_secret_versions(f"impromptu/{unique_agent}/impromptu-api-key", [1])
    assert store.metadata("impromptu-api-key").versions[0].destroyed
    with pytest.raises(Exception, match="permission denied"):
        kv.read_secret_version(f"impromptu/{unique_agent}z/impromptu-api-key",
                               raise_on_deleted_version=True)


def test_custom_metadata_does_not_reset_delete_version_after(
        bao_server: BaoServer, unique_agent: str) -> None:
    store = open_store(bao_server.settings(unique_agent))
    store.write("impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    path = f"impromptu/{unique_agent}/impromptu-api-key"
    client = bao_server.client()
    client.adapter.post(f"/v1/secret/metadata/{path}", json={"delete_version_after": "72h"})
    store.set_custom_metadata("impromptu-api-key", {"rotation": "phase=done"})
    store.set_max_versions("impromptu-api-key", 5)
    raw = client.secrets.kv.v2.read_secret_metadata(path)["data"]
    assert raw["delete_version_after"] == "72h0m0s"
    assert raw["custom_metadata"] == {"rotation": "phase=done"}
    # the trap we avoid: hvac's own helper silently resets it
    client.secrets.kv.v2.update_metadata(path, custom_metadata={"a": "b"})
    assert client.secrets.kv.v2.read_secret_metadata(path)["data"][
        "delete_version_after"] == "0s"


def test_token_renewed_when_short(bao_server: BaoServer, unique_agent: str) -> None:
    token = bao_server.client().auth.token.create(policies=["default"], ttl="20s",
                                                  explicit_max_ttl="1h", renewable=True)
    store = open_store(bao_server.settings(unique_agent, token["auth"]["client_token"],
                                           vault_min_token_ttl=60))
    status = store.check()
    assert status.token_ttl is not None and status.token_ttl >= 60
    assert f"token ttl {status.token_ttl}s" in status.summary


def test_token_at_max_ttl_is_refused_clearly(bao_server: BaoServer, unique_agent: str) -> None:
    token = bao_server.client().auth.token.create(policies=["default"], ttl="20s",
                                                  explicit_max_ttl="30s", renewable=True)
    store = open_store(bao_server.settings(unique_agent, token["auth"]["client_token"],
                                           vault_min_token_ttl=120))
    with pytest.raises(StoreError, match="max TTL") as err:
        store.check()
    assert err.value.exit_code == 74


def test_approle_login(bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> None:
    open_store(bao_server.settings(unique_agent)).write(
        "impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    role_id, secret_file = bao_server.approle("heartbeat", unique_agent, tmp_path)
    settings = bao_server.settings(unique_agent, with_token=False, vault_role_id=role_id,
                                   vault_secret_id_file=secret_file)
    assert open_store(settings).read("impromptu-api-key").value().reveal() == "value-one-111"


def test_approle_logs_in_again_when_its_token_nears_max_ttl(
        bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> None:
    """A long-running job on AppRole: renewal cannot pass the token's max TTL, so the store
    logs in again with its secret_id instead of failing mid-job."""
    open_store(bao_server.settings(unique_agent)).write(
        "impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    role_id, secret_file = bao_server.approle("heartbeat", unique_agent, tmp_path,
                                              token_ttl="12s", token_max_ttl="12s",
                                              secret_id_num_uses=0)
    settings = bao_server.settings(unique_agent, with_token=False, vault_role_id=role_id,
                                   vault_secret_id_file=secret_file, vault_min_token_ttl=9)
    store = open_store(settings)
    assert store.read("impromptu-api-key").version == 1
    assert isinstance(store, VaultStore)
    first = store._client().token  # the test looks inside: which token is in use
    time.sleep(4)  # 12 s max TTL: about 8 s left, below the 9 s floor
    status = store.check()
    assert status.token_ttl is not None and status.token_ttl >= 9
    assert store._client().token != first  # a fresh login, not a renewal
    assert store.read("impromptu-api-key").value().reveal() == "value-one-111"


def test_approle_wrapped_secret_id_is_single_use(
        bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> None:
    open_store(bao_server.settings(unique_agent)).write(
        "impromptu-api-key", {"value": Secret("value-one-111")}, cas=0)
    role_id, wrapped_file = bao_server.approle("heartbeat", unique_agent, tmp_path,
                                               wrapped=True)
    settings = bao_server.settings(unique_agent, with_token=False, vault_role_id=role_id,
                                   vault_secret_id_file=wrapped_file,
                                   vault_secret_id_wrapped=True)
    assert open_store(settings).read("impromptu-api-key").value().reveal() == "value-one-111"
    with pytest.raises(StoreError):  # the wrapping token is spent
        open_store(settings).read("impromptu-api-key")


def test_credential_file_readable_by_others_is_refused(
        bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(bao_server.root_token)
    token_file.chmod(0o644)
    settings = bao_server.settings(unique_agent, with_token=False,
                                   vault_token_file=token_file)
    with pytest.raises(ConfigError, match="readable by other"):
        open_store(settings).read("impromptu-api-key")
    token_file.chmod(0o600)
    with pytest.raises(StoreError):  # now readable: a plain not-found
        open_store(settings).read("impromptu-api-key")


def test_mount_and_prefix_are_configurable_and_the_policy_follows(
        bao_server: BaoServer, unique_agent: str) -> None:
    """A KV v2 mount of another name and a deeper prefix: secrets land exactly there, and
    the rendered rotation policy grants that path (and still nothing of another agent)."""
    from impromptu_ops.store.policies import render_policy
    from tests.fixtures_vault import POLICIES

    mount, prefix = f"kv{unique_agent}", "team/impromptu"
    root = bao_server.client()
    root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    custom: dict[str, Any] = {"vault_mount": mount, "vault_prefix": prefix}
    store = open_store(bao_server.settings(unique_agent, **custom))
    deadline = time.monotonic() + 10
    while True:  # a new KV v2 mount upgrades itself for a moment before it serves
        try:
            assert store.write("openrouter-api-key",
                               {"value": Secret("value-one-111")}, cas=0) == 1
            break
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    raw = root.secrets.kv.v2.read_secret_version(
        f"{prefix}/{unique_agent}/openrouter-api-key", mount_point=mount,
        raise_on_deleted_version=True)
    assert raw["data"]["data"]["value"] == "value-one-111"
    assert store.description.endswith(f"{mount}/{prefix}/{unique_agent}")
    policy = render_policy(POLICIES, "rotation", unique_agent, mount, prefix)
    name = f"impromptu-rotation-{unique_agent}-custom"
    root.sys.create_or_update_policy(name, policy)
    token = root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    mine = open_store(bao_server.settings(unique_agent, token, **custom))
    assert mine.read("openrouter-api-key").value().reveal() == "value-one-111"
    assert mine.write("openrouter-api-key", {"value": Secret("value-two-222")}, cas=1) == 2
    with pytest.raises(StoreError, match="denied"):
        open_store(bao_server.settings(unique_agent + "x", token, **custom)).read(
            "openrouter-api-key")
    with pytest.raises(StoreError, match="denied"):  # the default mount is not granted
        open_store(bao_server.settings(unique_agent, token)).read("openrouter-api-key")
