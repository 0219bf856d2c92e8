"""Finality and reorgs: which blocks can still change, and which already did.

This module owns two questions:

- *How far is final?* :func:`read_heads` asks for the ``finalized`` and ``safe`` block tags
  (post-merge nodes and L2s like Base serve them). A node that does not know them (old
  clients answer an error or ``null``) falls back to ``latest - confirmations``. Matches in
  blocks above the final head are *provisional*: they are reported, but may still vanish.
- *Did a block we saw change?* :func:`changed_blocks` re-reads stored block hashes in one
  batch request and returns the blocks whose hash differs (or that no longer exist): the
  transfers recorded in them were reorged out and must be looked for again.

It does not scan logs (see :mod:`.scan`) nor decide what a reorg means for the ledger (see
:mod:`impromptu_ops.reconcile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from impromptu_ops.chain.rpc import Block, JsonRpcClient, RpcError
from impromptu_ops.errors import ChainError

BATCH = 200  # block hashes per batch request


@dataclass(frozen=True)
class Heads:
    """The chain's tips as seen at one moment.

    Attributes:
        latest: the newest block.
        safe: the ``safe`` tag (or the fallback).
        final: the newest block considered final: ``finalized`` when served, else
            ``latest - confirmations``; never above ``latest``.
        source: ``"finalized"`` or ``"confirmations"``: how ``final`` was decided.
    """

    latest: Block
    safe: int
    final: int
    source: str

    def is_final(self, block_number: int) -> bool:
        return block_number <= self.final


def _tag(rpc: JsonRpcClient, tag: str) -> Block | None:
    try:
        return rpc.get_block(tag)
    except RpcError:
        return None  # the node does not know the tag: use confirmations instead


def read_heads(rpc: JsonRpcClient, confirmations: int, *, use_tags: bool = True) -> Heads:
    """Read latest / safe / finalized.

    Args:
        confirmations: depth below ``latest`` treated as final when the node does not
            serve the ``finalized`` tag.
        use_tags: False to ignore the tags (a node whose tags are known to lie).

    Raises:
        ChainError: no latest block.
    """
    latest = rpc.get_block("latest")
    if latest is None:
        raise ChainError("the node has no latest block")
    by_depth = max(-1, latest.number - max(0, confirmations))
    finalized = _tag(rpc, "finalized") if use_tags else None
    safe = _tag(rpc, "safe") if use_tags else None
    if finalized is not None:
        final = min(finalized.number, latest.number)
        source = "finalized"
    else:
        final, source = by_depth, "confirmations"
    return Heads(latest=latest, safe=safe.number if safe is not None else by_depth,
                 final=final, source=source)


def changed_blocks(rpc: JsonRpcClient, stored: Mapping[int, str]) -> set[int]:
    """Blocks whose canonical hash is no longer the stored one (or that vanished).

    Args:
        stored: ``{block number: block hash seen earlier}``.

    Returns:
        The block numbers that were reorged.
    """
    numbers = sorted(stored)
    changed: set[int] = set()
    for i in range(0, len(numbers), BATCH):
        part = numbers[i:i + BATCH]
        for number, block in zip(part, rpc.get_blocks(part), strict=True):
            if block is None or block.hash != stored[number].lower():
                changed.add(number)
    return changed


def block_at_or_after(rpc: JsonRpcClient, timestamp: int, latest: Block) -> int:
    """The first block whose timestamp is at or after ``timestamp`` (binary search).

    Returns ``latest.number + 1`` when every block is older.
    """
    if latest.timestamp < timestamp:
        return latest.number + 1
    lo, hi = 0, latest.number
    while lo < hi:
        mid = (lo + hi) // 2
        block = rpc.get_block(mid)
        if block is None:
            raise ChainError(f"the node does not serve block {mid}")
        if block.timestamp < timestamp:
            lo = mid + 1
        else:
            hi = mid
    return lo
