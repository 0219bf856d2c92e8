"""Block timestamps: fetched once per block, batched, and dates turned into blocks.

This module owns two questions about time on chain:

- *When was block N?* :meth:`BlockTimes.fetch` answers for many blocks at once from a
  ``{block: timestamp}`` map the caller persists (the reconciliation keeps it in its scan
  cache), asking the node only for the blocks it does not hold, in batches of
  :data:`BATCH` (each element of a batch is one JSON-RPC call, so this is one call per new
  block, not one request).
- *Which blocks does a date range cover?* :meth:`BlockTimes.first_at_or_after` binary
  searches block timestamps (which never decrease) and remembers every probe, so a month or
  a tax year costs at most ``ceil(log2(latest + 1))`` lookups per bound on a cold cache and
  none on a warm one.

Timestamps of blocks above the final head can still change with a reorg: the caller decides
which entries to persist (:meth:`BlockTimes.final_entries`). It does not scan logs.
"""

from __future__ import annotations

from collections.abc import Iterable

from impromptu_ops.chain.rpc import Block, JsonRpcClient
from impromptu_ops.errors import ChainError

BATCH = 200  # blocks per batch request


class BlockTimes:
    """Timestamps by block number.

    Args:
        rpc: the chain client.
        known: ``{block: unix seconds}`` already known (e.g. from a cache); updated in place.
        latest: the newest block (its timestamp is known without asking).

    Attributes:
        lookups: blocks asked of the node so far (the benchmark reads it).
    """

    def __init__(self, rpc: JsonRpcClient, known: dict[int, int], latest: Block) -> None:
        self.rpc = rpc
        self.known = known
        self.latest = latest
        self.known[latest.number] = latest.timestamp
        self.lookups = 0

    def fetch(self, numbers: Iterable[int]) -> dict[int, int]:
        """Timestamps of these blocks (asking only for unknown ones, batched).

        Raises:
            ChainError: the node does not serve one of them.
        """
        wanted = sorted({n for n in numbers if n >= 0})
        missing = [n for n in wanted if n not in self.known]
        for i in range(0, len(missing), BATCH):
            part = missing[i:i + BATCH]
            self.lookups += len(part)
            for number, block in zip(part, self.rpc.get_blocks(part), strict=True):
                if block is None:
                    raise ChainError(f"the node does not serve block {number}")
                self.known[number] = block.timestamp
        return {n: self.known[n] for n in wanted}

    def timestamp(self, number: int) -> int:
        if number not in self.known:
            self.lookups += 1
            block = self.rpc.get_block(number)
            if block is None:
                raise ChainError(f"the node does not serve block {number}")
            self.known[number] = block.timestamp
        return self.known[number]

    def first_at_or_after(self, timestamp: int) -> int:
        """The first block whose timestamp is at or after ``timestamp`` (binary search over
        ``[0, latest]``); ``latest + 1`` when every block is older."""
        if self.latest.timestamp < timestamp:
            return self.latest.number + 1
        lo, hi = 0, self.latest.number
        # Narrow with what is already known first: a warm cache costs no call.
        for number, ts in self.known.items():
            if number <= self.latest.number:
                if ts < timestamp and number >= lo:
                    lo = number + 1
                elif ts >= timestamp and number < hi:
                    hi = number
        while lo < hi:
            mid = (lo + hi) // 2
            if self.timestamp(mid) < timestamp:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def final_entries(self, final_block: int) -> dict[int, int]:
        """The timestamps safe to persist: blocks at or below the final head."""
        return {n: t for n, t in self.known.items() if n <= final_block}
