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

from impromptu_ops.errors import OpsError
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.ratelimit import RateLimit
from impromptu_ops.platform.results import Heartbeat
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings

KeySource = Callable[[], Secret | None]
"""Returns the platform key, or None when none is stored (raises StoreError when the store
cannot be read). The platform package does not know the store: the caller passes this."""
ClientFactory = Callable[[Secret | None], PlatformClient]


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


def api_status(settings: PlatformSettings, *, key_source: KeySource,
               make_client: ClientFactory) -> ApiStatus:
    """Check the platform's health endpoint and, with a stored key, the heartbeat.

    Args:
        settings: the platform settings (URL and path prefix, for the report).
        key_source: where the key comes from (the composition root reads the store).
        make_client: builds the platform client for the key (None: no key).

    Returns:
        An :class:`ApiStatus`; failures are recorded in it, not raised.
    """
    found: list[tuple[str, OpsError]] = []
    try:
        key = key_source()
    except OpsError as exc:
        found.append(("key", exc))
        key = None
    health: str | None = None
    heartbeat: Heartbeat | None = None
    with make_client(key) as client:
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
    return ApiStatus(settings.api_url, settings.path_prefix, health, key is not None,
                     heartbeat, rate, tuple(found))
