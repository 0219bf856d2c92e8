"""Pure arithmetic before solving: the operator's caps, concurrency, and the time estimate.

Round ``i`` needs a geometric number of attempts with success probability ``p = 2**-d``:
``2**d`` on average. The whole challenge needs the sum over rounds. Its expectation is exact;
its 99th percentile comes from the Lugannani-Rice saddlepoint approximation for lattice
variables on the exact cumulant generating function of that sum of geometric variables,
which is accurate to about a percent in this tail (checked against the exact negative
binomial in the tests) and costs microseconds, whatever the difficulties.

Times are attempts divided by the aggregate hash rate of all workers: rounds are searched
in parallel, so no worker idles until the last round is solved.

This module does no I/O and never hashes; calibration lives in :mod:`.solver`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime

from impromptu_ops.errors import PolicyDenied
from impromptu_ops.pow.challenge import Challenge
from impromptu_ops.settings import PowSettings

MiB_KIB = 1024
P99_TAIL = 0.01


@dataclass(frozen=True)
class Estimate:
    """How long a challenge should take at ``hash_rate`` hashes per second (all workers)."""

    expected_hashes: float
    p99_hashes: float
    hash_rate: float

    @property
    def expected_seconds(self) -> float:
        return self.expected_hashes / self.hash_rate

    @property
    def p99_seconds(self) -> float:
        return self.p99_hashes / self.hash_rate


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _upper_normal(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2))


def _cgf(s: float, log_qs: list[float], log_ps: list[float]) -> tuple[float, float, float]:
    """K, K', K'' of the sum of geometric trial counts at ``s`` (0 < s < min -log q)."""
    k = k1 = k2 = 0.0
    for log_q, log_p in zip(log_qs, log_ps, strict=True):
        a = s + log_q  # log(q e^s) < 0
        one_minus = -math.expm1(a)  # 1 - q e^s, computed without cancellation
        k += log_p + s - math.log(one_minus)
        k1 += 1.0 / one_minus
        k2 += math.exp(a) / (one_minus * one_minus)
    return k, k1, k2


def tail_probability(difficulties: list[int], attempts: float) -> float:
    """P(total attempts >= ``attempts``), saddlepoint approximation (lattice form).

    Args:
        difficulties: bits per round (each at least 1).
        attempts: a number of attempts above the mean.
    """
    ps = [2.0 ** -d for d in difficulties]
    log_ps = [math.log(p) for p in ps]
    log_qs = [math.log1p(-p) for p in ps]
    mean = sum(1.0 / p for p in ps)
    if attempts <= mean:
        return 0.5  # the estimate only asks about the upper tail
    lo, hi = 0.0, min(-lq for lq in log_qs)
    for _ in range(80):  # bisection on K'(s) = attempts; K' rises from mean to infinity
        mid = (lo + hi) / 2
        if _cgf(mid, log_qs, log_ps)[1] < attempts:
            lo = mid
        else:
            hi = mid
    s = (lo + hi) / 2
    k, _, k2 = _cgf(s, log_qs, log_ps)
    w = math.sqrt(max(2.0 * (s * attempts - k), 0.0))
    u = -math.expm1(-s) * math.sqrt(k2)
    if w < 1e-9 or u < 1e-12:
        return 0.5
    return min(1.0, max(0.0, _upper_normal(w) + _phi(w) * (1.0 / u - 1.0 / w)))


def quantile_hashes(difficulties: list[int], tail: float = P99_TAIL) -> float:
    """The number of attempts that suffices with probability ``1 - tail``."""
    mean = sum(2.0 ** d for d in difficulties)
    lo, hi = mean, mean * 2
    while tail_probability(difficulties, hi) > tail:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-6 * hi:  # relative precision far beyond what an estimate needs
        mid = (lo + hi) / 2
        if tail_probability(difficulties, mid) > tail:
            lo = mid
        else:
            hi = mid
    return hi


def estimate(challenge: Challenge, hash_rate: float) -> Estimate:
    """Expected and 99th-percentile work for ``challenge`` at ``hash_rate`` (hashes/s).

    Raises:
        ValueError: ``hash_rate`` is not positive.
    """
    if not hash_rate > 0:
        raise ValueError("hash_rate must be positive")
    difficulties = [r.difficulty for r in challenge.rounds]
    expected = sum(2.0 ** d for d in difficulties)
    return Estimate(expected, quantile_hashes(difficulties), hash_rate)


def concurrency(challenge: Challenge, caps: PowSettings, cpu_count: int | None = None) -> int:
    """How many hashes may run at once: workers, bounded by the memory budget.

    Raises:
        PolicyDenied: not even one hash fits in the memory budget.
    """
    workers = caps.workers or cpu_count or os.cpu_count() or 1
    fit = (caps.memory_budget_mib * MiB_KIB) // challenge.params.memory_kib
    if fit < 1:
        raise PolicyDenied(
            f"one hash needs {challenge.params.memory_kib // MiB_KIB} MiB but the PoW memory "
            f"budget is {caps.memory_budget_mib} MiB",
            hint="raise pow.memory_budget_mib if this machine has the memory",
        )
    return max(1, min(workers, fit))


def check_caps(challenge: Challenge, caps: PowSettings) -> None:
    """Refuse a challenge beyond the operator's caps.

    Raises:
        PolicyDenied: too many rounds, a round above ``max_difficulty_bits``, or memory per
            hash above ``max_memory_mib``.
    """
    if len(challenge.rounds) > caps.max_rounds:
        raise PolicyDenied(f"the challenge has {len(challenge.rounds)} rounds, above the cap "
                           f"of {caps.max_rounds} (pow.max_rounds)")
    worst = max(challenge.rounds, key=lambda r: r.difficulty)
    if worst.difficulty > caps.max_difficulty_bits:
        raise PolicyDenied(
            f"round {worst.index} asks for {worst.difficulty} bits of difficulty, above the cap "
            f"of {caps.max_difficulty_bits}",
            hint="raise it with --max-difficulty if the time estimate is acceptable",
        )
    mem_mib = challenge.params.memory_kib / MiB_KIB
    if mem_mib > caps.max_memory_mib:
        raise PolicyDenied(
            f"the challenge asks for {mem_mib:g} MiB per hash, above the cap of "
            f"{caps.max_memory_mib} MiB",
            hint="raise it with --max-memory-mib if this machine has the memory",
        )


def check_time(challenge: Challenge, est: Estimate, now: datetime) -> None:
    """Refuse when the expected solve time does not fit before the challenge expires.

    Raises:
        PolicyDenied: expired already, or the expected time exceeds the time left.
    """
    left = (challenge.expires_at - now).total_seconds()
    if left <= 0:
        raise PolicyDenied(f"the challenge expired at {challenge.expires_at.isoformat()}",
                           hint="request a fresh challenge")
    if est.expected_seconds > left:
        raise PolicyDenied(
            f"solving is expected to take {format_duration(est.expected_seconds)} "
            f"(99%: {format_duration(est.p99_seconds)}) but the challenge expires in "
            f"{format_duration(left)}",
            hint="use more workers or memory budget, or ask the platform for an easier challenge",
        )


def format_duration(seconds: float) -> str:
    """``850 ms``, ``12.3 s``, ``4 min 05 s``, ``3 h 02 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
