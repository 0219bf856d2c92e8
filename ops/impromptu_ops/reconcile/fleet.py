"""Private: ``fleet reconcile``: one chain scan for every agent's wallet, split per agent.

This module owns the fleet run around :mod:`.service`: it validates each agent's chain
settings (an agent that cannot be checked is reported, not fatal to the others), checks
that all agents read the same chain and token (one scan cannot serve two), reads the heads
once, prepares each wallet's cache (:func:`.service.prepare_run`), scans the blocks any
wallet lacks ONCE with every wallet in the Transfer filter (:func:`.service.scan_wallets`:
topics[2] / topics[1] as a list, the JSON-RPC filter's OR within a topic position), then
finishes each agent's report from its own ledger (:func:`.service.finish_run`).

It does not print or exit, and does not choose the agents: the caller passes the members
(name, settings, ledger). The pure :func:`verdict` gives the fleet's verdict (the CLI
maps it to a code).

Exit codes: 0 every agent reconciled; 1 at least one agent has discrepancies (a finding
outranks an agent that could not be checked: both are named in the summary); 3 no
discrepancy found but at least one agent could not be checked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from impromptu_ops.chain import finality
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.chain.scan import LogScanner
from impromptu_ops.errors import ChainError, ConfigError, OpsError
from impromptu_ops.locks import ProcessLock
from impromptu_ops.reconcile.cache import merge_ranges
from impromptu_ops.reconcile.model import Report
from impromptu_ops.reconcile.service import (
    LedgerSource,
    Plan,
    Window,
    check_chain_settings,
    finish_run,
    prepare_run,
    scan_wallets,
)
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.platform.client import PlatformClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """One agent of the fleet: its name, its resolved settings and its ledger."""

    name: str
    settings: Settings
    ledger: LedgerSource


@dataclass(frozen=True)
class Outcome:
    """One agent's result: a report, or why it could not be checked (one line)."""

    name: str
    wallet: str
    report: Report | None = None
    error: str = ""

    @property
    def status(self) -> str:
        if self.report is None:
            return "unknown"
        return "reconciled" if self.report.reconciled else "discrepancies"


@dataclass(frozen=True)
class FleetResult:
    """Every agent's outcome, in the order given, and what the shared scan cost."""

    outcomes: tuple[Outcome, ...]
    scanned_blocks: int
    getlogs_calls: int
    splits: int

    def named(self, status: str) -> list[str]:
        return [o.name for o in self.outcomes if o.status == status]


def verdict(result: FleetResult) -> bool | None:
    """The fleet's verdict: False when any agent has discrepancies (they win over "could
    not check"), None when an agent could not be checked (or there was none), True when
    every agent reconciles. The CLI maps it like ``earnings reconcile``'s. Pure."""
    if result.named("discrepancies"):
        return False
    if result.named("unknown") or not result.outcomes:
        return None
    return True


def _same_chain(first: Settings, other: Settings) -> bool:
    a, b = first.chain, other.chain
    return (a.rpc_url, a.chain_id, a.token_address.lower(), a.confirmations,
            a.use_finality_tags) == (b.rpc_url, b.chain_id, b.token_address.lower(),
                                     b.confirmations, b.use_finality_tags)


def reconcile_fleet(members: Sequence[Member], rpc: JsonRpcClient, window: Window, *,
                    now: datetime | None = None,
                    progress: Callable[[int, int], None] | None = None) -> FleetResult:
    """Reconcile every member's wallet with one chain scan.

    A member whose settings are unusable, whose wallet another member already uses, or
    whose ledger cannot be read is an ``unknown`` outcome naming why; the others go on.

    Raises:
        ChainError: the chain disagrees with the configuration or cannot be read (every
            agent depends on the one scan: nothing can be said about any of them).
        LockBusy: another reconciliation holds one of the agents' caches.
    """
    now = now or datetime.now(UTC)
    outcomes: dict[str, Outcome] = {}
    ready: list[tuple[Member, str]] = []
    owners: dict[str, str] = {}
    for m in members:
        try:
            wallet, _ = check_chain_settings(m.settings)
        except OpsError as exc:
            outcomes[m.name] = Outcome(m.name, "", error=exc.diagnostics())
            continue
        if wallet in owners:
            outcomes[m.name] = Outcome(m.name, wallet, error=(
                f"wallet {wallet} is also agent {owners[wallet]}'s: one wallet's transfers "
                "cannot be split between two ledgers"))
            continue
        if ready and not _same_chain(ready[0][0].settings, m.settings):
            outcomes[m.name] = Outcome(m.name, wallet, error=(
                f"its chain settings (rpc, chain id, token, finality) differ from agent "
                f"{ready[0][0].name}'s: run it on its own with 'earnings reconcile'"))
            continue
        owners[wallet] = m.name
        ready.append((m, wallet))
    if not ready:
        return FleetResult(tuple(outcomes[m.name] for m in members), 0, 0, 0)

    chain = ready[0][0].settings.chain
    actual = rpc.chain_id()
    if actual != chain.chain_id:
        raise ChainError(f"the RPC serves chain id {actual}, the configuration says "
                         f"{chain.chain_id}", hint="check chain.rpc_url and chain.chain_id")
    calls_before = rpc.calls
    getlogs_before = rpc.method_calls("eth_getLogs")
    locks = sorted({m.settings.paths.state_dir / "earnings" / "reconcile.lock"
                    for m, _ in ready})
    with contextlib.ExitStack() as stack:
        for path in locks:
            stack.enter_context(ProcessLock(Path(path), "fleet reconcile"))
        heads = finality.read_heads(rpc, chain.confirmations, use_tags=chain.use_finality_tags)
        plans: list[tuple[Member, Plan]] = []
        for m, wallet in ready:
            _, policy = check_chain_settings(m.settings)
            plans.append((m, prepare_run(m.settings, rpc, window, policy, wallet, heads)))
        scanner = LogScanner(rpc, min(m.settings.chain.max_block_range for m, _ in ready))
        scan_wallets([p for _, p in plans], scanner, progress=progress,
                     max_filter_wallets=chain.max_filter_wallets)
        scanned = sum(b - a + 1 for a, b in merge_ranges([g for _, p in plans for g in p.gaps]))
        shared = {"wallets": len(plans), "blocks": scanned,
                  "rpcCalls": rpc.calls - calls_before,
                  "getLogsCalls": rpc.method_calls("eth_getLogs") - getlogs_before}
        for m, plan in plans:
            try:
                # each report counts its own calls; the shared scan is named apart
                report = finish_run(plan, rpc, m.ledger, now, scanned_blocks=sum(
                    b - a + 1 for a, b in plan.gaps), splits=scanner.splits,
                    calls_before=rpc.calls, elements_before=rpc.elements,
                    shared_scan=shared)
            except ChainError:
                raise
            except OpsError as exc:
                plan.cache.save()  # the scan is the agent's too, whatever its ledger did
                log.warning("agent %s could not be reconciled: %s", m.name, exc.message)
                outcomes[m.name] = Outcome(m.name, plan.wallet, error=exc.diagnostics())
                continue
            outcomes[m.name] = Outcome(m.name, plan.wallet, report=report)
    return FleetResult(tuple(outcomes[m.name] for m in members), scanned,
                       rpc.method_calls("eth_getLogs") - getlogs_before, scanner.splits)


class FleetAgent(Protocol):
    """What the fleet run needs of an agent: :class:`impromptu_ops.api.Agent` fits."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    def platform(self) -> PlatformClient: ...


def run_fleet_reconciliation(agents: Sequence[FleetAgent], window: Window, *,
                             progress: Callable[[int, int], None] | None = None,
                             now: datetime | None = None) -> FleetResult:
    """Everything ``fleet reconcile`` needs: each agent's platform client (with the key
    from its own store), one chain client for all, one :func:`reconcile_fleet` run.

    An agent whose key or platform client cannot be had is an ``unknown`` outcome; the
    others go on.

    Raises:
        ConfigError: no agent, or no chain RPC configured.
        OpsError: the chain could not be read.
    """
    from impromptu_ops.reconcile.service import PlatformLedger

    if not agents:
        raise ConfigError("no agents to reconcile", hint="register one or list them in the "
                          "config ([agents.NAME] tables)")
    chain = agents[0].settings.chain
    if not chain.rpc_url:
        raise ConfigError("no chain RPC configured",
                          hint="set chain.rpc_url (env IMPROMPTU_CHAIN_RPC) to a Base RPC URL")
    failed: dict[str, Outcome] = {}
    with contextlib.ExitStack() as stack:
        fleet: list[Member] = []
        for agent in agents:
            settings = agent.settings
            try:
                check_chain_settings(settings)  # a config mistake before the store
                client = stack.enter_context(agent.platform())
            except OpsError as exc:
                failed[agent.name] = Outcome(agent.name, settings.chain.wallet_address.lower(),
                                             error=exc.diagnostics())
                continue
            fleet.append(Member(agent.name, settings, PlatformLedger(client)))
        rpc = stack.enter_context(JsonRpcClient(
            chain.rpc_url, timeout=chain.rpc_timeout,
            max_response_bytes=chain.max_response_bytes,
            rate_limit_retries=chain.rate_limit_retries, backoff_base=chain.backoff_base,
            backoff_cap=chain.backoff_cap, max_retry_after=chain.max_retry_after))
        result = reconcile_fleet(fleet, rpc, window, now=now, progress=progress)
    by_name = {o.name: o for o in result.outcomes} | failed
    return FleetResult(tuple(by_name[a.name] for a in agents), result.scanned_blocks,
                       result.getlogs_calls, result.splits)
