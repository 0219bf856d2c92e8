"""Private: The Monitoring Plugins threshold range syntax, parsed and evaluated.

A range is ``[@][start:][end]`` (the plugin development guidelines, "Threshold and ranges"):

======== ===================================================================
``10``   alert if the value is < 0 or > 10 (outside 0..10)
``10:``  alert if < 10 (outside 10..+inf)
``~:10`` alert if > 10 (outside -inf..10)
``10:20`` alert if < 10 or > 20
``@10:20`` alert if 10 <= value <= 20 (inside, ends included)
======== ===================================================================

``start`` defaults to 0 when the colon is absent, ``~`` means minus infinity, an empty
``end`` means plus infinity, and ``start <= end`` is required. The empty string means "no
threshold" and is handled by the caller (:mod:`impromptu_ops.health.policy`), not here.

This module is pure: text in, :class:`NagiosRange` out, ``alerts(value)`` a boolean. It
knows nothing of checks, files or flags.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE_RE = re.compile(
    rf"^(?P<inside>@)?(?:(?P<start>~|{_NUMBER})?(?P<colon>:))?(?P<end>{_NUMBER})?$"
)
MAX_RANGE_TEXT = 64


class RangeError(ValueError):
    """A threshold range that does not follow the syntax, or with start > end."""


@dataclass(frozen=True)
class NagiosRange:
    """One parsed range. ``start``/``end`` may be infinite; ``inside`` is the ``@`` form."""

    start: float
    end: float
    inside: bool = False

    @classmethod
    def parse(cls, text: str) -> NagiosRange:
        """Parse ``text``; raise :class:`RangeError` with a one-line reason when invalid."""
        raw = text.strip()
        if not raw or len(raw) > MAX_RANGE_TEXT:
            raise RangeError(
                f"invalid threshold range {text[:MAX_RANGE_TEXT]!r}: empty or too long"
            )
        m = _RANGE_RE.match(raw)
        if m is None or (m["end"] is None and m["start"] in (None, "", "~")):
            raise RangeError(
                f"invalid threshold range {raw!r}: expected [@][start:][end]"
                " (e.g. 10, 10:, ~:10, @5:9)"
            )
        if m["colon"] is None or m["start"] in (None, ""):
            start = 0.0
        elif m["start"] == "~":
            start = -math.inf
        else:
            start = float(m["start"])
        end = float(m["end"]) if m["end"] is not None else math.inf
        if not (math.isfinite(start) or start == -math.inf) or not (
            math.isfinite(end) or end == math.inf
        ):
            raise RangeError(f"invalid threshold range {raw!r}: number out of bounds")
        if start > end:
            raise RangeError(f"invalid threshold range {raw!r}: start is greater than end")
        return cls(start, end, bool(m["inside"]))

    def alerts(self, value: float) -> bool:
        """True when ``value`` should raise this range's alert (NaN always alerts)."""
        if math.isnan(value):
            return True
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        """The canonical text form (the one Nagios perfdata shows)."""
        def num(x: float) -> str:
            return str(int(x)) if x.is_integer() else repr(x)

        prefix = "@" if self.inside else ""
        if self.start == -math.inf:
            head = "~:"
        elif self.start == 0:
            head = ""
        else:
            head = f"{num(self.start)}:"
        tail = "" if self.end == math.inf else num(self.end)
        if head == "" and tail == "":
            # 0..inf: "0:" is the only way to say it.
            head = "0:"
        return f"{prefix}{head}{tail}"
