"""The incremental cache: range arithmetic, round trips, and never mixing caches."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.reconcile.cache import ScanCache, SeenTransfer, merge_ranges, missing_ranges

ranges = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)).map(
    lambda r: (min(r), max(r))), max_size=12)


@given(ranges, st.integers(0, 300), st.integers(0, 300))
def test_missing_plus_have_covers_exactly(have: list[tuple[int, int]], a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    merged = merge_ranges(have)
    covered = {n for lo, hi in merged for n in range(lo, hi + 1)}
    assert covered == {n for lo, hi in have for n in range(lo, hi + 1)}
    assert all(y[0] > x[1] + 1 for x, y in itertools.pairwise(merged))
    gaps = missing_ranges(first, last, merged)
    in_gaps = [n for lo, hi in gaps for n in range(lo, hi + 1)]
    assert len(in_gaps) == len(set(in_gaps))
    assert set(in_gaps) == set(range(first, last + 1)) - covered


def transfer(n: int) -> Transfer:
    return Transfer(block_number=n, log_index=0, tx_hash="0x" + f"{n:064x}",
                    block_hash="0x" + f"{n + 1:064x}", token="0x" + "aa" * 20,
                    sender="0x" + "cc" * 20, recipient="0x" + "bb" * 20,
                    amount=10**30 + n)


def test_round_trip_and_isolation(tmp_path: Path) -> None:
    cache = ScanCache.open(tmp_path, 8453, "0x" + "AA" * 20, "0x" + "bb" * 20)
    cache.decimals = 18
    cache.mark_scanned(0, 99)
    cache.mark_scanned(100, 150)
    cache.transfers[transfer(5).key] = SeenTransfer(transfer(5), True)
    cache.receipts["0x" + "11" * 32] = [transfer(7)]
    cache.reorged[transfer(9).key] = transfer(9)
    cache.save()
    assert oct(cache.path.stat().st_mode & 0o777) == "0o600"
    again = ScanCache.open(tmp_path, 8453, "0x" + "aa" * 20, "0x" + "bb" * 20)
    assert again.scanned == [(0, 150)] and again.decimals == 18
    assert again.transfers == cache.transfers and again.receipts == cache.receipts
    assert again.reorged == cache.reorged
    assert again.transfers[transfer(5).key].transfer.amount == 10**30 + 5  # exact
    # another wallet or chain never sees this cache
    assert ScanCache.open(tmp_path, 8453, "0x" + "aa" * 20, "0x" + "dd" * 20).scanned == []
    assert ScanCache.open(tmp_path, 1, "0x" + "aa" * 20, "0x" + "bb" * 20).scanned == []


def test_a_damaged_cache_is_ignored_not_trusted(tmp_path: Path) -> None:
    cache = ScanCache.open(tmp_path, 8453, "0x" + "aa" * 20, "0x" + "bb" * 20)
    cache.mark_scanned(0, 10)
    cache.save()
    cache.path.write_text("{not json")
    assert ScanCache.open(tmp_path, 8453, "0x" + "aa" * 20, "0x" + "bb" * 20).scanned == []
    doc = {"version": 1, "chainId": 8453, "token": "0x" + "aa" * 20,
           "wallet": "0x" + "bb" * 20, "scanned": [[0, "x"]], "transfers": [],
           "receipts": {}, "reorged": []}
    cache.path.write_text(json.dumps(doc))
    assert ScanCache.open(tmp_path, 8453, "0x" + "aa" * 20, "0x" + "bb" * 20).scanned == []
