"""Rate-limit headers as a value the jobs can read (contract §1).

``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (unix seconds)
become one frozen :class:`RateLimit`. Each header is parsed on its own and a garbage value
becomes ``None`` for that field only: a server that sends a bad ``Remaining`` must not hide a
good ``Reset``. Pure: no I/O, no clock (``now`` is passed in where time matters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from impromptu_ops import contract

_INT = re.compile(r"^\s*(\d{1,15})(?:\.0*)?\s*$", re.ASCII)
# Unix seconds later than this (year 5138) are not a reset time: refuse rather than overflow.
_MAX_RESET = 10**11


@dataclass(frozen=True)
class RateLimit:
    """What the last response said about the caller's quota.

    Attributes:
        limit: requests allowed in the window, or None when absent or unreadable.
        remaining: requests left, or None.
        reset_at: unix seconds when the quota resets, or None.
    """

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    def seconds_until_reset(self, now: float) -> float | None:
        """Seconds from ``now`` until ``reset_at`` (never negative), or None if unknown."""
        if self.reset_at is None:
            return None
        return max(self.reset_at - now, 0.0)

    @property
    def exhausted(self) -> bool:
        """True when the server said no requests are left."""
        return self.remaining == 0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    want = name.lower()
    for key, value in headers.items():
        if key.lower() == want:
            return value
    return None


def _nonneg_int(value: str | None, upper: int) -> int | None:
    if value is None or len(value) > 40:
        return None
    m = _INT.match(value)
    if not m:
        return None
    number = int(m.group(1))
    return number if number <= upper else None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """Read the three rate-limit headers.

    Args:
        headers: response headers (any mapping; names are matched case-insensitively).

    Returns:
        A :class:`RateLimit`, or None when none of the three headers is present at all.
    """
    name_limit, name_remaining, name_reset = contract.RATE_LIMIT_HEADERS
    raw = [_header(headers, n) for n in (name_limit, name_remaining, name_reset)]
    if all(v is None for v in raw):
        return None
    limit = _nonneg_int(raw[0], 10**15)
    remaining = _nonneg_int(raw[1], 10**15)
    reset = _nonneg_int(raw[2], _MAX_RESET)
    return RateLimit(limit=limit, remaining=remaining,
                     reset_at=float(reset) if reset is not None else None)
