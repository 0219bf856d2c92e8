"""Private: The test-only hooks of the rotation engine: crash, pause-and-check, and a start barrier.

All three are inert unless their environment variable is set, and nothing else in the
package reads these variables. They exist so that tests can drive the REAL command in a
child process (a crash is then a real SIGKILL, not an exception a handler could swallow):

- :data:`CRASH_ENV` names a step boundary (``intent``, ``created``, ``pending-written``,
  ``stored``, ``verified``, ``activated``, ``canonical-written``, ``promoted``,
  ``retiring``, ``old-disabled``, ``old-deleted``, ``done``, ``rollback-restored``): on
  reaching it the process SIGKILLs itself: no ``finally`` block, no flush, no goodbye,
  exactly what an OOM kill or a power cut does. Crash tests use it to prove that
  ``rotate resume`` recovers from every boundary.
- :data:`STEP_DIR_ENV` names a folder: at EVERY boundary (before the crash check) the
  process creates ``<folder>/<seq>-<pid>-<boundary>.wait`` and waits until the test has
  checked the world (does the store's current key work?) and removed the file. This is how
  "at no instant was the agent without a working key" is checked at each boundary of a
  real run, deterministically, not only by polling. If nobody answers within
  :data:`STEP_WAIT_SECONDS` the process goes on (a dead test must not hang a job).
- :data:`BARRIER_ENV` (``point:folder:count``): at ``point`` (``loaded``: the record was
  read, nothing written yet) the process creates ``<folder>/<pid>`` and waits until
  ``count`` such files exist: two runs started together then both read "no rotation" and
  both try the intent's CAS write, so the test proves that the CAS (not a lock, not
  timing) picks the winner.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import Final

CRASH_ENV: Final = "IMPROMPTU_TEST_CRASH_AT"
STEP_DIR_ENV: Final = "IMPROMPTU_TEST_STEP_DIR"
BARRIER_ENV: Final = "IMPROMPTU_TEST_BARRIER"
STEP_WAIT_SECONDS: Final = 30.0

BOUNDARIES: Final = (
    "intent", "created", "pending-written", "stored", "verified", "activated",
    "canonical-written", "promoted", "retiring", "old-disabled", "old-deleted", "done",
    "rollback-restored",
)

_SEQ = itertools.count(1)


def crash_point(boundary: str) -> None:
    """Pause for the test's check (:data:`STEP_DIR_ENV`), then SIGKILL this process if
    :data:`CRASH_ENV` equals ``boundary``. Inert when neither is set."""
    step_dir = os.environ.get(STEP_DIR_ENV)
    if step_dir:
        _handshake(Path(step_dir), boundary)
    if os.environ.get(CRASH_ENV) == boundary:
        os.kill(os.getpid(), signal.SIGKILL)


def barrier_point(point: str) -> None:
    """Wait at ``point`` until every process named by :data:`BARRIER_ENV` is there."""
    spec = os.environ.get(BARRIER_ENV, "")
    name, _, rest = spec.partition(":")
    folder, _, count = rest.rpartition(":")
    if name != point or not folder or not count.isdigit():
        return
    where = Path(folder)
    (where / str(os.getpid())).touch()
    deadline = time.monotonic() + STEP_WAIT_SECONDS
    while len(list(where.iterdir())) < int(count) and time.monotonic() < deadline:
        time.sleep(0.005)


def _handshake(folder: Path, boundary: str) -> None:
    flag = folder / f"{next(_SEQ):03d}-{os.getpid()}-{boundary}.wait"
    flag.touch()
    deadline = time.monotonic() + STEP_WAIT_SECONDS
    while flag.exists() and time.monotonic() < deadline:
        time.sleep(0.003)
