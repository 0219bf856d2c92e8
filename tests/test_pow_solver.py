"""The solver: verify(solve(c)) holds, changed nonces fail, and every worker stops at once."""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops import contract
from impromptu_ops.errors import Interrupted, PolicyDenied
from impromptu_ops.pow.backends import BACKENDS, Backend
from impromptu_ops.pow.challenge import Argon2Params, Challenge, Solution, parse_challenge
from impromptu_ops.pow.solver import Progress, Solver, calibrate, solve
from impromptu_ops.pow.verify import failing_rounds, meets, verify
from impromptu_ops.settings import PowSettings

FAST = PowSettings(calibration_seconds=0.02)


def make(difficulties: list[int], seed: int = 0, memory_kib: int = 8,
         expires: timedelta = timedelta(minutes=15), salt_len: int = 16) -> Challenge:
    return parse_challenge({
        "chainId": str(uuid.UUID(int=seed + 1)),
        "params": {"memoryKiB": memory_kib, "iterations": 1, "parallelism": 1, "hashLength": 32},
        "rounds": [{"index": i,
                    "salt": base64.b64encode(bytes([seed % 256, i]) * (salt_len // 2)).decode(),
                    "difficulty": d}
                   for i, d in enumerate(difficulties)],
        "expiresAt": (datetime.now(UTC) + expires).isoformat(),
    })


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 7), min_size=1, max_size=10), st.integers(0, 10_000),
       st.integers(1, 3))
def test_verify_accepts_what_solve_finds(ds: list[int], seed: int, workers: int) -> None:
    challenge = make(ds, seed)
    result = solve(challenge, PowSettings(calibration_seconds=0.01, workers=workers))
    assert verify(challenge, result.solution)
    assert result.hashes >= len(ds)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(3, 7), min_size=1, max_size=6), st.integers(0, 10_000),
       st.data())
def test_verify_rejects_a_changed_nonce(ds: list[int], seed: int, data: st.DataObject) -> None:
    challenge = make(ds, seed)
    # One worker searching nonces in order finds the smallest solving nonce of each round,
    # so every smaller nonce is known not to solve it.
    solution, _ = Solver(BACKENDS["libsodium"], 1, batch=1).solve(challenge)
    i = data.draw(st.integers(0, len(ds) - 1))
    new = data.draw(st.integers(0, 2**63 - 1).filter(lambda n: n != solution.nonces[i]))
    changed = list(solution.nonces)
    changed[i] = new
    tampered = Solution(challenge.chain_id, tuple(changed))
    # An independent computation (libsodium, not the reference verify uses) says whether
    # the new nonce happens to solve the round too; verify must agree exactly.
    rnd = challenge.rounds[i]
    digest = BACKENDS["libsodium"].hash(contract.pow_password(challenge.chain_id, i, new),
                                        rnd.salt, challenge.params)
    assert verify(challenge, tampered) is meets(digest, rnd.difficulty)
    if new < solution.nonces[i]:
        assert failing_rounds(challenge, tampered) == [i]
    assert not verify(challenge, Solution(str(uuid.uuid4()), solution.nonces))


def test_workers_share_the_rounds_and_report_progress() -> None:
    challenge = make([9] * 4, seed=3)
    seen: list[Progress] = []
    solver = Solver(BACKENDS["libsodium"], 3, progress=seen.append, progress_interval=0.01)
    solution, hashes = solver.solve(challenge)
    assert verify(challenge, solution)
    assert seen[-1].rounds_done == 4 and seen[-1].hashes == hashes
    assert all(a.hashes <= b.hashes for a, b in itertools.pairwise(seen))


class CountingBackend:
    """Wraps a backend, counts calls per thread, and can stall or fail on demand."""

    def __init__(self, delay: float = 0.0, fail_after: int | None = None) -> None:
        self.calls = 0
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.delay = delay
        self.fail_after = fail_after

    def hash(self, password: bytes, salt: bytes, params: Argon2Params) -> bytes:
        with self.lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
            if self.fail_after is not None and self.calls > self.fail_after:
                raise MemoryError("cannot allocate")
        time.sleep(self.delay)
        return b"\xff" * params.hash_length  # never solves anything

    def backend(self) -> Backend:
        return Backend("counting", self.hash, lambda p, n: None)


def test_deadline_stops_every_worker() -> None:
    fake = CountingBackend(delay=0.01)
    solver = Solver(fake.backend(), 3, progress_interval=0.01)
    start = time.monotonic()
    with pytest.raises(Interrupted, match="deadline with 0 of 2 rounds"):
        solver.solve(make([8, 8]), deadline=time.monotonic() + 0.2)
    assert time.monotonic() - start < 1.0
    calls = fake.calls
    time.sleep(0.1)
    assert fake.calls == calls, "a worker kept hashing after the deadline"
    assert len(fake.threads) == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("pow-worker")]


def test_stop_event_and_ctrl_c_stop_the_search() -> None:
    fake = CountingBackend(delay=0.005)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    with pytest.raises(Interrupted, match="stopped"):
        Solver(fake.backend(), 2, progress_interval=0.01).solve(make([8]), stop=stop)

    def interrupt(_: Progress) -> None:
        raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="Ctrl-C"):
        Solver(fake.backend(), 2, progress=interrupt, progress_interval=0.01).solve(make([8]))
    assert not [t for t in threading.enumerate() if t.name.startswith("pow-worker")]


def test_a_failing_backend_stops_everyone_with_a_clear_error() -> None:
    fake = CountingBackend(fail_after=5)
    with pytest.raises(PolicyDenied, match="counting Argon2id backend failed: MemoryError"):
        Solver(fake.backend(), 2, progress_interval=0.01).solve(make([8, 8]))


def test_calibration_falls_back_to_the_next_backend() -> None:
    broken = CountingBackend(fail_after=0).backend()
    chosen, rate = calibrate([broken, BACKENDS["argon2-cffi"]], Argon2Params(8, 1, 1, 32), 2,
                             0.02)
    assert chosen.name == "argon2-cffi" and rate > 0
    with pytest.raises(PolicyDenied, match="every Argon2id backend failed"):
        calibrate([broken], Argon2Params(8, 1, 1, 32), 1, 0.01)


def test_solve_refuses_before_hashing() -> None:
    with pytest.raises(PolicyDenied, match="above the cap"):
        solve(make([30]), FAST)
    with pytest.raises(PolicyDenied, match="expired at"):
        solve(make([2], expires=timedelta(seconds=-1)), FAST)
    with pytest.raises(PolicyDenied, match="expected to take"):
        solve(make([24] * 10, memory_kib=64), PowSettings(calibration_seconds=0.01))


def test_solve_uses_a_slower_backend_when_libsodium_cannot() -> None:
    challenge = make([4, 4], salt_len=24)
    planned: list[str] = []
    result = solve(challenge, FAST, on_plan=lambda p: planned.append(p.backend))
    assert planned == ["cryptography"] and result.plan.backend == "cryptography"
    assert verify(challenge, result.solution)


def test_the_memory_budget_caps_the_hashes_running_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """8 workers asked for, 1 MiB per hash, a 2 MiB budget: never more than 2 hashes at once."""
    real = BACKENDS["argon2-cffi"]
    lock = threading.Lock()
    running, peak = 0, 0

    def tracked(password: bytes, salt: bytes, params: Argon2Params) -> bytes:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.002)  # widen the window so overlapping hashes are seen
            return real.hash(password, salt, params)
        finally:
            with lock:
                running -= 1

    monkeypatch.setitem(BACKENDS, "argon2-cffi", Backend("argon2-cffi", tracked, real.refuses))
    challenge = make([4] * 4, seed=11, memory_kib=1024)
    caps = PowSettings(calibration_seconds=0.05, workers=8, memory_budget_mib=2)
    result = solve(challenge, caps, backend="argon2-cffi")
    assert result.plan.concurrency == 2
    assert peak == 2  # bounded by the budget, and the bound is used
    assert verify(challenge, result.solution)
    with pytest.raises(PolicyDenied, match="budget is 0 MiB"):
        solve(challenge, PowSettings(memory_budget_mib=0), backend="argon2-cffi")
