"""The few answer fields the health checks read, parsed tolerantly and cheaply.

Why not :mod:`impromptu_ops.platform.results`: it declares ~26 dataclasses, and building
them costs ~20 ms at import (more than the whole HTTP round trip of a check) in a command
whose start-up time is a measured target. The checks need five fields of three answers;
this module reads exactly those with the same rules and the same problem wording
(``heartbeat.budgetBalance: null``), so the heartbeat job (which uses the client's parsers)
and health report the same problems. Plain classes with ``__slots__``: no dataclass cost.
"""

from __future__ import annotations

from typing import Any


class Fields:
    """Members of one JSON object; each missing, null or mistyped one becomes a problem."""

    __slots__ = ("problems", "raw", "where")

    def __init__(self, raw: Any, where: str, problems: list[str] | None = None) -> None:
        self.where = where
        self.problems: list[str] = problems if problems is not None else []
        self.raw: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if not isinstance(raw, dict):
            self.problems.append(f"{where}: not an object")

    def _get(self, key: str, required: bool) -> Any:
        value = self.raw.get(key)
        if value is None and required:
            self.problems.append(f"{self.where}.{key}: missing" if key not in self.raw
                                 else f"{self.where}.{key}: null")
        return value

    def text(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is None or isinstance(value, str):
            return value
        self.problems.append(f"{self.where}.{key}: not a string")
        return None

    def number(self, key: str, required: bool = True) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        self.problems.append(f"{self.where}.{key}: not a number")
        return None

    def integer(self, key: str, required: bool = True) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        self.problems.append(f"{self.where}.{key}: not an integer")
        return None

    def obj(self, key: str) -> Fields:
        value = self._get(key, True)
        return Fields(value if value is not None else {}, f"{self.where}.{key}",
                      self.problems if value is not None else [])


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
