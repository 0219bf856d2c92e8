"""Benchmark: a fleet in one run, side by side with one agent at a time.

Prints figures; it is not a timed test. Run: ``.venv/bin/python -m bench.fleet``
(``--agents N`` for the health half, default 200; ``--wallets N`` for the reconcile half,
default 100; ``--skip-health`` / ``--skip-reconcile``).

Reconcile half (goal: ``fleet reconcile`` of 100 wallets costs at most 1.2x the
``eth_getLogs`` calls of one wallet's scan): the in-memory chain of ``bench/reconcile.py``
(200,000 blocks, 2,000 Transfer logs, 1,200 of them in one 300-block burst) with the logs
paying N wallets in turn, behind the same limited-provider proxy (``tests/chain_proxy.py``:
1,000 blocks or 500 results per call, Alchemy- and Infura-style refusals). Measured: one
wallet reconciled alone (``reconcile_earnings``), then all N with ``reconcile_fleet`` (one
scan, every wallet in topics[2] / topics[1]); every report must reconcile. The naive
alternative, N separate scans, is N times the single figure.

Health half (goal: ``fleet health`` over 200 agents at least 20x faster in wall time than
200 separate ``health`` processes): needs ``fleet health`` (branch fleet-a); printed as
"not available" when that command is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.chain_proxy import LimitProxy

from bench.reconcile import MAX_BLOCKS, MAX_RESULTS, TOKEN, FakeChain, Ledger
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.reconcile.fleet import Member, reconcile_fleet
from impromptu_ops.reconcile.service import Window, reconcile_earnings
from impromptu_ops.settings import Settings, load_settings

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _settings(url: str, wallet: str, state: Path) -> Settings:
    return load_settings({"chain.rpc_url": url, "chain.wallet_address": wallet,
                          "chain.token_address": TOKEN, "paths.state_dir": state}, env={})


def reconcile_half(wallets_count: int, style: str) -> None:
    wallets = tuple("0x" + f"{i + 1:08x}" * 5 for i in range(wallets_count))
    chain = FakeChain(wallets=wallets)
    with tempfile.TemporaryDirectory() as tmp, LimitProxy(
            chain, max_blocks=MAX_BLOCKS, max_results=MAX_RESULTS, style=style,
            range_style="quicknode") as proxy:
        with JsonRpcClient(proxy.url) as rpc:
            started = time.perf_counter()
            alone = reconcile_earnings(_settings(proxy.url, wallets[0], Path(tmp) / "one"),
                                       rpc, Ledger(chain, wallets[0]), Window(from_block=0),
                                       now=NOW)
            one_wall = time.perf_counter() - started
        one_calls = len(proxy.getlogs_calls)
        assert alone.reconciled, alone.discrepancies[:3]
        proxy.getlogs_calls.clear()
        members = [Member(f"agent-{i:03d}", _settings(proxy.url, w, Path(tmp) / f"a{i}"),
                          Ledger(chain, w)) for i, w in enumerate(wallets)]
        with JsonRpcClient(proxy.url) as rpc:
            started = time.perf_counter()
            result = reconcile_fleet(members, rpc, Window(from_block=0), now=NOW)
            fleet_wall = time.perf_counter() - started
        fleet_calls = len(proxy.getlogs_calls)
        refused = sum(1 for c in proxy.getlogs_calls if c[2] == "refused")
    bad = [o.name for o in result.outcomes if o.status != "reconciled"]
    assert not bad, bad
    ratio = fleet_calls / one_calls
    print(f"  [{style}] one wallet alone : {one_calls} eth_getLogs calls, {one_wall:.2f} s")
    print(f"  [{style}] fleet of {wallets_count} wallets: {fleet_calls} eth_getLogs calls "
          f"({refused} refused), {fleet_wall:.2f} s for all {wallets_count} reports; "
          f"ratio {ratio:.3f} ({'within' if ratio <= 1.2 else 'OVER'} the 1.2 goal); "
          f"{wallets_count} separate scans would make ~{one_calls * wallets_count} calls")


def health_half(agents: int) -> None:
    if importlib.util.find_spec("impromptu_ops.cli.fleet") is None:
        print(f"  fleet health over {agents} agents: not available (the 'fleet health' "
              "command is not on this branch)")
        return
    from bench.fleet_health import run_health_half
    run_health_half(agents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--wallets", type=int, default=100)
    parser.add_argument("--skip-health", action="store_true")
    parser.add_argument("--skip-reconcile", action="store_true")
    args = parser.parse_args()
    if not args.skip_health:
        print(f"fleet health: {args.agents} sandbox agents, one process vs "
              f"{args.agents} processes")
        health_half(args.agents)
    if not args.skip_reconcile:
        print(f"fleet reconcile: {args.wallets} wallets vs one, provider limit "
              f"{MAX_BLOCKS:,} blocks or {MAX_RESULTS} results per call")
        for style in ("alchemy", "infura"):
            reconcile_half(args.wallets, style)


if __name__ == "__main__":
    main()
