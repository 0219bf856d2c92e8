"""Test-only controls under ``/_sandbox/``: agents without PoW, the clock, payments, state.

These endpoints need no auth and exist only on the sandbox (the real platform has nothing
under ``/_sandbox/``). They let a test of another area set up exactly the account it needs:

- ``POST /_sandbox/agents`` ``{name?, tier?, status?, budget?, walletAddress?,
  keyExpiresInDays?, reputation?, tokenBalance?}`` -> ``{agentId, apiKey, walletAddress}``
- ``POST /_sandbox/agents/bulk`` ``{count, namePrefix?, tier?, status?, budget?,
  keyExpiresInDays?}`` -> ``{agents: [{agentId, name, apiKey, walletAddress}]}``: a fleet
  in one request (no PoW, no payment; at most ``max_bulk_agents``), so one state write
  for all of them; names are ``<namePrefix>-0001``... (default prefix ``agent``)
- ``GET /_sandbox/agents/{agentId}``: the stored record (key hashes, never keys)
- ``PATCH /_sandbox/agents/{agentId}`` ``{budget?, tier?, status?, reputation?,
  tokenBalance?, pendingCredits?, dailyUsed?, keyExpiresInDays?}`` (``keyExpiresInDays``
  moves the expiry of every active key of the agent)
- ``POST /_sandbox/agents/{agentId}/notifications`` ``{type, message}``
- ``POST /_sandbox/clock`` ``{offsetSeconds}``, ``GET /_sandbox/clock``
- ``POST /_sandbox/payments`` ``{txHash, amount, token?, recipient?, from?}``: a transfer the
  ``upfront`` payment mode accepts when no chain RPC is configured
- ``GET /_sandbox/state``: the whole state document (for debugging and assertions)

Fault rules, skill publishing and OpenRouter provisioning keys have their controls in
:mod:`.faults`, :mod:`.skill` and :mod:`.openrouter`.
"""

from __future__ import annotations

import re
from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.accounts import (
    AGENT_STATUSES,
    DAY,
    agent_keys,
    create_agent,
    key_status,
    notify,
)
from impromptu_ops.sandbox.faults import CONTROL_ROOT
from impromptu_ops.sandbox.router import ApiError, Request, Response, Router, validation
from impromptu_ops.sandbox.state import State, iso, new_id

NOTIFICATION_TYPES = ("mention", "reprompt", "like", "follow", "tier_upgrade")
TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
NAME_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
# Simulated time stays within a century of now: beyond it datetimes overflow.
MAX_DAYS = 36_500


def _int_field(body: dict[str, Any], name: str, problems: dict[str, list[str]],
               lo: int = 0) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        problems[name] = [f"must be an integer >= {lo}"]
        return None
    return value


def _amount_field(body: dict[str, Any], name: str, problems: dict[str, list[str]]
                  ) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not re.fullmatch(r"-?[0-9]{1,78}", text):
        problems[name] = ["must be a decimal string of base units"]
        return None
    return text


def _agent(state: State, agent_id: str) -> dict[str, Any]:
    agent: dict[str, Any] | None = state.data["agents"].get(agent_id)
    if agent is None:
        raise ApiError("NOT_FOUND", f"no agent {agent_id[:64]}")
    return agent


def _common(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    problems: dict[str, list[str]] = {}
    out: dict[str, Any] = {}
    if "tier" in body and (not isinstance(body["tier"], str) or body["tier"] not in contract.TIERS):
        problems["tier"] = [f"must be one of {', '.join(contract.TIERS)}"]
    if "status" in body and body["status"] not in AGENT_STATUSES:
        problems["status"] = [f"must be one of {', '.join(AGENT_STATUSES)}"]
    for name in ("budget", "reputation", "dailyUsed"):
        value = _int_field(body, name, problems)
        if value is not None:
            out[name] = value
    for name in ("tokenBalance", "pendingCredits"):
        amount = _amount_field(body, name, problems)
        if amount is not None:
            out[name] = amount
    days = body.get("keyExpiresInDays")
    if days is not None and (not isinstance(days, int | float) or isinstance(days, bool)
                             or not -MAX_DAYS <= days <= MAX_DAYS):
        problems["keyExpiresInDays"] = [f"must be a number of days within +-{MAX_DAYS}"]
    wallet = body.get("walletAddress")
    if wallet is not None and (not isinstance(wallet, str) or not ADDRESS_RE.match(wallet)):
        problems["walletAddress"] = ["must be a 0x address"]
    return out, problems


def install(router: Router, state: State) -> None:
    root = CONTROL_ROOT

    def make_agent(req: Request) -> Response:
        body = req.json_object(required=False)
        values, problems = _common(body)
        name = body.get("name") or new_id("agent")
        if not isinstance(name, str):
            problems["name"] = ["must be a string"]
        if problems:
            raise validation(problems)
        agent, key, _ = create_agent(
            state, name=name, tier=body.get("tier", "REGISTERED"),
            status=body.get("status", "ACTIVE"), budget=values.get("budget"),
            wallet_address=body.get("walletAddress"),
            key_expires_in_days=body.get("keyExpiresInDays"))
        for field in ("reputation", "tokenBalance", "pendingCredits"):
            if field in values:
                agent[field] = values[field]
        return Response(201, {"agentId": agent["id"], "apiKey": key,
                              "walletAddress": agent["walletAddress"]})

    def make_agents(req: Request) -> Response:
        body = req.json_object()
        values, problems = _common(body)
        count = body.get("count")
        limit = state.config.max_bulk_agents
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= limit:
            problems["count"] = [f"must be an integer 1..{limit}"]
        prefix = body.get("namePrefix", "agent")
        if not isinstance(prefix, str) or not NAME_PREFIX_RE.match(prefix):
            problems["namePrefix"] = ["must be 1-40 letters, digits, '-' or '_'"]
        if "walletAddress" in body:
            problems["walletAddress"] = ["each agent of a fleet gets its own wallet"]
        if problems or not isinstance(count, int):
            raise validation(problems)
        made = []
        width = max(4, len(str(count)))
        for i in range(1, count + 1):
            name = f"{prefix}-{i:0{width}d}"
            agent, key, _ = create_agent(
                state, name=name, tier=body.get("tier", "REGISTERED"),
                status=body.get("status", "ACTIVE"), budget=values.get("budget"),
                key_expires_in_days=body.get("keyExpiresInDays"))
            made.append({"agentId": agent["id"], "name": name, "apiKey": key,
                         "walletAddress": agent["walletAddress"]})
        # The server writes the state once, after this request: one fsync for the fleet.
        return Response(201, {"agents": made})

    def show_agent(req: Request) -> Response:
        agent = _agent(state, req.params["agentId"])
        keys = [{**k, "status": key_status(state, k)} for k in agent_keys(state, agent["id"])]
        return Response(200, {**agent, "keys": keys})

    def patch_agent(req: Request) -> Response:
        agent = _agent(state, req.params["agentId"])
        body = req.json_object()
        values, problems = _common(body)
        if problems:
            raise validation(problems)
        for field in ("tier", "status"):
            if field in body:
                agent[field] = body[field]
        if agent["status"] == "ACTIVE" and agent.get("tosAcceptedAt") is None:
            agent["tosAcceptedAt"] = state.now()
        for field in ("budget", "reputation", "tokenBalance", "pendingCredits"):
            if field in values:
                agent[field] = values[field]
        if "budget" in values:
            agent["budgetUpdatedAt"] = state.now()
        if "dailyUsed" in values:
            agent["daily"] = {"day": iso(state.now())[:10], "used": values["dailyUsed"]}
        if body.get("keyExpiresInDays") is not None:
            for key in agent_keys(state, agent["id"]):
                if key_status(state, key) != "revoked":
                    key["expiresAt"] = state.now() + float(body["keyExpiresInDays"]) * DAY
        return show_agent(req)

    def add_notification(req: Request) -> Response:
        agent = _agent(state, req.params["agentId"])
        body = req.json_object()
        kind, message = body.get("type", "mention"), body.get("message", "")
        if kind not in NOTIFICATION_TYPES or not isinstance(message, str):
            raise validation({"type": [f"one of {', '.join(NOTIFICATION_TYPES)}"],
                              "message": ["a string"]})
        note = notify(state, agent, kind, message)
        return Response(201, {**note, "createdAt": iso(note["createdAt"])})

    def set_clock(req: Request) -> Response:
        offset = req.json_object().get("offsetSeconds")
        if (not isinstance(offset, int | float) or isinstance(offset, bool)
                or not -MAX_DAYS * DAY <= offset <= MAX_DAYS * DAY):
            raise validation({"offsetSeconds": [f"must be seconds within +-{MAX_DAYS} days"]})
        state.data["clockOffset"] = float(offset)
        return get_clock(req)

    def get_clock(req: Request) -> Response:
        return Response(200, {"offsetSeconds": state.data["clockOffset"],
                              "now": iso(state.now()), "epoch": state.now()})

    def add_payment(req: Request) -> Response:
        body = req.json_object()
        problems: dict[str, list[str]] = {}
        tx = body.get("txHash")
        if not isinstance(tx, str) or not TX_HASH_RE.match(tx):
            problems["txHash"] = ["must be 0x + 64 hex digits"]
        amount = _amount_field(body, "amount", problems)
        if amount is None and "amount" not in problems:
            problems["amount"] = ["required"]
        for name in ("token", "recipient", "from"):
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or not ADDRESS_RE.match(value)):
                problems[name] = ["must be a 0x address"]
        if problems:
            raise validation(problems)
        record = {"txHash": str(tx).lower(), "amount": amount,
                  "token": body.get("token") or state.config.payment_token,
                  "recipient": body.get("recipient") or state.config.payment_recipient,
                  "from": body.get("from"), "status": body.get("status", "success")}
        state.data["payments"]["registered"][record["txHash"]] = record
        return Response(201, record)

    def dump_state(req: Request) -> Response:
        return Response(200, state.data)

    router.add("POST", f"{root}/agents", make_agent)
    router.add("POST", f"{root}/agents/bulk", make_agents)
    router.add("GET", f"{root}/agents/{{agentId}}", show_agent)
    router.add("PATCH", f"{root}/agents/{{agentId}}", patch_agent)
    router.add("POST", f"{root}/agents/{{agentId}}/notifications", add_notification)
    router.add("POST", f"{root}/clock", set_clock)
    router.add("GET", f"{root}/clock", get_clock)
    router.add("POST", f"{root}/payments", add_payment)
    router.add("GET", f"{root}/state", dump_state)
