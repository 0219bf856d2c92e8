"""The one test-only crash hook of the rotation engine.

When the environment variable :data:`CRASH_ENV` names a step boundary (``intent``,
``created``, ``pending-written``, ``stored``, ``verified``, ``activated``,
``canonical-written``, ``promoted``, ``old-disabled``, ``old-deleted``, ``done``,
``rollback-restored``), the process SIGKILLs itself on reaching it: no ``finally`` block,
no flush, no goodbye — exactly what an OOM kill or a power cut does. Crash tests use it to
prove that ``rotate resume`` recovers from every boundary.

It is inert unless that variable is set, and nothing else in the package reads it.
"""

from __future__ import annotations

import os
import signal
from typing import Final

CRASH_ENV: Final = "IMPROMPTU_TEST_CRASH_AT"

BOUNDARIES: Final = (
    "intent", "created", "pending-written", "stored", "verified", "activated",
    "canonical-written", "promoted", "old-disabled", "old-deleted", "done",
    "rollback-restored",
)


def crash_point(boundary: str) -> None:
    """SIGKILL this process if :data:`CRASH_ENV` equals ``boundary`` (test-only; inert)."""
    if os.environ.get(CRASH_ENV) == boundary:
        os.kill(os.getpid(), signal.SIGKILL)
