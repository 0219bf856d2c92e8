"""The agent's own endpoints (contract §2): health, heartbeat, account, wallet, BYOK, terms.

Owns ``/health``, ``heartbeat`` (authenticated, not rate-counted), ``notifications``,
``wallet/sync``, ``budget``, ``balance``, ``profile`` (works while PENDING),
``security-status``, ``models``, ``credentials`` (PUT/GET/DELETE; only a hash and the last
four characters of a BYOK key are kept; a PUT of the active key again is a no-op, so a
resent PUT does not make a second record) and ``accept-tos`` (works while PENDING). Content
and discovery live in :mod:`.content`, key management in :mod:`.keys`.

[ours] shapes the contract leaves open: amounts are decimal strings of base units;
``balance`` is ``{token, decimals, balance, pending, vested}``; notifications take
``?unread=true``; models page by ``?page=`` (10 per page) and filter ``?recommended=true``.
"""

from __future__ import annotations

import math
from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.access import agent_route
from impromptu_ops.sandbox.accounts import DAY, budget_view, current_budget
from impromptu_ops.sandbox.router import API_ROOT, ApiError, Request, Response, Router, validation
from impromptu_ops.sandbox.state import State, iso, new_id, sha256_hex

MODELS_PER_PAGE = 10
BYOK_PROVIDERS = ("openrouter", "fal")

# A fixed catalogue: ids look like OpenRouter's; minTier gates prompt/reprompt (AUTHZ_001).
MODELS: tuple[dict[str, Any], ...] = tuple(
    {"id": mid, "name": name, "provider": mid.split("/")[0], "recommended": rec,
     "minTier": tier}
    for mid, name, rec, tier in (
        ("anthropic/claude-sonnet-4", "Claude Sonnet 4", True, "REGISTERED"),
        ("anthropic/claude-opus-4", "Claude Opus 4", False, "VERIFIED"),
        ("anthropic/claude-haiku-4", "Claude Haiku 4", True, "REGISTERED"),
        ("openai/gpt-4.1", "GPT-4.1", True, "REGISTERED"),
        ("openai/gpt-4.1-mini", "GPT-4.1 mini", True, "REGISTERED"),
        ("openai/o3", "o3", False, "ESTABLISHED"),
        ("google/gemini-2.5-pro", "Gemini 2.5 Pro", True, "REGISTERED"),
        ("google/gemini-2.5-flash", "Gemini 2.5 Flash", False, "REGISTERED"),
        ("meta-llama/llama-4-maverick", "Llama 4 Maverick", False, "REGISTERED"),
        ("meta-llama/llama-4-scout", "Llama 4 Scout", False, "REGISTERED"),
        ("mistralai/mistral-large", "Mistral Large", False, "REGISTERED"),
        ("mistralai/mistral-small", "Mistral Small", True, "REGISTERED"),
        ("deepseek/deepseek-r1", "DeepSeek R1", False, "ESTABLISHED"),
        ("deepseek/deepseek-chat", "DeepSeek V3", False, "REGISTERED"),
        ("qwen/qwen3-235b", "Qwen3 235B", False, "REGISTERED"),
        ("x-ai/grok-4", "Grok 4", False, "PARTNER"),
        ("cohere/command-r-plus", "Command R+", False, "REGISTERED"),
        ("nousresearch/hermes-3", "Hermes 3", False, "REGISTERED"),
        ("microsoft/phi-4", "Phi-4", False, "REGISTERED"),
        ("amazon/nova-pro", "Nova Pro", False, "REGISTERED"),
        ("perplexity/sonar", "Sonar", False, "REGISTERED"),
        ("ai21/jamba-large", "Jamba Large", False, "REGISTERED"),
    )
)
TIER_ORDER = tuple(contract.TIERS)


def tier_allows(agent_tier: str, needed: str) -> bool:
    return TIER_ORDER.index(agent_tier) >= TIER_ORDER.index(needed)


def _agent(state: State, req: Request) -> dict[str, Any]:
    agent: dict[str, Any] = state.data["agents"][req.agent_id]
    return agent


def _unread(agent: dict[str, Any]) -> int:
    return sum(1 for n in agent["notifications"] if not n.get("read"))


def security_status(state: State, agent: dict[str, Any], key_id: str) -> dict[str, Any]:
    """``{accountHealthy, warnings[{type, severity, message}], daysUntilKeyExpiry}``."""
    cfg = state.config
    key = state.data["keys"][key_id]
    days_left = math.floor((key["expiresAt"] - state.now()) / DAY)
    warnings: list[dict[str, str]] = []
    if days_left <= cfg.key_expiry_warning_days:
        warnings.append({"type": "KEY_EXPIRY",
                         "severity": "critical" if days_left <= 3 else "warning",
                         "message": f"the API key expires in {days_left} days"})
    budget = current_budget(state, agent)
    maximum = contract.TIERS[agent["tier"]].budget
    if budget < maximum * cfg.budget_low_fraction:
        warnings.append({"type": "BUDGET_LOW", "severity": "warning",
                         "message": f"budget {budget} of {maximum}"})
    return {"accountHealthy": not any(w["severity"] == "critical" for w in warnings),
            "warnings": warnings, "daysUntilKeyExpiry": days_left}


def install(router: Router, state: State) -> None:
    def health(req: Request) -> Response:
        return Response(200, {"status": "ok"})

    def heartbeat(req: Request) -> Response:
        agent = _agent(state, req)
        return Response(200, {
            "agentId": agent["id"], "name": agent["name"], "tier": agent["tier"],
            "reputation": agent["reputation"], "tokenBalance": agent["tokenBalance"],
            "budgetBalance": current_budget(state, agent),
            "unreadNotifications": _unread(agent)})

    def notifications(req: Request) -> Response:
        agent = _agent(state, req)
        notes = agent["notifications"]
        if req.query.get("unread", "").lower() == "true":
            notes = [n for n in notes if not n.get("read")]
        return Response(200, {
            "unreadCount": _unread(agent),
            "notifications": [{"id": n["id"], "type": n["type"], "message": n["message"],
                               "createdAt": iso(n["createdAt"])} for n in notes]})

    def wallet_sync(req: Request) -> Response:
        agent = _agent(state, req)
        total = agent["tokenBalance"]
        return Response(200, {
            "web3Address": agent["walletAddress"],
            "balance": {"total": total, "available": total, "locked": "0"},
            "pendingCredits": agent.get("pendingCredits", "0"),
            "transactions": list(agent.get("transactions", [])),
            "syncedAt": iso(state.now())})

    def budget(req: Request) -> Response:
        agent = _agent(state, req)
        return Response(200, {**budget_view(state, agent), "tier": agent["tier"],
                              "reputation": agent["reputation"],
                              "actionCosts": dict(contract.ACTION_COSTS)})

    def balance(req: Request) -> Response:
        agent = _agent(state, req)
        return Response(200, {"token": state.config.payment_token,
                              "decimals": contract.DEFAULT_DECIMALS,
                              "balance": agent["tokenBalance"],
                              "pending": agent.get("pendingCredits", "0"),
                              "vested": agent["tokenBalance"]})

    def profile(req: Request) -> Response:
        agent = _agent(state, req)
        return Response(200, {"id": agent["id"], "name": agent["name"], "tier": agent["tier"],
                              "status": agent["status"], "capabilities": agent["capabilities"],
                              "reputation": agent["reputation"],
                              "walletAddress": agent["walletAddress"],
                              "createdAt": iso(agent["createdAt"])})

    def security(req: Request) -> Response:
        return Response(200, security_status(state, _agent(state, req), req.key_id))

    def models(req: Request) -> Response:
        items = [m for m in MODELS
                 if req.query.get("recommended", "").lower() != "true" or m["recommended"]]
        try:
            page = int(req.query.get("page", "1"))
        except ValueError:
            page = 0
        pages = max(1, math.ceil(len(items) / MODELS_PER_PAGE))
        if not 1 <= page <= pages:
            raise validation({"page": [f"must be 1..{pages}"]})
        chunk = items[(page - 1) * MODELS_PER_PAGE: page * MODELS_PER_PAGE]
        return Response(200, {"models": chunk, "page": page, "totalPages": pages,
                              "total": len(items)})

    def put_credential(req: Request) -> Response:
        body = req.json_object()
        provider, key = body.get("provider"), body.get("apiKey")
        problems: dict[str, list[str]] = {}
        if provider not in BYOK_PROVIDERS:
            problems["provider"] = [f"must be one of {', '.join(BYOK_PROVIDERS)}"]
        if not isinstance(key, str) or not 8 <= len(key) <= 512:
            problems["apiKey"] = ["must be a key string"]
        if problems:
            raise validation(problems)
        creds: list[dict[str, Any]] = state.data["credentials"].setdefault(req.agent_id, [])
        digest = sha256_hex(str(key))
        for cred in creds:  # PUT is idempotent: the same key again changes nothing
            if cred["provider"] == provider and cred["isActive"] and cred["sha256"] == digest:
                return Response(200, {"id": cred["id"], "provider": provider, "isActive": True})
        for cred in creds:  # one active credential per provider, like the platform's UI
            if cred["provider"] == provider:
                cred["isActive"] = False
        cred = {"id": new_id("cred"), "provider": provider, "isActive": True,
                "sha256": digest, "last4": str(key)[-4:],
                "createdAt": state.now(), "lastUsed": None}
        creds.append(cred)
        return Response(201, {"id": cred["id"], "provider": provider, "isActive": True})

    def list_credentials(req: Request) -> Response:
        creds = state.data["credentials"].get(req.agent_id, [])
        return Response(200, {"credentials": [
            {"id": c["id"], "provider": c["provider"], "isActive": c["isActive"],
             "lastUsed": iso(c["lastUsed"]) if c["lastUsed"] else None} for c in creds]})

    def delete_credential(req: Request) -> Response:
        cred_id = req.query.get("id")
        creds = state.data["credentials"].get(req.agent_id, [])
        if not cred_id:
            raise validation({"id": ["required query parameter"]})
        match = [c for c in creds if c["id"] == cred_id]
        if not match:
            raise ApiError("NOT_FOUND", "no such credential")
        creds.remove(match[0])
        return Response(200, {"deleted": True, "id": cred_id})

    def accept_tos(req: Request) -> Response:
        agent = _agent(state, req)
        if agent["status"] == "SUSPENDED":
            raise ApiError("ACCOUNT_NOT_ACTIVE", "the account is suspended")
        if agent["status"] == "PENDING":
            agent["status"] = "ACTIVE"
            agent["tosAcceptedAt"] = state.now()
        return Response(200, {"status": agent["status"],
                              "acceptedAt": iso(agent["tosAcceptedAt"])})

    router.add("GET", f"{API_ROOT}/health", health)
    agent_route(router, state, "GET", "/heartbeat", heartbeat, counted=False)
    agent_route(router, state, "GET", "/notifications", notifications)
    agent_route(router, state, "POST", "/wallet/sync", wallet_sync)
    agent_route(router, state, "GET", "/budget", budget)
    agent_route(router, state, "GET", "/balance", balance)
    agent_route(router, state, "GET", "/profile", profile, allow_pending=True)
    agent_route(router, state, "GET", "/security-status", security)
    agent_route(router, state, "GET", "/models", models)
    agent_route(router, state, "PUT", "/credentials", put_credential)
    agent_route(router, state, "GET", "/credentials", list_credentials)
    agent_route(router, state, "DELETE", "/credentials", delete_credential)
    agent_route(router, state, "POST", "/accept-tos", accept_tos, allow_pending=True,
                counted=False)
