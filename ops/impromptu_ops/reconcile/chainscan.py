"""Private: The chain side of a reconciliation run: settings, window, the (shared) scan.

This module owns what happens before the ledger is read: it validates ``settings.chain``
(:func:`check_chain_settings`, the :class:`~.model.Policy`), opens the wallet's cache,
reads (or takes the pinned) token decimals, resolves the :class:`Window` to blocks, sets
provisional transfers aside for their reorg check (:func:`prepare_run`, giving a
:class:`Plan`), and scans the block ranges the cache does not hold, once for one or many
wallets (:func:`scan_wallets`). :mod:`.finish` turns a scanned plan into the report;
:mod:`.service` (the public entry) and :mod:`.fleet` drive both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from impromptu_ops import contract
from impromptu_ops.chain import erc20, finality, networks
from impromptu_ops.chain.blocktime import BlockTimes
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.chain.scan import LogScanner
from impromptu_ops.errors import ChainError, ConfigError, InputError
from impromptu_ops.reconcile.cache import ScanCache, SeenTransfer, merge_ranges
from impromptu_ops.reconcile.model import Policy
from impromptu_ops.settings import Settings

SAVE_EVERY_CHUNKS = 50


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
        last = min(latest, clock.first_at_or_after(unix_seconds(window.until)) - 1)
        date_lookups += clock.lookups - before
    else:
        last = latest if window.to_block is None else min(window.to_block, latest)
    if window.from_block is not None:
        first = window.from_block
    elif window.since is not None:
        before = clock.lookups
        first = clock.first_at_or_after(unix_seconds(window.since))
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


def unix_seconds(when: datetime) -> int:
    """Unix seconds, rounded up: block timestamps are whole seconds."""
    return -int(-when.timestamp() // 1)
