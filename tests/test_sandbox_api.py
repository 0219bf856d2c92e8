"""The sandbox's platform endpoints over real HTTP: routing, auth, shapes, aliases, errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from impromptu_ops import contract
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_sandbox import SandboxFactory, solve


def agent(sb: SandboxServer, **kw: Any) -> tuple[str, dict[str, str]]:
    made = sb.control("POST", "agents", kw)
    return made["agentId"], {"Authorization": f"Bearer {made['apiKey']}"}


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) >= {"error", "requestId"}
    err: dict[str, Any] = body["error"]
    assert set(err) >= {"code", "message", "hint", "retryable"}
    entry = contract.ERROR_CODES[err["code"]]
    assert resp.status_code == entry.status
    assert err["retryable"] is entry.retryable
    return err


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_both_path_generations_reach_the_same_handlers(sandbox: SandboxServer,
                                                        prefix: str) -> None:
    agent_id, auth = agent(sandbox, name="Both")
    resp = httpx.get(f"{sandbox.base_url}{prefix}/agent/heartbeat", headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert body == {"agentId": agent_id, "name": "Both", "tier": "REGISTERED",
                    "reputation": 0, "tokenBalance": "0", "budgetBalance": 100,
                    "unreadNotifications": 0}
    opp = httpx.get(f"{sandbox.base_url}{prefix}/agent/discover/opportunities", headers=auth)
    action = opp.json()["humanSignal"][0]["action"]
    assert action["path"] == f"{prefix}/agent/reprompt"
    assert action["method"] == "POST" and "nodeId" in action["body"]


def test_health_and_unknown_path(sandbox: SandboxServer) -> None:
    assert httpx.get(sandbox.base_url + "/health").json() == {"status": "ok"}
    resp = httpx.get(sandbox.base_url + "/v1/agent/nope")
    assert error_of(resp)["code"] == "NOT_FOUND"
    assert resp.headers["X-Request-Id"] == resp.json()["requestId"]


def test_auth_failures_are_401(sandbox: SandboxServer) -> None:
    url = sandbox.base_url + "/v1/agent/budget"
    assert error_of(httpx.get(url))["code"] == "UNAUTHORIZED"
    bogus = {"Authorization": "Bearer impr_sk_" + "A" * 40}
    assert error_of(httpx.get(url, headers=bogus))["code"] == "UNAUTHORIZED"
    _, auth = agent(sandbox, keyExpiresInDays=-1)
    err = error_of(httpx.get(url, headers=auth))
    assert err["code"] == "UNAUTHORIZED" and "expired" in err["message"]


def test_pending_account_only_profile_and_accept_tos(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox, status="PENDING")
    base = sandbox.base_url + "/v1/agent"
    for path in ("/heartbeat", "/budget", "/notifications", "/security-status"):
        assert error_of(httpx.get(base + path, headers=auth))["code"] == "ACCOUNT_NOT_ACTIVE"
    profile = httpx.get(base + "/profile", headers=auth)
    assert profile.status_code == 200 and profile.json()["status"] == "PENDING"
    accepted = httpx.post(base + "/accept-tos", headers=auth)
    assert accepted.status_code == 200 and accepted.json()["status"] == "ACTIVE"
    assert httpx.get(base + "/heartbeat", headers=auth).status_code == 200


def test_documented_fields_of_each_read_endpoint(sandbox: SandboxServer) -> None:
    agent_id, auth = agent(sandbox, tokenBalance="1500", tier="VERIFIED")  # burst 50/s
    sandbox.control("POST", f"agents/{agent_id}/notifications",
                    {"type": "mention", "message": "hi"})
    base = sandbox.base_url + "/v1/agent"
    expect = {
        ("GET", "/notifications"): {"unreadCount", "notifications"},
        ("POST", "/wallet/sync"): {"web3Address", "balance", "pendingCredits", "transactions"},
        ("GET", "/recommendations"): {"recommendations"},
        ("GET", "/budget"): {"balance", "maxBalance", "regenerationRate", "regenerationUnit",
                             "tier", "reputation", "actionCosts"},
        ("GET", "/balance"): {"token", "decimals", "balance", "pending", "vested"},
        ("GET", "/profile"): {"id", "name", "tier", "status", "capabilities", "reputation"},
        ("GET", "/security-status"): {"accountHealthy", "warnings", "daysUntilKeyExpiry"},
        ("GET", "/discover/opportunities"): {"humanSignal", "unanswered", "rising", "active"},
        ("GET", "/models"): {"models", "page", "totalPages"},
    }
    for (method, path), fields in expect.items():
        resp = httpx.request(method, base + path, headers=auth)
        assert resp.status_code == 200, (path, resp.text)
        assert set(resp.json()) >= fields, path
    notes = httpx.get(base + "/notifications?unread=true", headers=auth).json()
    assert notes["unreadCount"] == 1 and notes["notifications"][0]["type"] == "mention"
    wallet = httpx.post(base + "/wallet/sync", headers=auth).json()
    assert wallet["balance"] == {"total": "1500", "available": "1500", "locked": "0"}
    sample = httpx.get(base + "/discover/sample")  # no auth
    assert sample.status_code == 200 and sample.json()["items"]
    models = httpx.get(base + "/models", headers=auth).json()
    assert len(models["models"]) == 10
    rec = httpx.get(base + "/models?recommended=true", headers=auth).json()["models"]
    assert rec and all(m["recommended"] for m in rec)


def test_prompt_reprompt_engage_thread_with_aliases(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox)
    base = sandbox.base_url + "/v1/agent"
    made = httpx.post(base + "/prompt", headers=auth,
                      json={"systemPrompt": "be kind", "initialPrompt": "hello", "title": "T"})
    assert made.status_code == 201
    body = made.json()
    assert body["_fieldMappings"] == {"systemPrompt": "content"}
    node = body["promptId"]
    rep = httpx.post(base + "/reprompt", headers=auth,
                     json={"promptId": node, "message": "and then?"})
    assert rep.status_code == 201
    rbody = rep.json()
    assert rbody["_fieldMappings"] == {"promptId": "nodeId", "message": "prompt"}
    assert rbody["status"] == "completed" and rbody["llmResponse"] and rbody["budgetSpent"] == 10
    like = httpx.post(base + "/engage", headers=auth, json={"nodeId": node, "type": "BOOKMARK"})
    assert like.json()["budgetSpent"] == 2
    thread = httpx.get(f"{base}/content/{rbody['nodeId']}/thread", headers=auth).json()
    assert [a["nodeId"] for a in thread["ancestors"]] == [node]
    budget = httpx.get(base + "/budget", headers=auth).json()["balance"]
    assert budget == 100 - 10 - 10 - 2


def test_not_found_node_validation_and_tier(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox)
    base = sandbox.base_url + "/v1/agent"
    missing = httpx.post(base + "/reprompt", headers=auth, json={"nodeId": "nope", "prompt": "x"})
    assert error_of(missing)["code"] == "VAL_001"
    assert error_of(httpx.get(base + "/content/nope/thread", headers=auth))["code"] == "VAL_001"
    bad = httpx.post(base + "/engage", headers=auth, json={"type": "HUG"})
    err = error_of(bad)
    assert err["code"] == "VALIDATION_ERROR" and set(err["fields"]) == {"type", "nodeId"}
    not_json = httpx.post(base + "/prompt", headers=auth, content=b"{nope")
    assert error_of(not_json)["code"] == "VALIDATION_ERROR"
    high = httpx.post(base + "/prompt", headers=auth,
                      json={"content": "c", "initialPrompt": "p",
                            "modelConfigId": "x-ai/grok-4"})
    assert error_of(high)["code"] == "AUTHZ_001"
    budget = httpx.get(base + "/budget", headers=auth).json()["balance"]
    assert budget == 100  # refused requests cost nothing


def test_budget_exhaustion_and_hourly_regeneration(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox, budget=15)
    base = sandbox.base_url + "/v1/agent"
    body = {"content": "c", "initialPrompt": "p"}
    assert httpx.post(base + "/prompt", headers=auth, json=body).status_code == 201
    short = httpx.post(base + "/prompt", headers=auth, json=body)
    err = error_of(short)
    assert err["code"] == "BUDG_001" and "hour" in err["hint"]
    # REGISTERED regenerates 10/h: one simulated hour later the prompt fits again.
    sandbox.control("POST", "clock", {"offsetSeconds": 3600})
    assert httpx.get(base + "/budget", headers=auth).json()["balance"] == 15
    assert httpx.post(base + "/prompt", headers=auth, json=body).status_code == 201
    sandbox.control("POST", "clock", {"offsetSeconds": 100 * 3600})
    assert httpx.get(base + "/budget", headers=auth).json()["balance"] == 100  # capped


def test_security_status_warnings(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox, budget=5, keyExpiresInDays=2.5)
    status = httpx.get(sandbox.base_url + "/v1/agent/security-status", headers=auth).json()
    kinds = {w["type"]: w["severity"] for w in status["warnings"]}
    assert kinds == {"KEY_EXPIRY": "critical", "BUDGET_LOW": "warning"}
    assert status["daysUntilKeyExpiry"] == 2 and status["accountHealthy"] is False
    _, fresh = agent(sandbox)
    ok = httpx.get(sandbox.base_url + "/v1/agent/security-status", headers=fresh).json()
    assert ok == {"accountHealthy": True, "warnings": [], "daysUntilKeyExpiry": 89}


def test_credentials_store_list_delete(sandbox: SandboxServer) -> None:
    _, auth = agent(sandbox)
    url = sandbox.base_url + "/v1/agent/credentials"
    put = httpx.put(url, headers=auth, json={"provider": "openrouter", "apiKey": "sk-or-v1-x" * 3})
    assert put.status_code == 201
    cred_id = put.json()["id"]
    listed = httpx.get(url, headers=auth).json()["credentials"]
    assert listed == [{"id": cred_id, "provider": "openrouter", "isActive": True,
                       "lastUsed": None}]
    assert "sk-or-v1-x" not in (sandbox.state_dir / "state.json").read_text()
    assert error_of(httpx.put(url, headers=auth, json={"provider": "x"}))["code"] == \
        "VALIDATION_ERROR"
    assert httpx.delete(url, headers=auth, params={"id": cred_id}).status_code == 200
    assert error_of(httpx.delete(url, headers=auth, params={"id": cred_id}))["code"] == \
        "NOT_FOUND"


def test_body_cap(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(max_body_bytes=100)
    resp = httpx.post(sb.base_url + "/v1/agents/register", content=b"x" * 1000)
    assert error_of(resp)["code"] == "VALIDATION_ERROR"


def test_every_contract_error_code_is_reachable(sandbox_factory: SandboxFactory) -> None:
    """A code added to the contract fails here until the sandbox can answer it."""
    sb = sandbox_factory(payment_mode="upfront")
    seen: set[str] = set()

    def see(resp: httpx.Response) -> None:
        seen.add(error_of(resp)["code"])

    api, base = sb.base_url, sb.base_url + "/v1/agent"
    see(httpx.get(base + "/budget"))  # UNAUTHORIZED
    _, pending = agent(sb, status="PENDING")
    see(httpx.get(base + "/budget", headers=pending))  # ACCOUNT_NOT_ACTIVE
    _, auth = agent(sb, budget=0, tier="VERIFIED")
    see(httpx.post(base + "/prompt", headers=auth, json={
        "content": "c", "initialPrompt": "p", "modelConfigId": "x-ai/grok-4"}))  # AUTHZ_001
    see(httpx.get(base + "/content/nope/thread", headers=auth))  # VAL_001
    see(httpx.get(base + "/nope", headers=auth))  # NOT_FOUND
    see(httpx.post(base + "/engage", headers=auth, json={}))  # VALIDATION_ERROR
    see(httpx.post(base + "/prompt", headers=auth,
                   json={"content": "c", "initialPrompt": "p"}))  # BUDG_001
    assert httpx.post(base + "/keys", headers=auth).status_code == 201
    see(httpx.post(base + "/keys", headers=auth))  # KEY_LIMIT
    _, lone = agent(sb, tier="VERIFIED")
    lone_id = httpx.get(base + "/keys", headers=lone).json()["keys"][0]["id"]
    see(httpx.delete(f"{base}/keys/{lone_id}", headers=lone))  # LAST_KEY
    _, burst = agent(sb)
    with httpx.Client(headers=burst) as client:
        for _ in range(contract.TIERS["REGISTERED"].burst_per_second + 1):
            last = client.get(base + "/budget")
    see(last)  # RATE_001
    daily_id, daily = agent(sb)
    sb.control("PATCH", f"agents/{daily_id}",
               {"dailyUsed": contract.TIERS["REGISTERED"].actions_per_day})
    see(httpx.get(base + "/budget", headers=daily))  # RATE_003
    reg = {"name": "Codes", "acceptTos": True}
    see(httpx.post(api + "/v1/agents/register", json=reg))  # POW_REQUIRED
    see(httpx.post(api + "/v1/agents/register",
                   json={**reg, "pow": {"chainId": "x", "nonces": []}}))  # POW_INVALID
    chal = httpx.post(api + "/v1/agents/register/challenge").json()
    proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
    see(httpx.post(api + "/v1/agents/register", json={**reg, "pow": proof}))  # PAYMENT_REQ.
    see(httpx.post(api + "/v1/agents/register",
                   json={**reg, "pow": proof, "payment": {"txHash": "0x0"}}))  # PAYMENT_INV.
    paid = "0x" + "cd" * 32
    sb.control("POST", "payments", {"txHash": paid, "amount": str(10**20)})
    assert httpx.post(api + "/v1/agents/register",
                      json={**reg, "pow": proof, "payment": {"txHash": paid}}).status_code == 201
    see(httpx.post(api + "/v1/agents/register",
                   json={**reg, "name": "Again", "pow": proof}))  # POW_REPLAYED
    chal2 = httpx.post(api + "/v1/agents/register/challenge").json()
    proof2 = {"chainId": chal2["chainId"], "nonces": solve(chal2)}
    see(httpx.post(api + "/v1/agents/register", json={
        **reg, "name": "Codes2", "pow": proof2, "payment": {"txHash": paid}}))  # PAYMENT_REPL.
    chal3 = httpx.post(api + "/v1/agents/register/challenge").json()
    sb.control("POST", "clock", {"offsetSeconds": contract.POW_EXPIRY_SECONDS + 5})
    see(httpx.post(api + "/v1/agents/register", json={
        **reg, "name": "Codes3", "pow": {"chainId": chal3["chainId"],
                                         "nonces": solve(chal3)}}))  # POW_EXPIRED
    sb.control("POST", "faults", {"path": "/health", "kind": "status", "status": 500})
    see(httpx.get(api + "/health"))  # INTERNAL
    assert seen == set(contract.ERROR_CODES)
