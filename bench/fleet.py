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
200 separate ``health`` processes): 200 agents made by one ``/_sandbox/agents/bulk``
request, each with its platform and OpenRouter keys in its own local store and a
``[agents.NAME.chain]`` table; one ``fleet heartbeat`` so every freshness check is OK;
then ``fleet health --format nagios`` (one process) against ``impromptu-ops --agent NAME
health --format nagios`` once per agent, sequentially (``--sample K`` times K of them and
scales to all). Printed as "not available" when ``fleet health`` is not installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import shutil
import statistics
import subprocess
import sys
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


CPU: dict[str, float] = {}


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time of the process; CPU of it (children) and of this process (the sandbox
    serving it) in :data:`CPU`."""
    child, own = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    CPU["process"] = _cpu(resource.RUSAGE_CHILDREN) - child
    CPU["sandbox"] = _cpu(resource.RUSAGE_SELF) - own
    return time.perf_counter() - started, proc.returncode, (proc.stdout or proc.stderr)


def health_half(agents: int, sample: int, concurrency: int | None) -> None:
    """``fleet health --format nagios`` over ``agents`` sandbox agents (made with the bulk
    control, each key in its own local store, one ``fleet heartbeat`` first so freshness
    is OK) vs ``impromptu-ops --agent NAME health --format nagios`` run once per agent,
    one after the other as a cron loop would (``sample`` of them timed, scaled to all)."""
    if importlib.util.find_spec("impromptu_ops.cli.fleet") is None:
        print(f"  fleet health over {agents} agents: not available (the 'fleet health' "
              "command is not on this branch)")
        return
    home = Path(tempfile.mkdtemp(prefix="impromptu-fleet-bench-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMPROMPTU_", "VAULT_", "OPENROUTER_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"),
               XDG_STATE_HOME=str(home / ".local/state"))
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # load_settings/open_store below must see the bench HOME

    import httpx

    from impromptu_ops.fleet.roster import agent_settings
    from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer
    from impromptu_ops.secret import Secret
    from impromptu_ops.settings import config_path
    from impromptu_ops.store.factory import open_store

    server = SandboxServer(SandboxConfig.build(), home / "sandbox", host="127.0.0.1", port=0)
    server.start()
    try:
        env["IMPROMPTU_API_URL"] = os.environ["IMPROMPTU_API_URL"] = server.base_url
        env["IMPROMPTU_OPENROUTER_URL"] = os.environ["IMPROMPTU_OPENROUTER_URL"] = (
            server.openrouter_url)
        started = time.perf_counter()
        made = server.control("POST", "agents/bulk", {"count": agents,
                                                      "namePrefix": "bench"})["agents"]
        bulk = time.perf_counter() - started
        names = [f"a{i:03d}" for i in range(len(made))]
        path = config_path(os.environ)
        path.parent.mkdir(parents=True, exist_ok=True)
        tuned = f"concurrency = {concurrency}\n" if concurrency else ""
        path.write_text("[fleet]\ninclude_default = false\n" + tuned + "".join(
            f'[agents.{n}.chain]\nwallet_address = "{m["walletAddress"]}"\n'
            for n, m in zip(names, made, strict=True)))
        prov = server.control("POST", "openrouter/provisioning-key")["key"]
        base = load_settings()
        with httpx.Client(timeout=30) as client:
            for n, m in zip(names, made, strict=True):
                or_key = client.post(f"{server.openrouter_url}/keys", json={"name": n},
                                     headers={"Authorization": f"Bearer {prov}"}).json()["key"]
                store = open_store(agent_settings(base, n))
                store.write("impromptu-api-key", {"value": Secret(m["apiKey"])}, cas=0)
                store.write("openrouter-api-key", {"value": Secret(or_key)}, cas=0)
        exe = str(Path(sys.executable).with_name("impromptu-ops"))
        beat = _run([exe, "fleet", "heartbeat"], env)
        print(f"  setup: {len(made)} agents by one bulk control in {bulk:.2f} s; "
              f"fleet heartbeat {beat[0]:.1f} s exit {beat[1]}")
        fleet_wall, fleet_code, fleet_out = _run([exe, "fleet", "health", "--format",
                                                  "nagios"], env)
        fleet_cpu = dict(CPU)
        singles: list[float] = []
        codes: set[int] = set()
        for n in names[:sample]:
            secs, code, _ = _run([exe, "--agent", n, "health", "--format", "nagios"], env)
            singles.append(secs)
            codes.add(code)
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(home, ignore_errors=True)
    per = statistics.mean(singles)
    total = per * len(names)
    ratio = total / fleet_wall
    print(f"  fleet health --format nagios, one process, {len(names)} agents "
          f"(fleet.concurrency {concurrency or 'default'}): "
          f"{fleet_wall:.2f} s, exit {fleet_code}: {fleet_out.strip()[:110]}")
    print(f"    CPU during it: the fleet process {fleet_cpu['process']:.2f} s, the sandbox "
          f"serving it {fleet_cpu['sandbox']:.2f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"  {len(names)} separate 'health --format nagios' processes: "
          f"{'measured' if sample >= len(names) else f'{len(singles)} timed, scaled to'} "
          f"{total:.1f} s ({per * 1000:.0f} ms each, exit codes {sorted(codes)})")
    print(f"  ratio separate / fleet: {ratio:.1f}x ({'meets' if ratio >= 20 else 'BELOW'} "
          "the 20x goal)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--wallets", type=int, default=100)
    parser.add_argument("--sample", type=int, default=200,
                        help="how many of the separate health processes to time (the total "
                             "is scaled from them; default: all of them)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="fleet.concurrency for the fleet run (default: the setting's "
                             "default, 8 agents at once)")
    parser.add_argument("--skip-health", action="store_true")
    parser.add_argument("--skip-reconcile", action="store_true")
    args = parser.parse_args()
    if not args.skip_health:
        print(f"fleet health: {args.agents} sandbox agents, one process vs "
              f"{args.agents} processes")
        health_half(args.agents, args.sample, args.concurrency)
    if not args.skip_reconcile:
        print(f"fleet reconcile: {args.wallets} wallets vs one, provider limit "
              f"{MAX_BLOCKS:,} blocks or {MAX_RESULTS} results per call")
        for style in ("alchemy", "infura"):
            reconcile_half(args.wallets, style)


if __name__ == "__main__":
    main()
