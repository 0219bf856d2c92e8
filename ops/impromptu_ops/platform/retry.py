"""Private: Pure retry arithmetic: full-jitter backoff, ``Retry-After`` parsing, what may be
retried.

This module owns the numbers and the yes/no answers of the retry policy; it does no I/O and
reads no clock or random source of its own (both are passed in), so every rule here is a
function of its arguments and is tested exhaustively with Hypothesis. The loop that sleeps
and resends lives in :mod:`impromptu_ops.platform.http`.

Rules (contract §1):

- Backoff is *full jitter* (AWS architecture blog, "Exponential Backoff And Jitter"):
  ``uniform(0, min(cap, base * 2**attempt))``. Spreading retries over the whole window is
  what stops a fleet of agents from hammering a recovering server in lockstep.
- ``Retry-After`` is accepted as delta-seconds [doc] and as an HTTP-date [ours], measured
  against an injected wall clock and clamped to ``[0, max_wait]``. Garbage is ``None``
  (the caller falls back to backoff), never an exception.
- Only idempotent requests are retried after they may have reached the server: GET, HEAD,
  PUT, DELETE, OPTIONS, and a POST that carries an ``Idempotency-Key``. A plain POST is
  resent only when the connection was never made (nothing left the process).
- A DELETE resent after its answer was lost and then answered 404 has done its job
  (:func:`resent_delete_is_done`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

# Beyond 2**62 the window is capped anyway; bounding the exponent avoids float overflow.
_MAX_EXPONENT = 62
_DELTA_SECONDS = re.compile(r"^\s*(\d{1,18})(?:\.(\d{1,9}))?\s*$", re.ASCII)


def backoff_window(attempt: int, base: float, cap: float) -> float:
    """The upper bound of the full-jitter window for retry number ``attempt`` (0-based).

    Args:
        attempt: how many retries were already made (0 before the first retry).
        base: the first window, in seconds.
        cap: the largest window, in seconds.

    Returns:
        ``min(cap, base * 2**attempt)``, never negative.
    """
    if base <= 0 or cap <= 0:
        return 0.0
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    return min(cap, base * float(2**exponent))


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full-jitter delay before retry number ``attempt``.

    Args:
        attempt: how many retries were already made (0 before the first retry).
        base: the first window, in seconds.
        cap: the largest window, in seconds.
        rand: a uniform source in ``[0, 1)`` (``random.random`` or a seeded one in tests).

    Returns:
        A delay in ``[0, backoff_window(attempt, base, cap)]``.
    """
    window = backoff_window(attempt, base, cap)
    r = rand()
    if not 0.0 <= r < 1.0 or math.isnan(r):  # a broken source must not stretch the wait
        r = 0.0
    return window * r


def parse_retry_after(value: str | None, now: float, max_wait: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Args:
        value: the raw header value (``"120"``, ``"Wed, 21 Oct 2026 07:28:00 GMT"``) or None.
        now: the current wall-clock time, unix seconds (injected).
        max_wait: the largest wait we accept (``settings.platform.max_retry_after``); a
            larger demand is clamped to it.

    Returns:
        A wait in ``[0, max_wait]``, or ``None`` when the header is absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    m = _DELTA_SECONDS.match(text)
    if m:
        seconds = float(m.group(1) + ("." + m.group(2) if m.group(2) else ""))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # HTTP-dates are GMT by definition
            when = when.replace(tzinfo=UTC)
        try:
            seconds = when.timestamp() - now
        except (OverflowError, OSError, ValueError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), max(max_wait, 0.0))


def seconds_until(reset_at: float | None, now: float) -> float | None:
    """Seconds from ``now`` until a unix time (an ``X-RateLimit-Reset``), never negative."""
    if reset_at is None:
        return None
    return max(reset_at - now, 0.0)


def may_resend(method: str, *, idempotency_key: bool, sent: bool) -> bool:
    """Whether a request may be sent again after a failure.

    Args:
        method: the HTTP method.
        idempotency_key: whether the request carries an ``Idempotency-Key`` header.
        sent: whether the request may have reached the server (False only when the
            connection itself failed, so nothing left the process).

    Returns:
        True for idempotent requests, and for any request that was never sent.
    """
    if not sent:
        return True
    m = method.upper()
    return m in IDEMPOTENT_METHODS or (m == "POST" and idempotency_key)


def resent_delete_is_done(method: str, status: int, *, answer_lost: bool) -> bool:
    """Whether an error answer to a resent request means the work was already done.

    A DELETE whose answer was lost (the connection broke after it was sent) and that was
    sent again finds nothing left to delete: the 404 is the first attempt's success, not
    a failure. A 404 to a DELETE sent only once is a real "not found".

    Args:
        method: the HTTP method.
        status: the status of the latest answer.
        answer_lost: whether an earlier attempt may have reached the server.
    """
    return answer_lost and method.upper() == "DELETE" and status == 404
