"""Private: Run one job per agent on a bounded pool, each agent under its own deadline.

The fleet commands (health, heartbeat, rotate) share this one scheduler:

- at most ``concurrency`` agents run at once (``fleet.concurrency``);
- each agent's run has its own deadline, counted from when *it* starts: an agent still
  running past its deadline is recorded as overrun (:class:`~impromptu_ops.errors.
  DeadlineExceeded`) and its slot is handed to a fresh worker, so one slow or hung agent
  never holds the others back past their own deadlines (its thread is a daemon: it can
  finish or be dropped with the process; the job itself is crash-safe per agent);
- an error of one agent is that agent's outcome, never the run's;
- ``canary``: the first agent runs alone first; when it fails (``failed`` says what
  failing means) the others are not started and are recorded as not run.

Pure scheduling: the job does all I/O. Results come back in the order of ``names``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from impromptu_ops.errors import DeadlineExceeded, InternalError, OpsError
from impromptu_ops.secret import REDACTOR

T = TypeVar("T")


@dataclass(frozen=True)
class AgentRun(Generic[T]):
    """One agent's outcome: ``value`` or ``error`` (``skipped`` when never started)."""

    agent: str
    value: T | None = None
    error: OpsError | None = None
    duration: float = 0.0
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.skipped


def _guarded(job: Callable[[str], T], name: str) -> tuple[T | None, OpsError | None]:
    try:
        return job(name), None
    except OpsError as exc:
        return None, exc
    except Exception as exc:
        return None, InternalError(REDACTOR.redact(
            f"internal error: {type(exc).__name__}: {exc}"))


def run_each(names: Sequence[str], job: Callable[[str], T], *, concurrency: int,
             deadline: float, canary: bool = False,
             failed: Callable[[AgentRun[T]], bool] = lambda r: not r.ok,
             clock: Callable[[], float] = time.monotonic) -> list[AgentRun[T]]:
    """Run ``job(name)`` for every name; see the module docstring.

    Args:
        names: the agents, in report order.
        job: one agent's work; its OpsError is that agent's outcome.
        concurrency: most agents running at once (at least 1).
        deadline: seconds one agent may run before it is recorded as overrun.
        canary: run ``names[0]`` alone first and stop when ``failed`` says it failed.
        failed: whether an outcome counts as a failure (for the canary).
        clock: monotonic seconds (tests inject one).

    Returns:
        One :class:`AgentRun` per name, in the order of ``names``.
    """
    results: dict[str, AgentRun[T]] = {}
    if canary and names:
        first = _run_batch(names[:1], job, 1, deadline, clock)[names[0]]
        results[names[0]] = first
        if failed(first):
            for name in names[1:]:
                results[name] = AgentRun(name, skipped=True, error=None)
            return [results[n] for n in names]
        names_left: Sequence[str] = names[1:]
    else:
        names_left = names
    results.update(_run_batch(names_left, job, concurrency, deadline, clock))
    return [results[n] for n in names]


def _run_batch(names: Sequence[str], job: Callable[[str], T], concurrency: int,
               deadline: float, clock: Callable[[], float]) -> dict[str, AgentRun[T]]:
    queue = deque(names)
    results: dict[str, AgentRun[T]] = {}
    started: dict[str, float] = {}
    cond = threading.Condition()

    def worker() -> None:
        while True:
            with cond:
                if not queue:
                    return
                name = queue.popleft()
                started[name] = clock()
            value, error = _guarded(job, name)
            with cond:
                if name in results:  # recorded as overrun: a fresh worker took the slot
                    return
                results[name] = AgentRun(name, value, error, clock() - started[name])
                cond.notify_all()

    def spawn() -> None:
        threading.Thread(target=worker, name="fleet-agent", daemon=True).start()

    for _ in range(max(1, min(concurrency, len(names)))):
        spawn()
    with cond:
        while len(results) < len(names):
            now = clock()
            running = [n for n in started if n not in results]
            for name in running:
                if now - started[name] >= deadline:
                    results[name] = AgentRun(name, error=DeadlineExceeded(
                        f"agent {name}: no result within {deadline:g}s (left running)"),
                        duration=now - started[name])
                    spawn()  # its slot goes to the next agent
            waits = [started[n] + deadline - now for n in running if n not in results]
            cond.wait(timeout=max(0.01, min(waits)) if waits else 0.5)
    return results
