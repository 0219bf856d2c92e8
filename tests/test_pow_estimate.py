"""The estimate: exact expectation, a p99 close to the exact quantile, caps and expiry."""

from __future__ import annotations

import base64
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.errors import PolicyDenied
from impromptu_ops.pow.challenge import Challenge, parse_challenge
from impromptu_ops.pow.estimate import (
    check_caps,
    check_time,
    concurrency,
    estimate,
    format_duration,
    quantile_hashes,
)
from impromptu_ops.settings import PowSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make(difficulties: list[int], memory_kib: int = 131_072,
         expires: timedelta = timedelta(minutes=15)) -> Challenge:
    return parse_challenge({
        "chainId": str(uuid.UUID(int=1)),
        "params": {"memoryKiB": memory_kib, "iterations": 1, "parallelism": 1, "hashLength": 32},
        "rounds": [{"index": i, "salt": base64.b64encode(bytes(16)).decode(), "difficulty": d}
                   for i, d in enumerate(difficulties)],
        "expiresAt": (NOW + expires).isoformat(),
    })


def exact_negative_binomial_quantile(n: int, d: int, tail: float = 0.01) -> int:
    """Smallest k with P(sum of n geometric(2^-d) trial counts <= k) >= 1 - tail."""
    p = 2.0 ** -d
    cdf, k = 0.0, n
    while True:
        cdf += math.exp(math.lgamma(k) - math.lgamma(n) - math.lgamma(k - n + 1)
                        + n * math.log(p) + (k - n) * math.log1p(-p))
        if cdf >= 1 - tail:
            return k
        k += 1


@pytest.mark.parametrize(("n", "d"), [(10, 2), (10, 4), (10, 6), (1, 8), (3, 12), (10, 10)])
def test_p99_matches_the_exact_negative_binomial(n: int, d: int) -> None:
    exact = exact_negative_binomial_quantile(n, d)
    assert quantile_hashes([d] * n) == pytest.approx(exact, rel=0.02)


@pytest.mark.parametrize("d", [8, 16, 24])
def test_p99_of_one_round_matches_the_geometric_closed_form(d: int) -> None:
    exact = math.log(0.01) / math.log1p(-(2.0 ** -d))
    assert quantile_hashes([d]) == pytest.approx(exact, rel=0.01)


@settings(deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=12))
def test_p99_lies_between_the_mean_and_a_chernoff_bound(ds: list[int]) -> None:
    mean = sum(2.0 ** d for d in ds)
    q = quantile_hashes(ds)
    assert mean < q
    # Each round alone needs at most ln(100 n) * 2^d with probability 1 - 1/(100 n).
    assert q <= sum(math.log(100 * len(ds)) * 2.0 ** d for d in ds) * 1.01


def test_estimate_divides_by_the_rate() -> None:
    est = estimate(make([4] * 10), hash_rate=8.0)
    assert est.expected_hashes == 160
    assert est.expected_seconds == 20
    assert est.p99_seconds == pytest.approx(exact_negative_binomial_quantile(10, 4) / 8, rel=0.02)
    with pytest.raises(ValueError, match="positive"):
        estimate(make([4]), 0)


def test_caps_refuse_difficulty_memory_and_rounds() -> None:
    caps = PowSettings(max_difficulty_bits=10, max_memory_mib=128, max_rounds=12)
    check_caps(make([10] * 10), caps)
    with pytest.raises(PolicyDenied, match=r"round 3 asks for 11 bits.*cap of 10"):
        check_caps(make([2, 2, 2, 11]), caps)
    with pytest.raises(PolicyDenied, match="256 MiB per hash, above the cap of 128"):
        check_caps(make([2], memory_kib=256 * 1024), caps)
    with pytest.raises(PolicyDenied, match="13 rounds"):
        check_caps(make([2] * 13), caps)


def test_concurrency_never_exceeds_the_memory_budget() -> None:
    challenge = make([2], memory_kib=128 * 1024)
    assert concurrency(challenge, PowSettings(workers=8, memory_budget_mib=300)) == 2
    assert concurrency(challenge, PowSettings(workers=1, memory_budget_mib=300)) == 1
    assert concurrency(challenge, PowSettings(workers=0, memory_budget_mib=4096), 3) == 3
    with pytest.raises(PolicyDenied, match="budget is 100 MiB"):
        concurrency(challenge, PowSettings(memory_budget_mib=100))


def test_time_check_refuses_expired_and_too_slow() -> None:
    challenge = make([10] * 10, expires=timedelta(minutes=1))
    check_time(challenge, estimate(challenge, 1000.0), NOW)
    with pytest.raises(PolicyDenied, match=r"expected to take .* expires in 1 min 00 s"):
        check_time(challenge, estimate(challenge, 10.0), NOW)
    with pytest.raises(PolicyDenied, match="expired at"):
        check_time(challenge, estimate(challenge, 1000.0), NOW + timedelta(minutes=2))


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.25, 12.34, 245, 10_920)] == [
        "250 ms", "12.3 s", "4 min 05 s", "3 h 02 min"]
