"""Each fault kind, observed on the wire with raw httpx (no client library in between)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from impromptu_ops.sandbox.server import SandboxServer


def fault(sb: SandboxServer, **rule: Any) -> dict[str, Any]:
    made: dict[str, Any] = sb.control("POST", "faults", rule)
    return made


def test_latency(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/health$", kind="latency", delay=0.4)
    start = time.monotonic()
    assert httpx.get(sandbox.base_url + "/health").status_code == 200
    assert time.monotonic() - start >= 0.4
    start = time.monotonic()
    httpx.get(sandbox.base_url + "/health")
    assert time.monotonic() - start < 0.4  # times defaults to 1


def test_status_with_retry_after_seconds_and_times(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/health", kind="status", status=503, retryAfter=7, times=2)
    for _ in range(2):
        resp = httpx.get(sandbox.base_url + "/health")
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "7"
        assert resp.json()["error"]["code"] == "INTERNAL"
        assert resp.json()["error"]["retryable"] is True
    assert httpx.get(sandbox.base_url + "/health").status_code == 200


def test_status_429_with_http_date(sandbox: SandboxServer) -> None:
    date = "Wed, 21 Oct 2037 07:28:00 GMT"
    fault(sandbox, path="/health", kind="status", status=429, retryAfter=date)
    resp = httpx.get(sandbox.base_url + "/health")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == date
    assert resp.json()["error"]["code"] == "RATE_001"


def test_status_with_explicit_code(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/health", kind="status", code="RATE_003", status=429)
    resp = httpx.get(sandbox.base_url + "/health")
    assert resp.json()["error"]["code"] == "RATE_003"


def test_truncate_declares_more_than_it_sends(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/discover/sample", kind="truncate")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(sandbox.base_url + "/v1/agent/discover/sample")
    with httpx.Client() as client:  # the next request works
        assert client.get(sandbox.base_url + "/v1/agent/discover/sample").status_code == 200


def test_malformed_json(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/health", kind="malformed")
    resp = httpx.get(sandbox.base_url + "/health")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)


def test_drop_closes_without_a_response(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/health", kind="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(sandbox.base_url + "/health")
    assert httpx.get(sandbox.base_url + "/health").status_code == 200


def test_nulls(sandbox: SandboxServer) -> None:
    made = sandbox.control("POST", "agents", {})
    auth = {"Authorization": f"Bearer {made['apiKey']}"}
    fault(sandbox, path="/heartbeat", kind="nulls")
    body = httpx.get(sandbox.base_url + "/v1/agent/heartbeat", headers=auth).json()
    assert set(body) >= {"agentId", "tier", "budgetBalance"}
    assert all(v is None for v in body.values())


def test_method_filter_forever_and_clear(sandbox: SandboxServer) -> None:
    fault(sandbox, path="/register$", method="POST", kind="status", status=502, times=None)
    url = sandbox.base_url + "/v1/agents/register"
    for _ in range(3):
        assert httpx.post(url, json={}).status_code == 502
    assert httpx.get(sandbox.base_url + "/health").status_code == 200  # path filter
    # control endpoints are never faulted
    assert len(sandbox.control("GET", "faults")["faults"]) == 1
    assert sandbox.control("DELETE", "faults") == {"cleared": 1}
    assert httpx.post(url, json={}).status_code == 400


def test_bad_rules_are_refused(sandbox: SandboxServer) -> None:
    for rule in ({"kind": "explode"}, {"kind": "status", "path": "("},
                 {"kind": "status", "code": "NOPE"}, {"kind": "latency", "delay": -1},
                 {"kind": "drop", "times": 0}):
        resp = httpx.post(sandbox.root_url + "/_sandbox/faults", json=rule)
        assert resp.status_code == 400 and resp.json()["error"]["fields"], rule


def test_openrouter_paths_can_be_faulted(sandbox: SandboxServer) -> None:
    fault(sandbox, path="^/openrouter/", kind="status", status=500)
    assert httpx.get(sandbox.openrouter_url + "/key").status_code == 500
