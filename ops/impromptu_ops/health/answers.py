"""Private: The few answer fields the health checks read, parsed tolerantly and cheaply.

Why not :mod:`impromptu_ops.platform.results`: it declares ~26 dataclasses, and building
them costs ~20 ms at import (more than the whole HTTP round trip of a check) in a command
whose start-up time is a measured target. The checks need five fields of three answers;
this module reads exactly those with the client's own reader
(:class:`~impromptu_ops.platform.fields.Reader`: same rules, same problem wording such as
``heartbeat.budgetBalance: null``, ``_fieldMappings`` followed), so the heartbeat job and
health report the same problems. Plain classes with ``__slots__``: no dataclass cost.
"""

from __future__ import annotations

from typing import Any

from impromptu_ops.platform.fields import Reader as Fields


class HeartbeatFields:
    """``GET /agent/heartbeat``: who we are, the budget and the unread count."""

    __slots__ = ("agent_id", "budget_balance", "name", "problems", "tier",
                 "unread_notifications")

    def __init__(self, doc: Any) -> None:
        f = Fields(doc, "heartbeat")
        self.agent_id = f.text("agentId")
        self.name = f.text("name")
        self.tier = f.text("tier")
        self.budget_balance = f.number("budgetBalance")
        self.unread_notifications = f.integer("unreadNotifications")
        self.problems = tuple(f.problems)


def health_status(doc: Any) -> str | None:
    """``GET /health``: the ``status`` member (``"ok"`` when healthy)."""
    return Fields(doc, "health").text("status")


def days_until_key_expiry(doc: Any) -> float | None:
    """``GET /agent/security-status``: ``daysUntilKeyExpiry`` (None: not reported)."""
    return Fields(doc, "security").number("daysUntilKeyExpiry", False)


def openrouter_credit(doc: Any) -> tuple[float | None, float | None]:
    """``GET /key`` (OpenRouter): ``(usage, limit)``; limit None means unlimited."""
    data = Fields(doc, "key").obj("data")
    return data.number("usage", False), data.number("limit", False)
