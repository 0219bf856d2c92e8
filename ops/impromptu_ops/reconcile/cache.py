"""Private: The incremental cache: which blocks were scanned, what was found, what was reorged.

This module owns one JSON file per (chain id, token, wallet) under
``<state_dir>/earnings/``, written atomically (:func:`impromptu_ops.atomic.write_json`), so a
rerun only scans blocks it has not seen and a run killed at any instant leaves the old or
the new cache, never a mix. It holds:

- ``scanned``: merged inclusive block ranges whose logs are known *and final* (blocks above
  the final head are never recorded as scanned: they are rescanned on every run);
- ``transfers``: every transfer to the wallet found so far, with its block hash and whether
  that block was final when seen (non-final ones get their hash re-checked);
- ``receipts``: transfers decoded from the receipts of payout transactions (final ones
  only), so matched payouts outside the scanned range cost no call on a rerun;
- ``reorged``: transfers seen once whose block was later replaced and that did not come
  back; kept so that every later report still names them;
- ``outgoing``: every transfer of the token *from* the wallet (the wallet's statement needs
  them so that opening + in - out = closing), kept like ``transfers``;
- ``timestamps``: ``{block: unix seconds}`` of final blocks (matched transfers, period ends,
  the probes of date-to-block searches): fetched once per block;
- ``decimals`` and ``symbol``: the token's ``decimals()`` and ``symbol()``, read once.

Version 2 added the outgoing scan: a version 1 cache never scanned outgoing transfers, so
it is ignored (a full rescan) rather than trusted.

A cache for another chain, token or wallet, or of another version, is ignored (never
mixed). It does no chain I/O and no matching.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from impromptu_ops import files
from impromptu_ops.atomic import private_dir, write_json
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.errors import OpsError

log = logging.getLogger(__name__)
VERSION = 2


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, merged, inclusive ranges (adjacent ranges join)."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def missing_ranges(first: int, last: int, have: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[first, last]`` not covered by ``have`` (merged ranges)."""
    gaps: list[tuple[int, int]] = []
    cursor = first
    for lo, hi in have:
        if hi < cursor:
            continue
        if lo > last:
            break
        if lo > cursor:
            gaps.append((cursor, min(lo - 1, last)))
        cursor = max(cursor, hi + 1)
        if cursor > last:
            break
    if cursor <= last:
        gaps.append((cursor, last))
    return gaps


@dataclass(frozen=True)
class SeenTransfer:
    transfer: Transfer
    final: bool


def _t_to_json(t: Transfer, **extra: Any) -> dict[str, Any]:
    d = asdict(t)
    d["amount"] = str(t.amount)  # exact: JSON readers elsewhere may use floats
    d.update(extra)
    return d


def _t_from_json(d: dict[str, Any]) -> Transfer:
    return Transfer(block_number=int(d["block_number"]), log_index=int(d["log_index"]),
                    tx_hash=str(d["tx_hash"]), block_hash=str(d["block_hash"]),
                    token=str(d["token"]), sender=str(d["sender"]),
                    recipient=str(d["recipient"]), amount=int(d["amount"]))


@dataclass
class ScanCache:
    path: Path
    chain_id: int
    token: str
    wallet: str
    decimals: int | None = None
    symbol: str | None = None
    scanned: list[tuple[int, int]] = field(default_factory=list)
    transfers: dict[tuple[str, int], SeenTransfer] = field(default_factory=dict)
    receipts: dict[str, list[Transfer]] = field(default_factory=dict)
    reorged: dict[tuple[str, int], Transfer] = field(default_factory=dict)
    outgoing: dict[tuple[str, int], SeenTransfer] = field(default_factory=dict)
    timestamps: dict[int, int] = field(default_factory=dict)

    @classmethod
    def open(cls, state_dir: Path, chain_id: int, token: str, wallet: str) -> ScanCache:
        """Load the cache for this chain/token/wallet, or start an empty one."""
        folder = state_dir / "earnings"
        path = folder / f"scan-{chain_id}-{token.lower()}-{wallet.lower()}.json"
        cache = cls(path, chain_id, token.lower(), wallet.lower())
        try:
            raw = files.read_optional(path, what="reconciliation cache", nofollow=True,
                                      limit=files.MAX_STATE_BYTES)
            if raw is None:
                return cache
            data = files.parse_json(raw, what=f"reconciliation cache {path}")
        except OpsError as exc:
            log.warning("ignoring an unreadable reconciliation cache: %s", exc.message)
            return cache
        try:
            if (data.get("version"), data.get("chainId"), data.get("token"),
                    data.get("wallet")) != (VERSION, chain_id, cache.token, cache.wallet):
                log.warning("ignoring reconciliation cache %s: other version or key", path)
                return cache
            cache.decimals = data.get("decimals")
            symbol = data.get("symbol")
            cache.symbol = symbol if isinstance(symbol, str) and symbol.isprintable() \
                and 0 < len(symbol) <= 32 else None
            for d in data["outgoing"]:
                t = _t_from_json(d)
                cache.outgoing[t.key] = SeenTransfer(t, bool(d["final"]))
            cache.timestamps = {int(k): int(v) for k, v in data["timestamps"].items()}
            cache.scanned = merge_ranges([(int(a), int(b)) for a, b in data["scanned"]])
            for d in data["transfers"]:
                t = _t_from_json(d)
                cache.transfers[t.key] = SeenTransfer(t, bool(d["final"]))
            cache.receipts = {h: [_t_from_json(d) for d in ts]
                              for h, ts in data["receipts"].items()}
            for d in data["reorged"]:
                t = _t_from_json(d)
                cache.reorged[t.key] = t
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("ignoring malformed reconciliation cache %s: %s", path, exc)
            return cls(path, chain_id, token.lower(), wallet.lower())
        return cache

    def save(self) -> None:
        private_dir(self.path.parent)
        write_json(self.path, {
            "version": VERSION,
            "chainId": self.chain_id,
            "token": self.token,
            "wallet": self.wallet,
            "decimals": self.decimals,
            "symbol": self.symbol,
            "scanned": [list(r) for r in self.scanned],
            "transfers": [_t_to_json(s.transfer, final=s.final)
                          for s in sorted(self.transfers.values(), key=lambda s: s.transfer)],
            "receipts": {h: [_t_to_json(t) for t in ts] for h, ts in sorted(self.receipts.items())},
            "reorged": [_t_to_json(t) for t in sorted(self.reorged.values())],
            "outgoing": [_t_to_json(s.transfer, final=s.final)
                         for s in sorted(self.outgoing.values(), key=lambda s: s.transfer)],
            "timestamps": {str(k): v for k, v in sorted(self.timestamps.items())},
        })

    def mark_scanned(self, first: int, last: int) -> None:
        self.scanned = merge_ranges([*self.scanned, (first, last)])

    def gaps(self, first: int, last: int) -> list[tuple[int, int]]:
        return missing_ranges(first, last, self.scanned)
