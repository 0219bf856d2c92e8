"""The fleet scheduler (``fleet/run.py``), server-free: the concurrency bound, one agent's
deadline, errors kept per agent, and the canary."""

from __future__ import annotations

import threading

from impromptu_ops.errors import DeadlineExceeded, LockBusy
from impromptu_ops.fleet.run import run_each


def test_at_most_concurrency_agents_run_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def job(name: str) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                release.set()
        release.wait(5)
        with lock:
            running -= 1
        return name.upper()

    runs = run_each([f"a{i}" for i in range(10)], job, concurrency=3, deadline=30)
    assert [r.value for r in runs] == [f"A{i}" for i in range(10)]  # roster order kept
    assert peak == 3


def test_a_hung_agent_is_recorded_and_does_not_hold_the_others() -> None:
    hang = threading.Event()  # never set: the agent 'stuck' never returns by itself

    def job(name: str) -> str:
        if name == "stuck":
            hang.wait(30)
        return "ok"

    runs = run_each(["stuck", "b", "c", "d"], job, concurrency=1, deadline=0.3)
    hang.set()
    by = {r.agent: r for r in runs}
    assert isinstance(by["stuck"].error, DeadlineExceeded)
    assert "stuck" in by["stuck"].error.diagnostics()
    assert all(by[n].value == "ok" and by[n].ok for n in "bcd")


def test_errors_stay_with_their_agent() -> None:
    def job(name: str) -> int:
        if name == "busy":
            raise LockBusy("another run holds the lock")
        if name == "bug":
            raise ValueError("boom")
        return 1

    by = {r.agent: r for r in run_each(["busy", "bug", "fine"], job, concurrency=2,
                                       deadline=10)}
    assert by["busy"].error is not None and by["busy"].error.exit_code == 75
    assert by["bug"].error is not None and by["bug"].error.exit_code == 70
    assert "ValueError: boom" in by["bug"].error.diagnostics()
    assert by["fine"].ok and by["fine"].value == 1


def test_a_failed_canary_starts_no_one_else() -> None:
    started: list[str] = []

    def job(name: str) -> bool:
        started.append(name)
        return name != "canary"

    runs = run_each(["canary", "b", "c"], job, concurrency=4, deadline=10, canary=True,
                    failed=lambda r: r.value is not True)
    assert started == ["canary"]
    assert [r.skipped for r in runs] == [False, True, True]
    runs = run_each(["b", "c", "d"], job, concurrency=4, deadline=10, canary=True,
                    failed=lambda r: r.value is not True)
    assert not any(r.skipped for r in runs) and started[1] == "b"
