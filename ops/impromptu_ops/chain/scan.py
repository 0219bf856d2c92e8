"""Scan ``eth_getLogs`` over a block range that providers will not serve in one piece.

This module owns the adaptive splitting. Providers refuse large log queries in several
shapes; :func:`classify_limit_error` reads them (pure, tested on the real texts) and says
whether the range was too wide or the answer too big, and whether the provider suggested
a size. The :class:`LogScanner` then:

- honours a suggested size when it is smaller than what it asked for (Alchemy's
  "this block range should work: [0x.., 0x..]", Infura's "Try with this block range",
  "limited to a 1000 block range", "max is 1k blocks"...);
- otherwise halves the range (Infura "query returned more than 10000 results",
  "block range is too wide", codes -32005 / -32602 with such a message);
- remembers a learned *block-range* limit for the rest of the scan (asking for more would
  fail again), but only shrinks locally for a *result-count* limit, then grows back;
- never splits on a rate limit: :class:`~.rpc.JsonRpcClient` backs off and retries those,
  and if they persist the error propagates;
- fails clearly when a single block still fails.

It does not decode logs (see :mod:`.erc20`) nor decide what to scan (see
:mod:`impromptu_ops.reconcile.service`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from impromptu_ops.chain.rpc import JsonRpcClient, RpcError, RpcRateLimited
from impromptu_ops.errors import ChainError
from impromptu_ops.secret import clip


@dataclass(frozen=True)
class LimitHint:
    """What a provider's refusal says about the size to ask for next.

    Attributes:
        kind: ``"range"`` (too many blocks: a limit for the whole scan) or ``"results"``
            (too many logs in this part of the chain: shrink here only).
        span: the suggested number of blocks per call, when the provider gave one.
    """

    kind: str
    span: int | None = None


def _num(text: str) -> int:
    text = text.replace(",", "").replace("_", "").strip().lower()
    if text.endswith("k"):
        return int(float(text[:-1]) * 1000)
    return int(text)


# A suggested inclusive range [from, to] in hex or decimal.
_SUGGESTED_RANGE = re.compile(
    r"(?:block range should work|try with this block range|retry with the range)"
    r"\D{0,8}(0x[0-9a-f]+|\d+)\s*(?:,|-)\s*(0x[0-9a-f]+|\d+)", re.IGNORECASE)
# A maximum number of blocks.
_MAX_BLOCKS = (
    re.compile(r"limited to (?:an? )?([\d,.]+k?)(?: block)?", re.IGNORECASE),
    re.compile(r"max(?:imum)? is ([\d,.]+k?) blocks", re.IGNORECASE),
    re.compile(r"maximum block range:? ([\d,.]+)", re.IGNORECASE),
    re.compile(r"exceeds max block range ([\d,.]+)", re.IGNORECASE),
    re.compile(r"limit the query to at most ([\d,.]+) blocks", re.IGNORECASE),
    re.compile(r"maximum allowed number of requested blocks is ([\d,.]+)", re.IGNORECASE),
    re.compile(r"maximum is set to ([\d,.]+)", re.IGNORECASE),
    re.compile(r"block range is too wide \(maximum ([\d,.]+)\)", re.IGNORECASE),
    re.compile(r"up to an? ([\d,.]+k?) block range", re.IGNORECASE),
    re.compile(r"ranges over ([\d,.]+) blocks are not supported", re.IGNORECASE),
)
_RANGE_WORDS = re.compile(
    r"block range|range is too (?:large|wide)|range too large|too many blocks|"
    r"max block range|blocks distance|range limit", re.IGNORECASE)
_RESULT_WORDS = re.compile(
    r"more than \d+ results|too many results|response size|max results|exceeds limit|"
    r"response too large|log response|logs matched|result set|query timeout|timed out",
    re.IGNORECASE)
LIMIT_CODES = (-32005, -32602, -32600, -32000, -32603, -32047, 35)


def classify_limit_error(error: RpcError) -> LimitHint | None:
    """Is this refusal a log-query size limit? If so, of which kind and with what size.

    Pure: reads the error's code, message and ``data`` (some providers put the hint there).

    Returns:
        ``None`` when the error is not a size limit (the scan must fail, not split).
    """
    if isinstance(error, RpcRateLimited):
        return None
    text = f"{error.rpc_message} {error.data if error.data is not None else ''}"
    m = _SUGGESTED_RANGE.search(text)
    if m:
        lo, hi = (int(g, 16) if g.lower().startswith("0x") else int(g) for g in m.groups())
        if hi >= lo:
            # A suggestion is about this part of the chain: treat it as local ("results")
            # unless the rest of the message clearly speaks of a block-range cap.
            rest = text[:m.start()] + text[m.end():]
            is_range = _RANGE_WORDS.search(rest) and not _RESULT_WORDS.search(rest)
            return LimitHint("range" if is_range else "results", hi - lo + 1)
    for pattern in _MAX_BLOCKS:
        m = pattern.search(text)
        if m:
            try:
                span = _num(m.group(1))
            except ValueError:
                continue
            if span > 0:
                return LimitHint("range", span)
    if _RESULT_WORDS.search(text):
        return LimitHint("results")
    if _RANGE_WORDS.search(text):
        return LimitHint("range")
    if error.code == -32005:  # EIP-1474 "limit exceeded"
        return LimitHint("results")
    return None


@dataclass(frozen=True)
class Chunk:
    """One successful query: inclusive block range and the raw logs in it."""

    first: int
    last: int
    logs: Sequence[dict[str, Any]]


Progress = Callable[[int], None]  # called with the number of blocks just completed


class LogScanner:
    """Adaptive ``eth_getLogs`` over ``[first, last]``.

    Args:
        rpc: the client.
        max_span: the most blocks to ask for in one call (``chain.max_block_range``).
        progress: called after each successful chunk with its size in blocks.

    Attributes:
        splits: how many refusals made it shrink (the benchmark reports it).
        learned_span: the block-range limit learned from the provider, if any.
    """

    def __init__(self, rpc: JsonRpcClient, max_span: int,
                 progress: Progress | None = None) -> None:
        if max_span < 1:
            raise ChainError(f"chain.max_block_range must be at least 1, got {max_span}")
        self.rpc = rpc
        self.max_span = max_span
        self.learned_span: int | None = None
        self.splits = 0
        self._progress = progress

    def _cap(self) -> int:
        return min(self.max_span, self.learned_span or self.max_span)

    def scan(self, first: int, last: int, *, address: str | None = None,
             topics: Sequence[str | Sequence[str] | None] = ()) -> Iterator[Chunk]:
        """Yield chunks covering ``[first, last]`` in order, each fetched in one call.

        Raises:
            ChainError: a single block still fails, or a non-limit error.
        """
        cursor = first
        span = self._cap()
        while cursor <= last:
            span = max(1, min(span, self._cap()))
            end = min(last, cursor + span - 1)
            try:
                logs = self.rpc.get_logs(from_block=cursor, to_block=end, address=address,
                                         topics=topics)
            except RpcError as exc:
                hint = classify_limit_error(exc)
                asked = end - cursor + 1
                if hint is None:
                    raise
                if asked == 1:
                    raise ChainError(
                        f"eth_getLogs refused even a single block ({cursor}): "
                        f"{clip(exc.rpc_message, 200)}",
                        hint="the provider cannot serve this block's logs; try another RPC",
                    ) from None
                self.splits += 1
                smaller = hint.span if hint.span is not None and hint.span < asked \
                    else asked // 2
                if hint.kind == "range":
                    # a block-range limit holds for the whole chain: do not ask for more again
                    self.learned_span = min(self.learned_span or smaller, smaller)
                span = max(1, smaller)
                continue
            yield Chunk(cursor, end, logs)
            if self._progress is not None:
                self._progress(end - cursor + 1)
            cursor = end + 1
            span = min(self._cap(), span * 2)
