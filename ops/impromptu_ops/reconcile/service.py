"""The reconciliation run: fetch the ledger, scan the chain incrementally, call the core.

This module is the public entry of one run around
:func:`impromptu_ops.reconcile.match.reconcile`: it checks the chain id against the
configuration, takes the cache's lock, then prepares and scans (:mod:`.chainscan`: chain
settings, token decimals, the final head, the re-check of the block hashes of provisional
transfers seen on earlier runs (reorgs), only the block ranges the cache does not hold) and
finishes (:mod:`.finish`: the ledger, receipts of payout transactions outside the scanned
range (batched), matching, the atomic save of the cache). It does not print and does not
exit: the CLI renders the :class:`~.model.Report`.

The ledger comes through the small :class:`LedgerSource` protocol; :class:`PlatformLedger`
adapts :class:`impromptu_ops.platform.client.PlatformClient` (cursor pagination, §6). The
names of :mod:`.chainscan` and :mod:`.finish` that callers use are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.chain.scan import LogScanner
from impromptu_ops.errors import ChainError, ConfigError
from impromptu_ops.locks import ProcessLock
from impromptu_ops.reconcile.chainscan import (
    Plan,
    Window,
    check_chain_settings,
    policy_from,
    prepare_run,
    scan_wallets,
)
from impromptu_ops.reconcile.finish import (
    NO_HISTORY,
    LedgerSource,
    NamedAgent,
    PlatformClientLike,
    PlatformLedger,
    finish_run,
)
from impromptu_ops.reconcile.model import Policy, Report
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.platform.client import PlatformClient

__all__ = [
    "NO_HISTORY",
    "LedgerSource",
    "NamedAgent",
    "Plan",
    "PlatformClientLike",
    "PlatformLedger",
    "Window",
    "check_chain_settings",
    "finish_run",
    "policy_from",
    "prepare_run",
    "reconcile_earnings",
    "run_reconciliation",
    "scan_wallets",
]


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
