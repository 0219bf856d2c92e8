"""The reconciliation run: fetch the ledger, scan the chain incrementally, call the core.

This module owns the I/O around :func:`impromptu_ops.reconcile.match.reconcile`: it checks
the chain id against the configuration, reads (or takes the pinned) token decimals, reads
the final head, re-checks the block hashes of provisional transfers seen on earlier runs
(reorgs), scans only the block ranges the cache does not hold, fetches receipts of payout
transactions outside the scanned range (batched), and saves the cache atomically. It does
not print and does not exit: the CLI renders the :class:`~.model.Report`.

The ledger comes through the small :class:`LedgerSource` protocol; :class:`PlatformLedger`
adapts :class:`impromptu_ops.platform.client.PlatformClient` (cursor pagination, §6).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from impromptu_ops import contract
from impromptu_ops.chain import erc20, finality, networks
from impromptu_ops.chain.blocktime import BlockTimes
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.chain.rpc import JsonRpcClient, RpcError, RpcRateLimited
from impromptu_ops.chain.scan import LogScanner
from impromptu_ops.errors import (
    ChainError,
    ConfigError,
    InputError,
    MalformedResponse,
    OpsError,
)
from impromptu_ops.locks import ProcessLock
from impromptu_ops.reconcile import match
from impromptu_ops.reconcile.cache import ScanCache, SeenTransfer, merge_ranges
from impromptu_ops.reconcile.model import (
    MAX_TEXT,
    BalanceCheck,
    Policy,
    Report,
    parse_entry,
    parse_referral,
)
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.platform.client import PlatformClient
    from impromptu_ops.platform.results import Earnings, Profile, Referrals

log = logging.getLogger(__name__)
RECEIPT_BATCH = 100
SAVE_EVERY_CHUNKS = 50
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


@dataclass(frozen=True)
class Window:
    """What to check: ``first``/``last`` block (``None`` = defaults) or dates.

    Attributes:
        since: the period starts with the first block at or after this instant.
        until: the period ends with the last block *before* this instant (the CLI passes
            the midnight after a ``--until`` day, so that day is included whole).
    """

    from_block: int | None = None
    to_block: int | None = None  # None = latest
    since: datetime | None = None
    until: datetime | None = None


def check_chain_settings(settings: Settings) -> tuple[str, Policy]:
    """Validate ``settings.chain`` before any I/O; returns the wallet and the policy.

    Raises:
        ConfigError: a missing wallet, a malformed address, or a limit out of range.
    """
    chain = settings.chain
    if not chain.wallet_address:
        raise ConfigError("no agent wallet address configured",
                          hint="set chain.wallet_address (env IMPROMPTU_CHAIN_WALLET_ADDRESS)")
    for name, value, low, high in (
            ("chain.decimals", chain.decimals, 0, 255),
            ("chain.confirmations", chain.confirmations, 0, None),
            ("chain.max_block_range", chain.max_block_range, 1, None),
            ("chain.start_block", chain.start_block, 0, None),
            ("chain.rate_limit_retries", chain.rate_limit_retries, 0, None),
            ("chain.registration_fee", chain.registration_fee, 0, None),
            ("chain.display_decimals", chain.display_decimals, 0, 30),
            ("chain.max_price_file_bytes", chain.max_price_file_bytes, 1, None)):
        if value is not None and (value < low or (high is not None and value > high)):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise ConfigError(f"setting {name}: {value} is out of range ({bound})")
    explorer = chain.explorer_url.strip()
    if explorer and explorer != networks.NO_EXPLORER and (
            not explorer.startswith(("https://", "http://")) or any(
                c in explorer for c in "\"'<> ")):
        raise ConfigError(f"setting chain.explorer_url: {explorer[:60]!r} is not an http(s) "
                          f"URL or '{networks.NO_EXPLORER}'")
    try:
        wallet = erc20.normalize_address(chain.wallet_address)
        return wallet, policy_from(settings, wallet)
    except InputError as exc:
        raise ConfigError(f"chain settings: {exc.message}") from None


def policy_from(settings: Settings, wallet: str) -> Policy:
    chain = settings.chain
    senders = frozenset(erc20.normalize_address(a) for a in chain.payout_senders.split(",")
                        if a.strip()) or None
    return Policy(chain_id=chain.chain_id, token=erc20.normalize_address(chain.token_address),
                  wallet=wallet, payout_senders=senders,
                  registration_fee=chain.registration_fee if chain.registration_fee is not None
                  else contract.REGISTRATION_FEE)


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


def reconcile_earnings(settings: Settings, rpc: JsonRpcClient, ledger: LedgerSource,
                       window: Window, *, now: datetime | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Report:
    """Run one reconciliation.

    Args:
        settings: ``settings.chain`` (rpc, chain id, token, wallet, limits) and
            ``settings.paths.state_dir`` (the cache).
        rpc: the chain client.
        ledger: the platform's ledger.
        window: blocks or date to check.
        now: the time at which vesting is judged (default: the real clock).
        progress: ``progress(done_blocks, total_blocks)`` while scanning.

    Raises:
        ConfigError: no wallet configured.
        ChainError: the chain disagrees with the configuration or cannot be read.
        MalformedResponse: the ledger or the chain sent something unusable.
    """
    chain = settings.chain
    wallet, policy = check_chain_settings(settings)
    now = now or datetime.now(UTC)
    calls_before = rpc.calls
    elements_before = rpc.elements

    actual_chain = rpc.chain_id()
    if actual_chain != chain.chain_id:
        raise ChainError(f"the RPC serves chain id {actual_chain}, the configuration says "
                         f"{chain.chain_id}", hint="check chain.rpc_url and chain.chain_id")
    # One run per cache at a time: a second (cron overlapping a manual run) is refused
    # (LockBusy) rather than racing the first to write the cache.
    with ProcessLock(settings.paths.state_dir / "earnings" / "reconcile.lock",
                     "earnings reconcile"):
        return _locked_run(settings, rpc, ledger, window, policy, wallet, now, progress,
                           calls_before, elements_before)


@dataclass
class Plan:
    """One wallet's run after its preparation: what :func:`scan_wallets` fills and
    :func:`finish_run` turns into a report. Several plans share one chain scan in
    ``fleet reconcile`` (:mod:`impromptu_ops.reconcile.fleet`)."""

    settings: Settings
    policy: Policy
    wallet: str
    cache: ScanCache
    decimals: int
    heads: finality.Heads
    clock: BlockTimes
    first: int
    last: int
    date_lookups: int
    provisional: dict[tuple[str, int], SeenTransfer]
    suspects: dict[tuple[str, int], Transfer]
    gaps: list[tuple[int, int]]
    window: Window


def prepare_run(settings: Settings, rpc: JsonRpcClient, window: Window, policy: Policy,
                wallet: str, heads: finality.Heads | None = None) -> Plan:
    """Open the wallet's cache, resolve the window to blocks, set provisional transfers
    aside for their reorg check, and list the block ranges the cache does not hold.

    Args:
        heads: the chain heads to judge finality by (a fleet run reads them once for all
            its wallets); ``None`` reads them here.
    """
    chain = settings.chain
    cache = ScanCache.open(settings.paths.state_dir, chain.chain_id, policy.token, wallet)
    if chain.decimals is not None:
        decimals = chain.decimals
    else:
        if cache.decimals is None:
            cache.decimals = erc20.read_decimals(rpc, policy.token)
        decimals = cache.decimals
    if cache.symbol is None:
        cache.symbol = erc20.read_symbol(rpc, policy.token)
    if heads is None:
        heads = finality.read_heads(rpc, chain.confirmations,
                                    use_tags=chain.use_finality_tags)
    latest = heads.latest.number
    clock = BlockTimes(rpc, cache.timestamps, heads.latest)
    date_lookups = 0

    if window.until is not None:
        before = clock.lookups
        last = min(latest, clock.first_at_or_after(_ts(window.until)) - 1)
        date_lookups += clock.lookups - before
    else:
        last = latest if window.to_block is None else min(window.to_block, latest)
    if window.from_block is not None:
        first = window.from_block
    elif window.since is not None:
        before = clock.lookups
        first = clock.first_at_or_after(_ts(window.since))
        date_lookups += clock.lookups - before
    else:
        first = chain.start_block
    if first > last and window.to_block is not None:
        raise InputError(f"--from-block {first} is after --to-block {last}")

    # Reorgs: provisional transfers from earlier runs (inside this window: the rest stay
    # cached for a run that covers them) whose block hash changed.
    provisional = {k: s for k, s in cache.transfers.items()
                   if not s.final and first <= s.transfer.block_number <= last}
    changed = finality.changed_blocks(
        rpc, {s.transfer.block_number: s.transfer.block_hash for s in provisional.values()})
    for key in provisional:
        del cache.transfers[key]  # above the old final head: rescanned below in any case
    suspects = {k: s.transfer for k, s in provisional.items()
                if s.transfer.block_number in changed}
    gaps = cache.gaps(first, last) if first <= last else []
    return Plan(settings, policy, wallet, cache, decimals, heads, clock, first, last,
                date_lookups, provisional, suspects, gaps, window)


def _address_filter(wallets: Sequence[str]) -> str | list[str]:
    """One indexed-address topic, or a list of them: ``eth_getLogs`` reads a list in a
    topic position as "any of these" (Ethereum JSON-RPC spec, ``eth_getLogs`` filter
    topics: "each topic can also be an array of DATA with 'or' options")."""
    topics = [erc20.address_topic(w) for w in wallets]
    return topics[0] if len(topics) == 1 else topics


def scan_wallets(plans: Sequence[Plan], scanner: LogScanner, *,
                 progress: Callable[[int, int], None] | None = None,
                 max_filter_wallets: int | None = None) -> None:
    """Scan the blocks any plan lacks, once for all their wallets, into each plan's cache.

    The incoming query puts every wallet in topics[2] and the outgoing one every wallet
    in topics[1] (OR within a position), so N wallets cost the calls of one as long as the
    provider's result cap is not reached (beyond it the scanner splits the range as for
    one busy wallet). More than ``max_filter_wallets`` wallets (``chain.max_filter_wallets``)
    are scanned in groups of that many, one scan per group. Every plan shares the chain,
    token and heads of ``plans[0]``; the blocks scanned are recorded in the cache of every
    wallet of the group (each wallet's logs in them are known).

    Raises:
        ChainError: the chain could not be read; what was scanned stays in the caches.
    """
    if not plans:
        return
    size = max_filter_wallets or len(plans)
    ordered = sorted(plans, key=lambda p: p.wallet)
    groups = [ordered[i:i + size] for i in range(0, len(ordered), size)]
    totals = [sum(b - a + 1 for a, b in merge_ranges([g for p in group for g in p.gaps]))
              for group in groups]
    done = 0
    try:
        for group in groups:
            done = _scan_group(group, scanner, progress, done, sum(totals))
    except ChainError:
        # What was scanned stays scanned: the rerun resumes where this run stopped (every
        # recorded range is complete and final). Provisional transfers not seen again yet
        # go back as they were, so the next run still re-checks their block hashes.
        for p in plans:
            for key, seen in p.provisional.items():
                p.cache.transfers.setdefault(key, seen)
            p.cache.save()
        raise


def _scan_group(plans: Sequence[Plan], scanner: LogScanner,
                progress: Callable[[int, int], None] | None, done: int, total: int) -> int:
    heads = plans[0].heads
    token = plans[0].policy.token
    by_wallet = {p.wallet: p for p in plans}
    gaps = merge_ranges([g for p in plans for g in p.gaps])
    wallets = sorted(by_wallet)
    topics = [contract.ERC20_TRANSFER_TOPIC, None, _address_filter(wallets)]
    # The wallet's statement needs what left it too (opening + in - out = closing): the
    # token's transfers *from* the wallets, one more query per range (a log filter cannot
    # OR two topic positions).
    out_topics = [contract.ERC20_TRANSFER_TOPIC, _address_filter(wallets)]
    chunks = 0
    for lo, hi in gaps:
        for chunk in scanner.scan(lo, hi, topics=topics):
            for raw in chunk.logs:
                if raw.get("removed") is True:
                    continue
                t = erc20.decode_transfer_log(raw)
                plan = by_wallet.get(t.recipient) if t is not None else None
                if t is not None and plan is not None:
                    plan.cache.transfers[t.key] = SeenTransfer(
                        t, heads.is_final(t.block_number))
            # the same blocks, outgoing, before the range counts as scanned
            for out_chunk in scanner.scan(chunk.first, chunk.last, address=token,
                                          topics=out_topics):
                for raw in out_chunk.logs:
                    if raw.get("removed") is True:
                        continue
                    t = erc20.decode_transfer_log(raw)
                    plan = by_wallet.get(t.sender) if t is not None else None
                    if t is not None and plan is not None and t.token == token:
                        plan.cache.outgoing[t.key] = SeenTransfer(
                            t, heads.is_final(t.block_number))
            if chunk.first <= heads.final:
                for p in plans:
                    p.cache.mark_scanned(chunk.first, min(chunk.last, heads.final))
            done += chunk.last - chunk.first + 1
            chunks += 1
            if progress is not None:
                progress(done, total)
            if chunks % SAVE_EVERY_CHUNKS == 0:
                for p in plans:
                    p.cache.save()
    return done


def _locked_run(settings: Settings, rpc: JsonRpcClient, ledger: LedgerSource, window: Window,
                policy: Policy, wallet: str, now: datetime,
                progress: Callable[[int, int], None] | None, calls_before: int,
                elements_before: int) -> Report:
    plan = prepare_run(settings, rpc, window, policy, wallet)
    scanner = LogScanner(rpc, settings.chain.max_block_range)
    scan_wallets([plan], scanner, progress=progress)
    return finish_run(plan, rpc, ledger, now, scanned_blocks=sum(
        b - a + 1 for a, b in plan.gaps), splits=scanner.splits, calls_before=calls_before,
        elements_before=elements_before)


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
        "periodStart": _ts(window.since) if window.since is not None
        else times.get(first, 0),
        "periodEnd": _ts(window.until) - 1 if window.until is not None
        else times.get(last, heads.latest.timestamp),
        # Entries that exist only in the ledger are dated by the platform's clock: a
        # period that starts at genesis or ends at the head takes all of them (a test
        # chain's genesis can be younger than the ledger; an entry can be newer than the
        # latest block).
        "ledgerStart": _ts(window.since) if window.since is not None
        else 0 if first == 0 else times.get(first, 0),
        "ledgerEnd": _ts(window.until) - 1 if window.until is not None
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


def _ts(when: datetime) -> int:
    """Unix seconds, rounded up: block timestamps are whole seconds."""
    return -int(-when.timestamp() // 1)


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


def run_reconciliation(settings: Settings, window: Window, *,
                       platform: Callable[[], PlatformClient],
                       progress: Callable[[int, int], None] | None = None,
                       now: datetime | None = None) -> Report:
    """Everything ``earnings reconcile`` needs: the platform client, the chain client, one
    :func:`reconcile_earnings` run; clients closed afterwards.

    Args:
        platform: builds the platform client with the agent's key (the composition root's
            :meth:`impromptu_ops.api.Agent.platform`); called only once the chain
            settings are known to be usable.

    Raises:
        ConfigError: no chain RPC or wallet configured.
        OpsError: any failure to read the store, the platform or the chain.
    """
    chain = settings.chain
    if not chain.rpc_url:
        raise ConfigError("no chain RPC configured",
                          hint="set chain.rpc_url (env IMPROMPTU_CHAIN_RPC) to a Base RPC URL")
    check_chain_settings(settings)  # a configuration mistake is reported before the store
    with platform() as client, JsonRpcClient(
            chain.rpc_url, timeout=chain.rpc_timeout,
            max_response_bytes=chain.max_response_bytes,
            rate_limit_retries=chain.rate_limit_retries, backoff_base=chain.backoff_base,
            backoff_cap=chain.backoff_cap, max_retry_after=chain.max_retry_after) as rpc:
        return reconcile_earnings(settings, rpc, PlatformLedger(client), window, now=now,
                                  progress=progress)
