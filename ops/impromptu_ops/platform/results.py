"""Typed results of the platform endpoints, built by tolerant parsers (contract §2, §5, §6).

Each result is a frozen dataclass with ``raw`` (the JSON object as received, secrets
wrapped), ``problems`` (what was missing, null or of the wrong type: the heartbeat job
reports these instead of crashing) and ``field_mappings`` (the server's ``_fieldMappings``,
``{alias: canonical}``, which the parsers also follow: a member the server sends under an
alias it names there is read as the canonical one). A parser never raises on a bad
member; only a body that is not a JSON object at all is recorded as the problem
``"body: not an object"``.

Wallet and ledger amounts are strings of base units [ours] and become ``int``; a float or a
non-integer string is a problem, never silently rounded. Secret-bearing members
(:data:`impromptu_ops.contract.RESPONSE_SECRET_FIELDS`) are wrapped in
:class:`~impromptu_ops.secret.Secret` everywhere in ``raw`` by :func:`wrap_secrets`.

Pure: no I/O. The client (:mod:`.client`) decides which parser reads which endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from impromptu_ops import contract
from impromptu_ops.platform.fields import Reader
from impromptu_ops.secret import Secret


def wrap_secrets(value: Any, depth: int = 0) -> Any:
    """A copy of a JSON value with every secret-bearing string member made a Secret."""
    if depth > 64:
        return None
    if isinstance(value, dict):
        return {k: (Secret(v, str(k)) if k in contract.RESPONSE_SECRET_FIELDS
                    and isinstance(v, str) and v else wrap_secrets(v, depth + 1))
                for k, v in value.items()}
    if isinstance(value, list):
        return [wrap_secrets(v, depth + 1) for v in value]
    return value


@dataclass(frozen=True)
class Result:
    """What every result carries. ``raw`` is the received object (secrets wrapped)."""

    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    problems: tuple[str, ...] = ()
    field_mappings: Mapping[str, str] = field(default_factory=dict)


def _common(r: Reader) -> dict[str, Any]:
    return {"raw": r.raw, "problems": tuple(r.problems), "field_mappings": r.field_mappings()}


@dataclass(frozen=True)
class JsonResult(Result):
    """An endpoint whose shape we pass through untyped (thread, models, discovery...)."""


def parse_json(doc: Any, where: str) -> JsonResult:
    return JsonResult(**_common(Reader(doc, where)))


@dataclass(frozen=True)
class Health(Result):
    status: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_health(doc: Any) -> Health:
    r = Reader(doc, "health")
    return Health(status=r.text("status"), **_common(r))


@dataclass(frozen=True)
class Heartbeat(Result):
    agent_id: str | None = None
    name: str | None = None
    tier: str | None = None
    reputation: float | None = None
    token_balance: int | None = None
    budget_balance: float | None = None
    unread_notifications: int | None = None


def parse_heartbeat(doc: Any) -> Heartbeat:
    r = Reader(doc, "heartbeat")
    return Heartbeat(
        agent_id=r.text("agentId"), name=r.text("name"), tier=r.text("tier"),
        reputation=r.number("reputation"), token_balance=r.amount("tokenBalance"),
        budget_balance=r.number("budgetBalance"),
        unread_notifications=r.integer("unreadNotifications"), **_common(r))


@dataclass(frozen=True)
class Notification:
    id: str | None
    type: str | None
    message: str | None
    created_at: str | None


@dataclass(frozen=True)
class Notifications(Result):
    unread_count: int | None = None
    notifications: tuple[Notification, ...] = ()


def parse_notifications(doc: Any) -> Notifications:
    r = Reader(doc, "notifications")
    items = tuple(Notification(n.text("id"), n.text("type"), n.text("message", False),
                               n.text("createdAt", False))
                  for n in r.items("notifications"))
    return Notifications(unread_count=r.integer("unreadCount"), notifications=items, **_common(r))


@dataclass(frozen=True)
class WalletSync(Result):
    web3_address: str | None = None
    total: int | None = None
    available: int | None = None
    locked: int | None = None
    pending_credits: int | None = None
    transactions: tuple[Mapping[str, Any], ...] = ()


def parse_wallet_sync(doc: Any) -> WalletSync:
    r = Reader(doc, "wallet")
    bal = r.obj("balance")
    txs = tuple(t for t in r.array("transactions", False) if isinstance(t, dict))
    return WalletSync(
        web3_address=r.text("web3Address"), total=bal.amount("total"),
        available=bal.amount("available"), locked=bal.amount("locked"),
        pending_credits=r.amount("pendingCredits", False), transactions=txs, **_common(r))


@dataclass(frozen=True)
class Recommendation:
    node_id: str | None
    opportunity_score: float | None


@dataclass(frozen=True)
class Recommendations(Result):
    recommendations: tuple[Recommendation, ...] = ()


def parse_recommendations(doc: Any) -> Recommendations:
    r = Reader(doc, "recommendations")
    items = tuple(Recommendation(i.text("nodeId"), i.number("opportunityScore", False))
                  for i in r.items("recommendations"))
    return Recommendations(recommendations=items, **_common(r))


@dataclass(frozen=True)
class Budget(Result):
    balance: float | None = None
    max_balance: float | None = None
    regeneration_rate: float | None = None
    regeneration_unit: str | None = None
    tier: str | None = None
    reputation: float | None = None
    action_costs: Mapping[str, float] = field(default_factory=dict)


def parse_budget(doc: Any) -> Budget:
    r = Reader(doc, "budget")
    costs_r = r.obj("actionCosts", False)
    costs = {k: float(v) for k, v in costs_r.raw.items()
             if isinstance(v, int | float) and not isinstance(v, bool)}
    return Budget(
        balance=r.number("balance"), max_balance=r.number("maxBalance"),
        regeneration_rate=r.number("regenerationRate"),
        regeneration_unit=r.text("regenerationUnit", False), tier=r.text("tier"),
        reputation=r.number("reputation", False), action_costs=costs, **_common(r))


@dataclass(frozen=True)
class Balance(Result):
    token: str | None = None
    decimals: int | None = None
    balance: int | None = None
    pending: int | None = None
    vested: int | None = None


def parse_balance(doc: Any) -> Balance:
    r = Reader(doc, "balance")
    return Balance(token=r.text("token"), decimals=r.integer("decimals"),
                   balance=r.amount("balance"), pending=r.amount("pending", False),
                   vested=r.amount("vested", False),
                   **_common(r))


@dataclass(frozen=True)
class Profile(Result):
    id: str | None = None
    name: str | None = None
    tier: str | None = None
    status: str | None = None
    capabilities: tuple[str, ...] = ()
    reputation: float | None = None


def parse_profile(doc: Any) -> Profile:
    r = Reader(doc, "profile")
    caps = tuple(c for c in r.array("capabilities", False) if isinstance(c, str))
    return Profile(id=r.text("id"), name=r.text("name"), tier=r.text("tier"),
                   status=r.text("status"), capabilities=caps,
                   reputation=r.number("reputation", False), **_common(r))


@dataclass(frozen=True)
class SecurityWarning:
    type: str | None
    severity: str | None
    message: str | None = None


@dataclass(frozen=True)
class SecurityStatus(Result):
    account_healthy: bool | None = None
    warnings: tuple[SecurityWarning, ...] = ()
    days_until_key_expiry: float | None = None


def parse_security_status(doc: Any) -> SecurityStatus:
    r = Reader(doc, "security")
    warns = tuple(SecurityWarning(w.text("type"), w.text("severity"), w.text("message", False))
                  for w in r.items("warnings", False))
    return SecurityStatus(account_healthy=r.flag("accountHealthy"), warnings=warns,
                          days_until_key_expiry=r.number("daysUntilKeyExpiry", False),
                          **_common(r))


@dataclass(frozen=True)
class PromptResult(Result):
    prompt_id: str | None = None
    url: str | None = None


def parse_prompt(doc: Any) -> PromptResult:
    r = Reader(doc, "prompt")
    return PromptResult(prompt_id=r.text("promptId"), url=r.text("url", False), **_common(r))


@dataclass(frozen=True)
class RepromptResult(Result):
    node_id: str | None = None
    url: str | None = None
    status: str | None = None
    llm_response: str | None = None
    budget_spent: float | None = None


def parse_reprompt(doc: Any) -> RepromptResult:
    r = Reader(doc, "reprompt")
    return RepromptResult(node_id=r.text("nodeId"), url=r.text("url", False),
                          status=r.text("status", False), llm_response=r.text("llmResponse", False),
                          budget_spent=r.number("budgetSpent", False), **_common(r))


@dataclass(frozen=True)
class Credential:
    id: str | None
    provider: str | None
    is_active: bool | None
    last_used: str | None


@dataclass(frozen=True)
class Credentials(Result):
    credentials: tuple[Credential, ...] = ()


def parse_credentials(doc: Any) -> Credentials:
    r = Reader(doc, "credentials")
    items = tuple(Credential(c.text("id"), c.text("provider"), c.flag("isActive", False),
                             c.text("lastUsed", False)) for c in r.items("credentials"))
    return Credentials(credentials=items, **_common(r))


@dataclass(frozen=True)
class KeyInfo:
    """One Impromptu API key as listed (§5): never the key itself."""

    id: str | None
    prefix: str | None
    created_at: str | None
    last_used_at: str | None
    expires_at: str | None
    status: str | None


@dataclass(frozen=True)
class KeyList(Result):
    keys: tuple[KeyInfo, ...] = ()


def parse_key_list(doc: Any) -> KeyList:
    r = Reader(doc, "keys")
    keys = tuple(KeyInfo(k.text("id"), k.text("prefix", False), k.text("createdAt", False),
                         k.text("lastUsedAt", False), k.text("expiresAt", False), k.text("status"))
                 for k in r.items("keys"))
    return KeyList(keys=keys, **_common(r))


@dataclass(frozen=True)
class NewKey(Result):
    """A created key (§5): ``api_key`` is shown once, so store it before anything else."""

    id: str | None = None
    api_key: Secret | None = None
    expires_at: str | None = None


def parse_new_key(doc: Any) -> NewKey:
    r = Reader(doc, "newKey")
    key = r.raw.get("apiKey")
    if not isinstance(key, Secret):
        r.problems.append("newKey.apiKey: missing")
        key = None
    return NewKey(id=r.text("id"), api_key=key, expires_at=r.text("expiresAt", False),
                  **_common(r))


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry (§6); type-specific members stay in ``raw``."""

    id: str | None
    type: str | None
    amount: int | None
    token: str | None
    created_at: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Earnings(Result):
    entries: tuple[LedgerEntry, ...] = ()
    next_cursor: str | None = None


def parse_earnings(doc: Any) -> Earnings:
    r = Reader(doc, "earnings")
    entries = tuple(LedgerEntry(e.text("id"), e.text("type"), e.amount("amount"),
                                e.text("token", False), e.text("createdAt"), e.raw)
                    for e in r.items("entries"))
    return Earnings(entries=entries, next_cursor=r.text("nextCursor", False), **_common(r))


@dataclass(frozen=True)
class Referral:
    agent_id: str | None
    registered_at: str | None


@dataclass(frozen=True)
class Referrals(Result):
    referrals: tuple[Referral, ...] = ()


def parse_referrals(doc: Any) -> Referrals:
    r = Reader(doc, "referrals")
    items = tuple(Referral(i.text("agentId"), i.text("registeredAt"))
                  for i in r.items("referrals"))
    return Referrals(referrals=items, **_common(r))


@dataclass(frozen=True)
class RegisterAnswer:
    """What ``POST /agents/register`` answered: 201, or 428/402/400/409/410 as answers.

    Attributes:
        status: the HTTP status.
        code: the error code of a non-201 answer (``POW_REQUIRED``...), else None.
        body: the JSON object, secrets (``apiKey``, ``walletPrivateKey``) wrapped as Secret.
        problems: set when the body was not a JSON object.
    """

    status: int
    code: str | None
    body: Mapping[str, Any] = field(repr=False)
    problems: tuple[str, ...] = ()

    @property
    def registered(self) -> bool:
        return self.status in (200, 201) and self.code is None
