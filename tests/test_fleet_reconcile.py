"""``fleet reconcile``: one chain scan for many wallets, on the sandbox and anvil.

The combined filter relies on the JSON-RPC ``eth_getLogs`` filter semantics: "Topics are
order-dependent. Each topic can also be an array of DATA with 'or' options" (Ethereum
JSON-RPC spec, eth_newFilter / eth_getLogs filter object,
https://ethereum.org/en/developers/docs/apis/json-rpc/#eth_newfilter); anvil implements it,
and the counting proxy (tests/chain_proxy.py) applies providers' range and result limits on
top of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.reconcile import fleet_render
from impromptu_ops.reconcile.fleet import Member, reconcile_fleet, verdict
from impromptu_ops.reconcile.model import Kind
from impromptu_ops.reconcile.service import PlatformLedger, Window, reconcile_earnings
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from tests.chain_proxy import LimitProxy, forward_to
from tests.fixtures_chain import Anvil

SCENARIOS = {"alpha": "clean", "bravo": "amount_mismatch", "charlie": "unrecorded_transfer",
             "delta": "payout_missing_on_chain"}


class FleetAgent:
    def __init__(self, name: str, server: SandboxServer, token: dict[str, Any]) -> None:
        made = server.control("POST", "agents", {"name": name})
        self.name = name
        self.agent_id: str = made["agentId"]
        self.key = Secret(made["apiKey"], "impromptu-api-key")
        self.wallet: str = made["walletAddress"]
        self.token = token

    def settings(self, server: SandboxServer, rpc_url: str, state_dir: Path,
                 **more: Any) -> Settings:
        return load_settings({"platform.api_url": server.base_url, "chain.rpc_url": rpc_url,
                              "chain.wallet_address": self.wallet,
                              "chain.token_address": self.token["address"],
                              "chain.payout_senders": self.token["treasury"],
                              "paths.state_dir": state_dir, **more}, env={})


@pytest.fixture(scope="module")
def fleet(ledger_sandbox: SandboxServer, anvil: Anvil) -> list[FleetAgent]:
    token = ledger_sandbox.control("POST", "ledger/token", {})
    agents = [FleetAgent(n, ledger_sandbox, token) for n in SCENARIOS]
    for a in agents:
        ledger_sandbox.control("POST", "ledger/scenario",
                               {"agentId": a.agent_id, "name": SCENARIOS[a.name]})
    with JsonRpcClient(anvil.url) as rpc:
        rpc.request("anvil_mine", ["0x64"])  # 100 more blocks: the scan must split
    return agents


def _run(agents: list[FleetAgent], server: SandboxServer, rpc_url: str, state: Path,
         **more: Any) -> Any:
    clients = [PlatformClient(a.settings(server, rpc_url, state).platform, a.key)
               for a in agents]
    try:
        members = [Member(a.name, a.settings(server, rpc_url, state, **more),
                          PlatformLedger(c)) for a, c in zip(agents, clients, strict=True)]
        with JsonRpcClient(rpc_url) as rpc:
            return reconcile_fleet(members, rpc, Window())
    finally:
        for c in clients:
            c.close()


def test_one_scan_names_each_agents_discrepancies(
        fleet: list[FleetAgent], ledger_sandbox: SandboxServer, anvil: Anvil,
        tmp_path: Path) -> None:
    """Each agent's report holds its own discrepancies only (split by wallet after one
    scan), the same as reconciling that agent alone; the summary names the agents."""
    result = _run(fleet, ledger_sandbox, anvil.url, tmp_path / "fleet")
    by_name = {o.name: o for o in result.outcomes}
    assert by_name["alpha"].report.reconciled, by_name["alpha"].report.discrepancies
    for name, kind in (("bravo", "amount_mismatch"), ("charlie", "unrecorded_transfer"),
                       ("delta", "payout_missing_on_chain")):
        assert by_name[name].report.kinds() == {Kind(kind)}, name
        assert by_name[name].report.context["wallet"] == by_name[name].wallet
        assert by_name[name].report.context["sharedScan"]["wallets"] == 4
    assert verdict(result) is False  # discrepancies: exit 1
    assert result.named("discrepancies") == ["bravo", "charlie", "delta"]

    alone = fleet[1]
    settings = alone.settings(ledger_sandbox, anvil.url, tmp_path / "alone")
    with PlatformClient(settings.platform, alone.key) as client, \
            JsonRpcClient(anvil.url) as rpc:
        single = reconcile_earnings(settings, rpc, PlatformLedger(client), Window())
    assert single.discrepancies == by_name["bravo"].report.discrepancies
    assert single.totals == by_name["bravo"].report.totals

    folder = tmp_path / "reports"
    folder.mkdir()
    written = fleet_render.write_reports(result, folder, "json")
    assert sorted(p.name for p in folder.iterdir()) == [f"{n}.json" for n in SCENARIOS]
    bravo = json.loads(written["bravo"].read_text())
    assert {d["kind"] for d in bravo["discrepancies"]} == {"amount_mismatch"}
    text = fleet_render.render_summary(result, "table", written)
    assert "discrepancies: bravo, charlie, delta" in text
    summary = json.loads(fleet_render.render_summary(result, "json"))
    assert summary["discrepancies"] == ["bravo", "charlie", "delta"] and not summary["unknown"]


def test_getlogs_calls_for_many_wallets_match_one_wallets(
        fleet: list[FleetAgent], ledger_sandbox: SandboxServer, anvil: Anvil,
        tmp_path: Path) -> None:
    """Through a provider that caps ranges at 40 blocks and answers at most 6 logs, four
    wallets cost at most 1.2x the eth_getLogs calls of one wallet, and the reports are
    the same as without limits."""
    limits = {"max_blocks": 40, "max_results": 6, "style": "alchemy"}
    with LimitProxy(forward_to(anvil.url), **limits) as proxy:  # type: ignore[arg-type]
        one = _run(fleet[:1], ledger_sandbox, proxy.url, tmp_path / "one")
        one_calls = len(proxy.getlogs_calls)
    with LimitProxy(forward_to(anvil.url), **limits) as proxy:  # type: ignore[arg-type]
        many = _run(fleet, ledger_sandbox, proxy.url, tmp_path / "many")
        many_calls = len(proxy.getlogs_calls)
    assert many.getlogs_calls == many_calls and one.getlogs_calls == one_calls
    assert one_calls > 2 and many_calls <= 1.2 * one_calls, (one_calls, many_calls)
    # chain.max_filter_wallets = 2: two groups of two wallets, one scan each
    with LimitProxy(forward_to(anvil.url), **limits) as proxy:  # type: ignore[arg-type]
        grouped = _run(fleet, ledger_sandbox, proxy.url, tmp_path / "grouped",
                       **{"chain.max_filter_wallets": 2})
        grouped_calls = len(proxy.getlogs_calls)
        wallet_lists = [c for c in proxy.filters if isinstance(c, list)]
    assert one_calls < grouped_calls <= 2.4 * one_calls, (one_calls, grouped_calls)
    assert wallet_lists and max(len(w) for w in wallet_lists) == 2
    direct = _run(fleet, ledger_sandbox, anvil.url, tmp_path / "direct")
    for limited, plain, split in zip(many.outcomes, direct.outcomes, grouped.outcomes,
                                     strict=True):
        assert limited.report.discrepancies == plain.report.discrepancies
        assert limited.report.totals == plain.report.totals
        assert split.report.discrepancies == plain.report.discrepancies


def test_an_agent_that_cannot_be_checked_does_not_stop_the_others(
        fleet: list[FleetAgent], ledger_sandbox: SandboxServer, anvil: Anvil,
        tmp_path: Path) -> None:
    good = fleet[0]
    clients = [PlatformClient(good.settings(ledger_sandbox, anvil.url, tmp_path).platform,
                              good.key) for _ in range(3)]
    try:
        members = [
            Member("alpha", good.settings(ledger_sandbox, anvil.url, tmp_path),
                   PlatformLedger(clients[0])),
            Member("nowallet", good.settings(ledger_sandbox, anvil.url, tmp_path,
                                             **{"chain.wallet_address": ""}),
                   PlatformLedger(clients[1])),
            Member("twin", good.settings(ledger_sandbox, anvil.url, tmp_path),
                   PlatformLedger(clients[2])),
        ]
        with JsonRpcClient(anvil.url) as rpc:
            result = reconcile_fleet(members, rpc, Window())
    finally:
        for c in clients:
            c.close()
    assert [o.status for o in result.outcomes] == ["reconciled", "unknown", "unknown"]
    assert "no agent wallet address" in result.outcomes[1].error
    assert "also agent alpha's" in result.outcomes[2].error
    assert verdict(result) is None  # could not check: exit 3
    with pytest.raises(Exception, match="cannot name a report file"):
        fleet_render.report_path(tmp_path, "../evil", "json")
