"""``api status``: is the platform reachable, and does it accept our key? (no secrets shown)

:func:`api_status` asks ``GET /health`` and, when a key is stored, ``GET /agent/heartbeat``
(which costs nothing and is not rate-counted), and returns one :class:`ApiStatus` value with
each step's result or typed error. It never raises for a platform or network failure: the
caller renders what happened and picks the exit code from :attr:`ApiStatus.error`.

It does not judge thresholds (that is the health check's job) and never reveals the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from impromptu_ops import contract
from impromptu_ops.errors import OpsError, SecretNotFound
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.ratelimit import RateLimit
from impromptu_ops.platform.results import Heartbeat
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings

API_KEY_NAME = contract.SECRET_NAMES[0]  # "impromptu-api-key"
KeySource = Callable[[Settings], Secret | None]


def stored_api_key(settings: Settings) -> Secret | None:
    """The platform key from the configured secret store, or None when none is stored.

    Raises:
        StoreError: the store exists but cannot be read (sealed, tampered, unreachable).
    """
    from impromptu_ops.store.factory import open_store

    try:
        return open_store(settings).read(API_KEY_NAME).value()
    except SecretNotFound:
        return None


@dataclass(frozen=True)
class ApiStatus:
    """What ``api status`` found. ``error`` is the first failure (None when all is well)."""

    api_url: str
    path_prefix: str
    health: str | None = None
    key_stored: bool = False
    heartbeat: Heartbeat | None = None
    rate_limit: RateLimit | None = None
    errors: tuple[tuple[str, OpsError], ...] = field(default=())

    @property
    def error(self) -> OpsError | None:
        return self.errors[0][1] if self.errors else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly summary: ids, names and numbers only, never the key."""
        hb = self.heartbeat
        rl = self.rate_limit
        return {
            "apiUrl": self.api_url,
            "pathPrefix": self.path_prefix,
            "health": self.health,
            "keyStored": self.key_stored,
            "heartbeat": None if hb is None else {
                "agentId": hb.agent_id, "name": hb.name, "tier": hb.tier,
                "reputation": hb.reputation, "tokenBalance": None if hb.token_balance is None
                else str(hb.token_balance), "budgetBalance": hb.budget_balance,
                "unreadNotifications": hb.unread_notifications, "problems": list(hb.problems),
            },
            "rateLimit": None if rl is None else {
                "limit": rl.limit, "remaining": rl.remaining,
                "resetAt": None if rl.reset_at is None
                else datetime.fromtimestamp(rl.reset_at, UTC).isoformat().replace("+00:00", "Z"),
            },
            "errors": [{"step": step, "code": getattr(e, "code", type(e).__name__),
                        "message": e.diagnostics(), "exitCode": e.exit_code}
                       for step, e in self.errors],
        }


def api_status(settings: Settings, *, key_source: KeySource = stored_api_key,
               transport: httpx.BaseTransport | None = None) -> ApiStatus:
    """Check the platform's health endpoint and, with a stored key, the heartbeat.

    Args:
        settings: the effective settings (platform URL and limits, the store).
        key_source: where the key comes from (default: the configured store).
        transport: an httpx transport for tests.

    Returns:
        An :class:`ApiStatus`; failures are recorded in it, not raised.
    """
    p = settings.platform
    found: list[tuple[str, OpsError]] = []
    try:
        key = key_source(settings)
    except OpsError as exc:
        found.append(("key", exc))
        key = None
    health: str | None = None
    heartbeat: Heartbeat | None = None
    with PlatformClient(p, key, transport=transport) as client:
        try:
            health = client.health().status or "(no status)"
        except OpsError as exc:
            found.append(("health", exc))
        if key is not None:
            try:
                heartbeat = client.heartbeat()
            except OpsError as exc:
                found.append(("heartbeat", exc))
        rate = client.last_rate_limit
    return ApiStatus(p.api_url, p.path_prefix, health, key is not None, heartbeat, rate,
                     tuple(found))
