"""Private: the typed answer to "does the store's current key work right now?".

:meth:`impromptu_ops.rotation.engine.Rotator.probe` returns a :class:`KeyCheck`; the engine
branches on its :class:`Verdict` (only a REFUSED key is positive evidence that the agent may
be without a working key), and renders ``str(check)`` in its notes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    OK = "ok"  # the provider accepted the key just now
    REFUSED = "refused"  # the provider refused it, or the store has no current key
    UNKNOWN = "unknown"  # the check itself failed (network, store): says nothing new


@dataclass(frozen=True)
class KeyCheck:
    """One check of the current key: the verdict and, unless OK, the reason (no secret)."""

    verdict: Verdict
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.verdict.value}: {self.detail}" if self.detail else self.verdict.value
