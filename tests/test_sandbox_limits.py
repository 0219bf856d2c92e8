"""Rate limits with their headers, and key management (§5) against the sandbox."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from impromptu_ops import contract
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_sandbox import SandboxFactory


def agent(sb: SandboxServer, **kw: Any) -> tuple[str, dict[str, str]]:
    made = sb.control("POST", "agents", kw)
    return made["agentId"], {"Authorization": f"Bearer {made['apiKey']}"}


def code(resp: httpx.Response) -> str:
    err = resp.json()["error"]
    assert resp.status_code == contract.ERROR_CODES[err["code"]].status
    return str(err["code"])


def next_midnight_utc(now: float) -> int:
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def test_rate_headers_count_down_and_heartbeat_is_free(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox)
    url = sandbox.base_url + "/v1/agent/budget"
    first = httpx.get(url, headers=auth)
    limit = contract.TIERS["REGISTERED"].actions_per_day
    assert first.headers["X-RateLimit-Limit"] == str(limit)
    assert first.headers["X-RateLimit-Remaining"] == str(limit - 1)
    assert int(first.headers["X-RateLimit-Reset"]) == next_midnight_utc(time.time())
    beat = httpx.get(sandbox.base_url + "/v1/agent/heartbeat", headers=auth)
    assert beat.status_code == 200  # shows the quota, uses none of it
    assert beat.headers["X-RateLimit-Remaining"] == str(limit - 1)
    second = httpx.get(url, headers=auth)
    assert second.headers["X-RateLimit-Remaining"] == str(limit - 2)


def test_burst_limit_is_rate_001_with_retry_after(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox)
    burst = contract.TIERS["REGISTERED"].burst_per_second
    url = sandbox.base_url + "/v1/agent/budget"
    with httpx.Client(headers=auth) as client:
        answers = [client.get(url) for _ in range(burst + 1)]
        # heartbeat is not rate-counted: it still answers inside the burst
        assert client.get(sandbox.base_url + "/v1/agent/heartbeat").status_code == 200
    assert [r.status_code for r in answers[:burst]] == [200] * burst
    last = answers[-1]
    assert code(last) == "RATE_001" and last.json()["error"]["retryable"] is True
    assert last.headers["Retry-After"] == "1"
    assert last.headers["X-RateLimit-Remaining"] == "0"
    time.sleep(1.05)
    assert httpx.get(url, headers=auth).status_code == 200


def test_daily_quota_is_rate_003_until_midnight(sandbox: SandboxServer) -> None:
    agent_id, auth = agent(sandbox)
    limit = contract.TIERS["REGISTERED"].actions_per_day
    sandbox.control("PATCH", f"agents/{agent_id}", {"dailyUsed": limit - 1})
    url = sandbox.base_url + "/v1/agent/budget"
    ok = httpx.get(url, headers=auth)
    assert ok.headers["X-RateLimit-Remaining"] == "0"
    over = httpx.get(url, headers=auth)
    assert code(over) == "RATE_003" and over.json()["error"]["retryable"] is False
    reset = int(over.headers["X-RateLimit-Reset"])
    assert reset == next_midnight_utc(time.time())
    assert int(over.headers["Retry-After"]) > 0
    # the next UTC day on the simulated clock: the quota is fresh
    sandbox.control("POST", "clock", {"offsetSeconds": reset - time.time() + 5})
    assert httpx.get(url, headers=auth).status_code == 200


def test_key_rotation_lifecycle(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox, tier="VERIFIED")
    url = sandbox.base_url + "/v1/agent/keys"
    keys = httpx.get(url, headers=auth).json()["keys"]
    assert len(keys) == 1 and keys[0]["status"] == "active"
    assert set(keys[0]) == {"id", "prefix", "createdAt", "lastUsedAt", "expiresAt", "status"}
    old_id = keys[0]["id"]
    assert code(httpx.delete(f"{url}/{old_id}", headers=auth)) == "LAST_KEY"
    made = httpx.post(url, headers={**auth, contract.IDEMPOTENCY_HEADER: "rot-1"}, json={})
    assert made.status_code == 201
    new = made.json()
    assert contract.API_KEY_RE.match(new["apiKey"]) and new["expiresAt"]
    replay = httpx.post(url, headers={**auth, contract.IDEMPOTENCY_HEADER: "rot-1"}, json={})
    assert replay.status_code == 201 and replay.json() == new
    conflict = httpx.post(url, headers={**auth, contract.IDEMPOTENCY_HEADER: "rot-1"},
                          json={"expiresInDays": 5})
    assert code(conflict) == "VALIDATION_ERROR"
    assert code(httpx.post(url, headers=auth, json={})) == "KEY_LIMIT"
    new_auth = {"Authorization": f"Bearer {new['apiKey']}"}
    revoked = httpx.delete(f"{url}/{old_id}", headers=new_auth)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert code(httpx.get(url, headers=auth)) == "UNAUTHORIZED"
    statuses = {k["id"]: k["status"] for k in httpx.get(url, headers=new_auth).json()["keys"]}
    assert statuses == {old_id: "revoked", new["id"]: "active"}
    assert code(httpx.delete(f"{url}/key_nope", headers=new_auth)) == "NOT_FOUND"


def test_keys_of_another_agent_are_not_found(sandbox: SandboxServer) -> None:
    _, mine = agent(sandbox)
    _, theirs = agent(sandbox)
    their_id = httpx.get(sandbox.base_url + "/v1/agent/keys", headers=theirs).json()[
        "keys"][0]["id"]
    assert code(httpx.delete(f"{sandbox.base_url}/v1/agent/keys/{their_id}",
                             headers=mine)) == "NOT_FOUND"


def test_expiry_moves_with_the_clock(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox, keyExpiresInDays=10)
    url = sandbox.base_url + "/v1/agent/security-status"
    assert httpx.get(url, headers=auth).json()["daysUntilKeyExpiry"] == 9
    sandbox.control("POST", "clock", {"offsetSeconds": 11 * 86400})
    assert code(httpx.get(url, headers=auth)) == "UNAUTHORIZED"


def test_platform_without_key_management_answers_404(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(key_management=False)
    _, auth = agent(sb)
    resp = httpx.get(sb.base_url + "/v1/agent/keys", headers=auth)
    assert resp.status_code == 404 and code(resp) == "NOT_FOUND"
    assert httpx.post(sb.base_url + "/v1/agent/keys", headers=auth).status_code == 404
