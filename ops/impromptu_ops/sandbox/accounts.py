"""Agents and their API keys: creation, key issuance and status, budgets that regenerate.

This module owns the agent and key records of the sandbox state (see :mod:`.state`) and the
arithmetic on them: issuing ``impr_sk_`` keys (only their SHA-256 is kept), key status
(active / revoked / expired, with the simulated clock), budget regeneration per tier
(:data:`impromptu_ops.contract.TIERS`) and spending (BUDG_001 when short). It serves no
route itself: registration, control and key management call it; request authentication
and rate limits are in :mod:`.access`.
"""

from __future__ import annotations

import secrets
from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.router import ApiError
from impromptu_ops.sandbox.state import State, iso, new_id, sha256_hex
from impromptu_ops.sandbox.wallet import new_wallet

AGENT_STATUSES = ("PENDING", "ACTIVE", "SUSPENDED")
KEY_ID_PREFIX = "key"
# Characters of the key shown in listings: the prefix plus 4, enough to tell keys apart.
SHOWN_KEY_CHARS = len(contract.API_KEY_PREFIX) + 4
DAY = 86_400.0


def new_api_key() -> str:
    """``impr_sk_`` + 40 url-safe characters (30 random bytes)."""
    key = contract.API_KEY_PREFIX + secrets.token_urlsafe(30)
    assert contract.API_KEY_RE.match(key)
    return key


def issue_key(state: State, agent_id: str, *, expires_in_days: float | None = None
              ) -> tuple[str, dict[str, Any]]:
    """Create a key for ``agent_id``; return the key (shown once) and its stored record."""
    key = new_api_key()
    now = state.now()
    days = state.config.key_lifetime_days if expires_in_days is None else expires_in_days
    record = {
        "id": new_id(KEY_ID_PREFIX),
        "agentId": agent_id,
        "sha256": sha256_hex(key),
        "prefix": key[:SHOWN_KEY_CHARS],
        "createdAt": now,
        "lastUsedAt": None,
        "expiresAt": now + days * DAY,
        "revokedAt": None,
    }
    state.data["keys"][record["id"]] = record
    return key, record


def key_status(state: State, record: dict[str, Any]) -> str:
    if record.get("revokedAt") is not None:
        return "revoked"
    if record["expiresAt"] <= state.now():
        return "expired"
    return "active"


def key_view(state: State, record: dict[str, Any]) -> dict[str, Any]:
    """The §5 listing entry ``{id, prefix, createdAt, lastUsedAt, expiresAt, status}``."""
    last = record.get("lastUsedAt")
    return {
        "id": record["id"],
        "prefix": record["prefix"],
        "createdAt": iso(record["createdAt"]),
        "lastUsedAt": iso(last) if last is not None else None,
        "expiresAt": iso(record["expiresAt"]),
        "status": key_status(state, record),
    }


def agent_keys(state: State, agent_id: str) -> list[dict[str, Any]]:
    records = state.data["keys"]  # one agent's keys, marked; not all of them
    keys = [records[k["id"]] for k in records.peek() if k["agentId"] == agent_id]
    return sorted(keys, key=lambda k: (k["createdAt"], k["id"]))


def find_key(state: State, token: str) -> dict[str, Any] | None:
    digest = sha256_hex(token)
    record: dict[str, Any]
    found: dict[str, Any]
    for record in state.data["keys"].peek():
        if secrets.compare_digest(record["sha256"], digest):
            found = state.data["keys"][record["id"]]  # marked: the caller may change it
            return found
    return None


def name_taken(state: State, name: str) -> bool:
    return any(a["name"].lower() == name.lower() for a in state.data["agents"].peek())


def create_agent(state: State, *, name: str, description: str = "",
                 capabilities: list[str] | None = None, tier: str = "REGISTERED",
                 status: str = "ACTIVE", budget: int | None = None,
                 wallet_address: str | None = None, referrer: str | None = None,
                 key_expires_in_days: float | None = None,
                 ) -> tuple[dict[str, Any], str, str]:
    """Create an agent with one key.

    Returns:
        ``(agent record, API key, wallet private key hex)``; the caller decides whether the
        private key is ever shown (it is not stored).
    """
    now = state.now()
    wallet = new_wallet()
    agent_id = new_id("agt")
    agent: dict[str, Any] = {
        "id": agent_id,
        "name": name,
        "description": description,
        "capabilities": list(capabilities or []),
        "tier": tier,
        "status": status,
        "reputation": 0,
        "tokenBalance": "0",
        "pendingCredits": "0",
        "budget": contract.TIERS[tier].budget if budget is None else budget,
        "budgetUpdatedAt": now,
        "walletAddress": wallet_address or wallet.address,
        "referrer": referrer,
        "createdAt": now,
        "tosAcceptedAt": now if status == "ACTIVE" else None,
        "notifications": [],
        "daily": {"day": "", "used": 0},
    }
    state.data["agents"][agent_id] = agent
    key, _ = issue_key(state, agent_id, expires_in_days=key_expires_in_days)
    return agent, key, wallet.private_key_hex


def current_budget(state: State, agent: dict[str, Any]) -> int:
    """The agent's budget after hourly regeneration up to the tier's maximum."""
    tier = contract.TIERS[agent["tier"]]
    now = state.now()
    balance = int(agent["budget"])
    if balance >= tier.budget:
        agent["budgetUpdatedAt"] = now
        return balance
    per_point = 3600.0 / tier.regen_per_hour
    gained = int((now - float(agent["budgetUpdatedAt"])) // per_point)
    if gained > 0:
        balance = min(tier.budget, balance + gained)
        agent["budget"] = balance
        agent["budgetUpdatedAt"] = (now if balance >= tier.budget
                                    else float(agent["budgetUpdatedAt"]) + gained * per_point)
    return balance


def budget_view(state: State, agent: dict[str, Any]) -> dict[str, Any]:
    tier = contract.TIERS[agent["tier"]]
    return {
        "balance": current_budget(state, agent),
        "maxBalance": tier.budget,
        "regenerationRate": tier.regen_per_hour,
        "regenerationUnit": "hour",
    }


def spend(state: State, agent: dict[str, Any], cost: int, action: str) -> int:
    """Take ``cost`` from the budget and return it.

    Raises:
        ApiError: BUDG_001 when the balance is short.
    """
    balance = current_budget(state, agent)
    if balance < cost:
        rate = contract.TIERS[agent["tier"]].regen_per_hour
        raise ApiError("BUDG_001", f"{action} costs {cost}, budget balance is {balance}",
                       hint=f"the budget regenerates {rate} per hour; wait, do not hammer",
                       extra={"budget": {"balance": balance, "required": cost}})
    agent["budget"] = balance - cost
    return cost


def notify(state: State, agent: dict[str, Any], kind: str, message: str) -> dict[str, Any]:
    note = {"id": new_id("ntf"), "type": kind, "message": message,
            "createdAt": state.now(), "read": False}
    agent["notifications"].append(note)
    return note
