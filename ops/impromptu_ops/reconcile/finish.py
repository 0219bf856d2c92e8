"""Private: The ledger side and the end of a reconciliation run, after the chain scan.

This module owns the platform's ledger (the small :class:`LedgerSource` protocol;
:class:`PlatformLedger` adapts :class:`impromptu_ops.platform.client.PlatformClient`,
cursor pagination, §6) and :func:`finish_run`: the reorg verdicts, the ledger entries
(deduplicated), the receipts of payout transactions outside the scanned range (batched),
the call to :func:`impromptu_ops.reconcile.match.reconcile`, the block dates, the
``balanceOf`` check, the atomic save of the cache and the report's context. It reads a
:class:`~.chainscan.Plan` prepared and scanned by :mod:`.chainscan`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from impromptu_ops.chain import erc20, finality, networks
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.chain.rpc import JsonRpcClient, RpcError, RpcRateLimited
from impromptu_ops.errors import ChainError, MalformedResponse, OpsError
from impromptu_ops.reconcile import match
from impromptu_ops.reconcile.cache import ScanCache
from impromptu_ops.reconcile.chainscan import Plan, unix_seconds
from impromptu_ops.reconcile.model import (
    MAX_TEXT,
    BalanceCheck,
    Policy,
    Report,
    parse_entry,
    parse_referral,
)

if TYPE_CHECKING:
    from impromptu_ops.platform.results import Earnings, Profile, Referrals

log = logging.getLogger(__name__)
RECEIPT_BATCH = 100
MAX_LEDGER_PAGES = 10_000


class LedgerSource(Protocol):
    """Where the platform's ledger comes from (raw §6 JSON objects)."""

    def entries(self) -> list[Mapping[str, Any]]: ...

    def referrals(self) -> list[Mapping[str, Any]]: ...


@runtime_checkable
class NamedAgent(Protocol):
    """A ledger source that can also say whose ledger it is (the report's header)."""

    def agent(self) -> tuple[str, str]: ...


class PlatformClientLike(Protocol):
    def earnings(self, after: str | None = None, limit: int | None = None) -> Earnings: ...

    def referrals(self) -> Referrals: ...

    def profile(self) -> Profile: ...


@dataclass
class PlatformLedger:
    """:class:`LedgerSource` over the platform client, following ``nextCursor``."""

    client: PlatformClientLike
    page_size: int = 200

    def entries(self) -> list[Mapping[str, Any]]:
        out: list[Mapping[str, Any]] = []
        cursor: str | None = None
        seen_cursors: set[str] = set()
        for _ in range(MAX_LEDGER_PAGES):
            page = self.client.earnings(after=cursor, limit=self.page_size)
            out.extend(dict(e.raw) for e in page.entries)
            cursor = page.next_cursor
            if not cursor:
                return out
            if cursor in seen_cursors:
                raise MalformedResponse("the earnings cursor repeats: the ledger would loop")
            seen_cursors.add(cursor)
        raise MalformedResponse(f"the ledger has more than {MAX_LEDGER_PAGES} pages")

    def referrals(self) -> list[Mapping[str, Any]]:
        return [{"agentId": r.agent_id, "registeredAt": r.registered_at}
                for r in self.client.referrals().referrals]

    def agent(self) -> tuple[str, str]:
        """``(agent id, agent name)`` from the profile; empty strings when the platform
        does not say (the header then says so: the ledger it already served is what
        counts, and a missing name must not cost the reconciliation)."""
        try:
            profile = self.client.profile()
        except OpsError as exc:
            log.warning("agent profile not available for the report header: %s", exc)
            return ("", "")
        return (_shown(profile.id), _shown(profile.name))


def _shown(value: Any) -> str:
    """A platform string that ends up in a report header: printable and bounded."""
    text = value if isinstance(value, str) else ""
    return text[:MAX_TEXT] if text.isprintable() else ""


def _dedupe(raw: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Pagination may repeat an entry: identical repeats collapse, conflicting ones refuse."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for e in raw:
        key = str(e.get("id"))
        if key in by_id and by_id[key] != e:
            raise MalformedResponse(f"ledger entry {key[:60]} appears twice with different "
                                    "contents")
        by_id.setdefault(key, e)
    return list(by_id.values())


def finish_run(plan: Plan, rpc: JsonRpcClient, ledger: LedgerSource, now: datetime, *,
               scanned_blocks: int, splits: int, calls_before: int,
               elements_before: int, shared_scan: Mapping[str, int] | None = None) -> Report:
    """After the scan: reorg verdicts, the ledger, receipts of payouts outside the scan,
    matching, dates, the balance check; saves the cache and returns the report.

    Args:
        shared_scan: when the scan served several wallets (``fleet reconcile``), what it
            covered and cost (``wallets``, ``rpcCalls``), recorded in the context as
            ``sharedScan``; the report's own ``rpcCalls`` then count from
            ``calls_before`` (this agent's part).

    Raises:
        ChainError, MalformedResponse, OpsError: as :func:`reconcile_earnings`.
    """
    settings, policy, wallet, cache = plan.settings, plan.policy, plan.wallet, plan.cache
    chain = settings.chain
    heads, clock, first, last = plan.heads, plan.clock, plan.first, plan.last
    latest = heads.latest.number
    decimals, date_lookups, suspects = plan.decimals, plan.date_lookups, plan.suspects
    window = plan.window
    total = scanned_blocks

    for key, t in suspects.items():
        if key not in cache.transfers:
            cache.reorged[key] = t
    for key in list(cache.reorged):
        if key in cache.transfers:
            del cache.reorged[key]  # it came back (re-included): not lost after all

    raw_entries = _dedupe(ledger.entries())
    entries = [parse_entry(e) for e in raw_entries]
    referrals = [parse_referral(r) for r in ledger.referrals()]

    in_range = [s.transfer for s in cache.transfers.values()
                if first <= s.transfer.block_number <= last]
    known = {t.key for t in in_range}
    known_tx = {t.tx_hash for t in in_range}
    wanted: list[str] = []
    for e in entries:
        if e.type != "PAYOUT" or e.tx_hash is None:
            continue
        if (e.tx_hash, e.log_index) in known or (e.log_index is None and e.tx_hash in known_tx):
            continue
        if e.tx_hash not in cache.receipts and e.tx_hash not in wanted:
            wanted.append(e.tx_hash)
    fetched_receipts = _fetch_receipts(rpc, wanted, heads, cache)
    extra: list[Transfer] = []
    for e in entries:
        if e.type == "PAYOUT" and e.tx_hash is not None:
            extra.extend(cache.receipts.get(e.tx_hash) or fetched_receipts.get(e.tx_hash, []))
    sent = [s.transfer for s in cache.outgoing.values()
            if first <= s.transfer.block_number <= last]

    report = match.reconcile(entries, [*in_range, *extra], referrals, policy, now=now,
                             final_block=heads.final, reorged=cache.reorged)
    # Dates: one lookup per block that holds a matched, unrecorded or outgoing transfer,
    # plus the period's two ends (each at most once: the cache keeps final blocks).
    before = clock.lookups
    # (matches outside the period, proved by their receipts, need no date: the statement
    # lists the period's movements only)
    blocks = {m.block_number for m in report.matches if first <= m.block_number <= last}
    blocks.update(t.block_number for t in in_range)
    blocks.update(t.block_number for t in sent)
    ends = [b for b in (first, last) if 0 <= b <= latest and first <= last]
    times = clock.fetch([*blocks, *ends])
    block_lookups = clock.lookups - before
    balances = _balance_check(rpc, policy, first, last, latest, in_range, sent)
    cache.timestamps = clock.final_entries(heads.final)
    cache.save()

    agent_id = agent_name = ""
    if isinstance(ledger, NamedAgent):
        agent_id, agent_name = ledger.agent()
    net = networks.network(chain.chain_id)
    context = {
        "chainId": chain.chain_id, "chainName": net.name, "token": policy.token,
        "symbol": cache.symbol, "wallet": wallet, "agentId": agent_id,
        "agentName": agent_name,
        "explorer": networks.explorer_base(chain.chain_id, chain.explorer_url),
        "displayDecimals": chain.display_decimals,
        "decimals": decimals, "fromBlock": first, "toBlock": last, "latestBlock": latest,
        # The period as asked (--since/--until), else the dates of its first/last block.
        "periodStart": unix_seconds(window.since) if window.since is not None
        else times.get(first, 0),
        "periodEnd": unix_seconds(window.until) - 1 if window.until is not None
        else times.get(last, heads.latest.timestamp),
        # Entries that exist only in the ledger are dated by the platform's clock: a
        # period that starts at genesis or ends at the head takes all of them (a test
        # chain's genesis can be younger than the ledger; an entry can be newer than the
        # latest block).
        "ledgerStart": unix_seconds(window.since) if window.since is not None
        else 0 if first == 0 else times.get(first, 0),
        "ledgerEnd": unix_seconds(window.until) - 1 if window.until is not None
        else int(now.timestamp()) if last == latest and window.to_block is None
        else times.get(last, heads.latest.timestamp),
        "finalBlock": heads.final, "finalSource": heads.source, "safeBlock": heads.safe,
        "scannedBlocks": total, "rpcCalls": rpc.calls - calls_before,
        "rpcElements": rpc.elements - elements_before,
        "blockLookups": block_lookups, "dateLookups": date_lookups,
        "receiptLookups": len(wanted),
        "splits": splits, "generatedAt": now.replace(microsecond=0).isoformat(),
        "sendersChecked": policy.payout_senders is not None,
    }
    if shared_scan is not None:
        context["sharedScan"] = dict(shared_scan)
    return replace(report, context=context, outgoing=tuple(sorted(sent)),
                   block_times=times, balances=balances)


NO_HISTORY = "not checked: the RPC has no historical state"


def _balance_check(rpc: JsonRpcClient, policy: Policy, first: int, last: int, latest: int,
                   received: Sequence[Transfer], sent: Sequence[Transfer]) -> BalanceCheck:
    """``balanceOf`` before the period's first block and at its last, in one batch.

    A node without the state of old blocks (most public RPCs prune it) answers an error:
    the check is then reported as not made, never as passed.
    """
    into = sum(t.amount for t in received
               if t.token == policy.token and t.recipient == policy.wallet)
    out = sum(t.amount for t in sent)
    if first > last:
        return BalanceCheck(first - 1, last, None, None, into, out, "the period holds no block")
    data = erc20.balance_of_calldata(policy.wallet)
    calls: list[tuple[str, Sequence[Any]]] = []
    if first > 0:
        calls.append(("eth_call", [{"to": policy.token, "data": data}, hex(first - 1)]))
    calls.append(("eth_call", [{"to": policy.token, "data": data}, hex(last)]))
    try:
        answers = rpc.batch(calls)
        values = [erc20.decode_uint256(a) for a in answers]
    except RpcRateLimited:
        raise
    except (RpcError, MalformedResponse) as exc:
        log.info("balanceOf at blocks %s..%s not available: %s", first - 1, last, exc)
        return BalanceCheck(first - 1, last, None, None, into, out, NO_HISTORY)
    opening = values[0] if first > 0 else 0  # before the first block nothing was held
    return BalanceCheck(first - 1, last, opening, values[-1], into, out)


def _fetch_receipts(rpc: JsonRpcClient, tx_hashes: list[str], heads: finality.Heads,
                    cache: ScanCache) -> dict[str, list[Transfer]]:
    """Decode the Transfer logs of these transactions (batched); cache the final ones."""
    out: dict[str, list[Transfer]] = {}
    for i in range(0, len(tx_hashes), RECEIPT_BATCH):
        part = tx_hashes[i:i + RECEIPT_BATCH]
        answers = rpc.batch([("eth_getTransactionReceipt", [h]) for h in part])
        for tx_hash, receipt in zip(part, answers, strict=True):
            if receipt is None:
                continue  # not mined (or reorged out): the payout will show as missing
            if not isinstance(receipt, dict):
                raise ChainError("eth_getTransactionReceipt: not an object")
            transfers: list[Transfer] = []
            if receipt.get("status") in ("0x1", 1):  # a reverted transaction moved nothing
                transfers = [t for t in (erc20.decode_transfer_log(lg)
                                         for lg in receipt.get("logs") or []
                                         if isinstance(lg, dict)) if t is not None]
            out[tx_hash] = transfers
            block = receipt.get("blockNumber")
            if isinstance(block, str) and heads.is_final(int(block, 16)):
                cache.receipts[tx_hash] = transfers
    return out
