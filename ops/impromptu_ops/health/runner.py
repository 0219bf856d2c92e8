"""Private: Run health checks concurrently, each under its own timeout.

Every check runs in its own *daemon* thread: a check that hangs past its timeout is
reported (UNKNOWN, or CRITICAL for checks of the monitored service itself, where "no
answer" means "down") and abandoned, and the process can still exit at once — a
``ThreadPoolExecutor`` would join the stuck thread at exit. Any exception a check raises
becomes UNKNOWN with one redacted line: a bug in a check is our failure, not the
platform's.

Pure orchestration: the checks and their shared context are in :mod:`.checks`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from impromptu_ops.errors import OpsError
from impromptu_ops.health.model import CheckResult, Report, Status
from impromptu_ops.secret import REDACTOR


@dataclass(frozen=True)
class CheckSpec:
    """A named check, its function, its timeout and the status a timeout means."""

    name: str
    run: Callable[[], CheckResult]
    timeout: float
    on_timeout: Status = Status.UNKNOWN


def _guarded(spec: CheckSpec) -> CheckResult:
    try:
        return spec.run()
    except OpsError as exc:
        return CheckResult(spec.name, Status.UNKNOWN, REDACTOR.redact(exc.diagnostics()))
    except Exception as exc:  # a bug in a check: still one line, UNKNOWN
        return CheckResult(spec.name, Status.UNKNOWN,
                           REDACTOR.redact(f"internal error: {type(exc).__name__}: {exc}"))


def run_checks(specs: Sequence[CheckSpec], clock: Callable[[], float] = time.monotonic
               ) -> Report:
    """Start every check at once; collect each result by its own deadline."""
    started = clock()
    slots: list[CheckResult | None] = [None] * len(specs)
    done = [threading.Event() for _ in specs]
    begun = [0.0] * len(specs)

    def worker(i: int) -> None:
        begun[i] = clock()
        result = _guarded(specs[i])
        slots[i] = replace(result, duration=clock() - begun[i])
        done[i].set()

    for i, spec in enumerate(specs):
        threading.Thread(target=worker, args=(i,), name=f"check-{spec.name}",
                         daemon=True).start()
    results: list[CheckResult] = []
    for i, spec in enumerate(specs):
        remaining = started + spec.timeout - clock()
        finished = done[i].wait(max(0.0, remaining))
        got = slots[i]
        if finished and got is not None:
            results.append(got)
        else:
            results.append(CheckResult(spec.name, spec.on_timeout,
                                       f"no result within {spec.timeout:g}s",
                                       duration=clock() - started))
    return Report(tuple(results), duration=clock() - started)
