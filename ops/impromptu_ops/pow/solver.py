"""The PoW solver: every core on every round, stopped at once, within the memory budget.

Workers are threads: each backend's binding releases the GIL for the hash, so threads
scale like processes without pickling or re-importing. Work is handed out by one
dispatcher under a lock as ``(round, nonce range)`` pieces, round-robin over the rounds
still unsolved, so all rounds progress in parallel and nobody idles until the last round
is solved. The hash itself cannot be interrupted (it is one C call); "stop at once" means
no worker starts another attempt once a round is solved (for that round), the challenge is
done, a deadline passes, Ctrl-C arrives or a caller sets the stop event.

:func:`solve` is the whole sequence the CLI and registration use: caps, backend choice,
calibration, estimate, expiry check, search. :class:`Solver` is the search alone.

This module never prints: callers pass ``on_plan`` and ``progress`` callbacks.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from impromptu_ops import contract
from impromptu_ops.errors import Interrupted, OpsError, PolicyDenied, Terminated
from impromptu_ops.pow.backends import Backend, candidates
from impromptu_ops.pow.challenge import Argon2Params, Challenge, Solution
from impromptu_ops.pow.estimate import Estimate, check_caps, check_time, concurrency, estimate
from impromptu_ops.pow.verify import meets
from impromptu_ops.secret import clip
from impromptu_ops.settings import PowSettings

Clock = Callable[[], float]


@dataclass(frozen=True)
class Progress:
    """A snapshot for a progress bar."""

    rounds_done: int
    rounds_total: int
    hashes: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.hashes / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class Plan:
    """What the solver is about to do, for the operator to read before it starts."""

    backend: str
    concurrency: int
    estimate: Estimate
    seconds_left: float
    difficulties: tuple[int, ...]
    memory_kib: int


@dataclass(frozen=True)
class SolveResult:
    solution: Solution
    plan: Plan
    hashes: int
    elapsed: float


class _Dispatcher:
    """Hands out ``(round, first nonce, count)`` round-robin over unsolved rounds."""

    def __init__(self, rounds: int, batch: int) -> None:
        self._lock = threading.Lock()
        self._next = [0] * rounds
        self._pending = list(range(rounds))
        self._turn = 0
        self._batch = batch
        self.found: dict[int, int] = {}
        self.done = threading.Event()

    def take(self) -> tuple[int, int, int] | None:
        with self._lock:
            if not self._pending:
                return None
            self._turn %= len(self._pending)
            index = self._pending[self._turn]
            self._turn += 1
            start = self._next[index]
            self._next[index] = start + self._batch
            return index, start, self._batch

    def solved(self, index: int) -> bool:
        return index in self.found  # a dict read is atomic under the GIL

    def report(self, index: int, nonce: int) -> None:
        with self._lock:
            if index in self.found:
                return
            self.found[index] = nonce
            self._pending.remove(index)
            if not self._pending:
                self.done.set()


class Solver:
    """Searches all rounds of a challenge with ``workers`` threads of ``backend``.

    Args:
        backend: the Argon2id implementation.
        workers: concurrent hashes (already bounded by the memory budget by the caller).
        batch: nonces per piece of work (default: 1 for real-sized hashes, more for tiny).
        progress: called from the calling thread about every ``progress_interval`` seconds.
        clock: monotonic seconds (injected for tests).
    """

    def __init__(self, backend: Backend, workers: int, *, batch: int | None = None,
                 progress: Callable[[Progress], None] | None = None,
                 progress_interval: float = 0.25, clock: Clock = time.monotonic) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.backend = backend
        self.workers = workers
        self.batch = batch
        self.progress = progress
        self.progress_interval = progress_interval
        self.clock = clock

    def solve(self, challenge: Challenge, *, deadline: float | None = None,
              stop: threading.Event | None = None) -> tuple[Solution, int]:
        """Find a nonce for every round.

        Args:
            challenge: the parsed challenge.
            deadline: a ``clock()`` value after which the search stops.
            stop: set it (from any thread) to stop the search.

        Returns:
            The solution and the number of hashes computed.

        Raises:
            Interrupted: the deadline passed, ``stop`` was set, or Ctrl-C.
            OpsError: a worker failed (the backend raised); every worker is stopped first.
        """
        batch = self.batch or (1 if challenge.params.memory_kib >= 1024 else 16)
        work = _Dispatcher(len(challenge.rounds), batch)
        halt = stop or threading.Event()
        counts = [0] * self.workers
        failures: list[BaseException] = []
        started = self.clock()

        def worker(slot: int) -> None:
            try:
                while not halt.is_set() and (job := work.take()) is not None:
                    index, first, count = job
                    rnd = challenge.rounds[index]
                    for nonce in range(first, first + count):
                        if halt.is_set() or work.solved(index):
                            break
                        password = contract.pow_password(challenge.chain_id, index, nonce)
                        digest = self.backend.hash(password, rnd.salt, challenge.params)
                        counts[slot] += 1
                        if meets(digest, rnd.difficulty):
                            work.report(index, nonce)
                            break
            except BaseException as exc:  # a backend failure must stop everyone
                failures.append(exc)
                halt.set()
                work.done.set()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True,
                                    name=f"pow-worker-{i}") for i in range(self.workers)]
        for t in threads:
            t.start()

        def snapshot() -> Progress:
            return Progress(len(work.found), len(challenge.rounds), sum(counts),
                            self.clock() - started)

        timed_out = False
        try:
            while not work.done.wait(self.progress_interval):
                if halt.is_set():
                    break
                if deadline is not None and self.clock() >= deadline:
                    timed_out = True
                    break
                if self.progress:
                    self.progress(snapshot())
        except KeyboardInterrupt as signalled:
            how = ("stopped (SIGTERM)" if isinstance(signalled, Terminated)
                   else "interrupted (Ctrl-C)")
            raise Interrupted(f"PoW search {how}") from None
        finally:
            halt.set()
            for t in threads:
                t.join()
        if failures:
            exc = failures[0]
            if isinstance(exc, OpsError):
                raise exc
            raise PolicyDenied(f"the {self.backend.name} Argon2id backend failed: "
                               + clip(f"{type(exc).__name__}: {exc}", 300)) from exc
        if timed_out:
            raise Interrupted(
                f"PoW search stopped at its deadline with {len(work.found)} of "
                f"{len(challenge.rounds)} rounds solved",
                hint="the challenge would expire; request a fresh one",
            )
        if len(work.found) != len(challenge.rounds):  # stop was set by the caller
            raise Interrupted("PoW search stopped")
        if self.progress:
            self.progress(snapshot())
        nonces = tuple(work.found[i] for i in range(len(challenge.rounds)))
        return Solution(challenge.chain_id, nonces), sum(counts)


def calibrate(backends: Sequence[Backend], params: Argon2Params, workers: int,
              seconds: float, clock: Clock = time.monotonic) -> tuple[Backend, float]:
    """Measure the aggregate hash rate of the first backend that works.

    Each of ``workers`` threads hashes throwaway passwords until ``seconds`` have passed
    (at least one hash each). A backend that raises (out of memory, a broken build) is
    skipped in favour of the next.

    Returns:
        The backend and its rate in hashes per second, all workers together.

    Raises:
        PolicyDenied: every backend failed.
    """
    salt = os.urandom(16)
    reasons: list[str] = []
    for backend in backends:
        counts = [0] * workers
        failures: list[BaseException] = []
        start = clock()

        def run(slot: int, backend: Backend = backend, counts: list[int] = counts,
                failures: list[BaseException] = failures, start: float = start) -> None:
            try:
                while counts[slot] == 0 or clock() - start < seconds:
                    backend.hash(b"calibrate:%d:%d" % (slot, counts[slot]), salt, params)
                    counts[slot] += 1
            except Exception as exc:
                failures.append(exc)

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = clock() - start
        if failures:
            reasons.append(f"{backend.name}: {type(failures[0]).__name__}")
            continue
        return backend, sum(counts) / max(elapsed, 1e-9)
    raise PolicyDenied("every Argon2id backend failed during calibration: " + "; ".join(reasons))


def solve(challenge: Challenge, caps: PowSettings, *, backend: str = "auto",
          now: datetime | None = None, on_plan: Callable[[Plan], None] | None = None,
          progress: Callable[[Progress], None] | None = None,
          stop: threading.Event | None = None, clock: Clock = time.monotonic) -> SolveResult:
    """Check caps, choose and calibrate a backend, estimate, check expiry, then search.

    Args:
        challenge: the parsed challenge.
        caps: limits (difficulty, memory per hash, memory budget, workers, calibration time).
        backend: ``auto`` or a backend name.
        now: the current time (UTC) for the expiry check.
        on_plan: receives the plan (backend, concurrency, estimate) before the search.
        progress: progress callback, see :class:`Solver`.
        stop: an event that stops the search when set.

    Raises:
        PolicyDenied: above a cap, no usable backend, or not expected to finish in time.
        Interrupted: Ctrl-C, ``stop``, or the challenge's expiry passed while solving.
    """
    check_caps(challenge, caps)
    usable = candidates(challenge.params, (len(r.salt) for r in challenge.rounds), backend)
    workers = concurrency(challenge, caps)
    chosen, rate = calibrate(usable, challenge.params, workers, caps.calibration_seconds, clock)
    est = estimate(challenge, rate)
    now = now or datetime.now(UTC)
    check_time(challenge, est, now)
    seconds_left = (challenge.expires_at - now).total_seconds()
    plan = Plan(chosen.name, workers, est, seconds_left,
                tuple(r.difficulty for r in challenge.rounds), challenge.params.memory_kib)
    if on_plan:
        on_plan(plan)
    started = clock()
    solution, hashes = Solver(chosen, workers, progress=progress, clock=clock).solve(
        challenge, deadline=started + seconds_left, stop=stop)
    return SolveResult(solution, plan, hashes, clock() - started)
