"""End to end: the sandbox's ledger and real payouts on anvil, reconciled by the library.

One anvil and one sandbox (``--chain-rpc`` = that anvil) per module; each test makes its own
agent (its own wallet), so tests do not see each other's transfers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.errors import ChainError
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.reconcile.model import Kind, Report
from impromptu_ops.reconcile.service import PlatformLedger, Window, reconcile_earnings
from impromptu_ops.sandbox.ledger import SCENARIOS
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from tests.chain_proxy import LimitProxy, forward_to
from tests.fixtures_chain import Anvil


class Agent:
    def __init__(self, server: SandboxServer, anvil: Anvil, state_dir: Path) -> None:
        made = server.control("POST", "agents", {})
        self.server = server
        self.anvil = anvil
        self.agent_id: str = made["agentId"]
        self.key = Secret(made["apiKey"], "impromptu-api-key")
        self.wallet: str = made["walletAddress"]
        self.token: dict[str, Any] = server.control("POST", "ledger/token", {})
        self.state_dir = state_dir

    def scenario(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.server.control(
            "POST", "ledger/scenario", {"agentId": self.agent_id, "name": name})
        return result

    def settings(self, more: dict[str, Any] | None = None) -> Settings:
        values = {"platform.api_url": self.server.base_url,
                  "chain.rpc_url": self.anvil.url, "chain.wallet_address": self.wallet,
                  "chain.token_address": self.token["address"],
                  "chain.payout_senders": self.token["treasury"],
                  "paths.state_dir": self.state_dir, **(more or {})}
        return load_settings(values, env={})

    def reconcile(self, window: Window | None = None, more: dict[str, Any] | None = None,
                  rpc_url: str | None = None) -> tuple[Report, int]:
        settings = self.settings(more)
        with PlatformClient(settings.platform, self.key) as client, \
                JsonRpcClient(rpc_url or self.anvil.url) as rpc:
            report = reconcile_earnings(settings, rpc, PlatformLedger(client, page_size=3),
                                        window or Window())
            return report, rpc.calls


@pytest.fixture
def agent(ledger_sandbox: SandboxServer, anvil: Anvil, tmp_path: Path) -> Agent:
    return Agent(ledger_sandbox, anvil, tmp_path / "state")


def test_clean_scenario_reconciles_exactly(agent: Agent) -> None:
    agent.scenario("clean")
    report, _ = agent.reconcile()
    assert report.reconciled, report.discrepancies
    t = report.totals
    referral = 12_345_678_901_234_567_891 * 500 // 10_000
    assert t.earned == 100 * 10**18 + 1 + referral
    assert t.fees == -10 * 10**18
    assert t.paid_ledger == t.received_chain == 50 * 10**18
    assert t.pending == 100 * 10**18 + 1 + referral - 10 * 10**18 - 50 * 10**18
    assert len(report.matches) == 1 and report.context["decimals"] == 18


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n not in ("clean", "reorged_transfer")])
def test_each_scenario_is_found_and_named(agent: Agent, name: str) -> None:
    agent.scenario(name)
    report, _ = agent.reconcile()
    assert report.kinds() == {Kind(name)}, report.discrepancies
    effects = sum(d.chain_effect for d in report.discrepancies)
    assert report.totals.paid_ledger + effects == report.totals.received_chain


def test_reorg_is_detected_on_rerun(agent: Agent) -> None:
    out = agent.scenario("reorged_transfer")
    first, _ = agent.reconcile()
    assert first.reconciled, first.discrepancies
    assert any(m.provisional for m in first.matches)
    block = out["reorgPayout"]["blockNumber"]
    with JsonRpcClient(agent.anvil.url) as rpc:
        depth = rpc.block_number() - block + 1
    agent.server.control("POST", "ledger/reorg", {"depth": depth})
    second, _ = agent.reconcile()
    assert second.kinds() == {Kind.REORGED_TRANSFER}
    (d,) = second.discrepancies
    assert d.tx_hash == out["reorgPayout"]["txHash"] and d.expected == 2 * 10**18
    third, _ = agent.reconcile()  # still named on later runs, not just "missing"
    assert third.kinds() == {Kind.REORGED_TRANSFER}


def test_rerun_with_cache_is_cheap_and_idempotent(agent: Agent) -> None:
    agent.scenario("amount_mismatch")
    with JsonRpcClient(agent.anvil.url) as rpc:
        rpc.request("anvil_mine", ["0xc8"])  # push the payouts below the finalized tag
    first, _ = agent.reconcile(more={"chain.max_block_range": 50})
    second, calls = agent.reconcile(more={"chain.max_block_range": 50})
    assert first.discrepancies == second.discrepancies
    assert first.totals == second.totals
    assert second.context["scannedBlocks"] < first.context["scannedBlocks"]
    # chain id, latest/finalized/safe, the unfinal tail's logs in and out, its block times,
    # one batch of balanceOf at the period's ends, a reorg re-check: nothing scanned again
    assert calls <= 9, calls


def test_pinned_decimals_and_chain_id_check(agent: Agent) -> None:
    agent.scenario("clean")
    report, _ = agent.reconcile(more={"chain.decimals": 6})
    assert report.context["decimals"] == 6 and report.reconciled
    from impromptu_ops.errors import ChainError
    with pytest.raises(ChainError, match="chain id 8453"):
        agent.reconcile(more={"chain.chain_id": 1})


def test_since_date_limits_the_scan(agent: Agent) -> None:
    from datetime import UTC, datetime, timedelta
    agent.scenario("clean")
    report, _ = agent.reconcile(Window(since=datetime.now(UTC) + timedelta(days=1)))
    # nothing scanned, but the payout's receipt still proves it
    assert report.context["scannedBlocks"] == 0
    assert report.reconciled, report.discrepancies


def test_same_report_through_a_limited_provider(agent: Agent, tmp_path: Path) -> None:
    agent.scenario("unrecorded_transfer")
    direct, _ = agent.reconcile()
    agent.state_dir = tmp_path / "other-cache"
    with LimitProxy(forward_to(agent.anvil.url), max_blocks=3, max_results=1,
                    style="infura") as proxy:
        limited, _ = agent.reconcile(rpc_url=proxy.url)
    assert limited.discrepancies == direct.discrepancies
    assert limited.totals == direct.totals and limited.matches == direct.matches
    assert limited.context["splits"] > 0


def test_a_second_concurrent_run_is_refused(agent: Agent) -> None:
    from impromptu_ops.errors import LockBusy
    from impromptu_ops.locks import ProcessLock
    agent.scenario("clean")
    with ProcessLock(agent.state_dir / "earnings" / "reconcile.lock", "other run"), \
            pytest.raises(LockBusy):
        agent.reconcile()
    report, _ = agent.reconcile()  # released: runs
    assert report.reconciled


class _FailingLogs(httpx.BaseTransport):
    """The real node, except that eth_getLogs breaks for good after ``ok`` answers."""

    def __init__(self, ok: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.ok = ok

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if isinstance(body, dict) and body.get("method") == "eth_getLogs":
            if self.ok <= 0:
                return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": {
                    "code": -32601, "message": "the method eth_getLogs does not exist"}})
            self.ok -= 1
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_scan_that_fails_midway_is_resumed_not_restarted(agent: Agent) -> None:
    agent.scenario("clean")
    with JsonRpcClient(agent.anvil.url) as rpc:
        rpc.request("anvil_mine", ["0x190"])  # 400 blocks: most of them below finalized
    more = {"chain.max_block_range": 20}
    settings = agent.settings(more)
    with PlatformClient(settings.platform, agent.key) as client, \
            JsonRpcClient(agent.anvil.url, transport=_FailingLogs(ok=10)) as broken, \
            pytest.raises(ChainError, match="does not exist"):
        reconcile_earnings(settings, broken, PlatformLedger(client), Window())
    report, _ = agent.reconcile(more=more)
    assert report.reconciled, report.discrepancies
    # the five chunks of 20 blocks scanned (incoming and outgoing: ten calls) before the
    # failure were kept
    assert report.context["scannedBlocks"] == report.context["toBlock"] + 1 - 100
