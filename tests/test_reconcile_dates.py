"""Dates, units, names and balances on the sandbox + a real anvil.

This module has its own anvil (module scope) because it moves the chain's clock: blocks are
mined at chosen UTC instants with ``evm_setNextBlockTimestamp`` so that the date-to-block
conversion can be checked exactly at day and month boundaries.

The "no historical state" case plays a pruned full node: ``eth_call`` at an old block
number answers geth's ``missing trie node ... is not available`` (JSON-RPC -32000), as
described in "missing trie node" (https://blazed.sh/blog/posts/missing-trie-node/): a full
node prunes old state tries and says so for any query at a block whose state it dropped.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.chain import erc20
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.reconcile import render
from impromptu_ops.reconcile.service import NO_HISTORY, PlatformLedger, Window, reconcile_earnings
from impromptu_ops.reconcile.statement import movements, show_time
from impromptu_ops.sandbox.contracts import token as token_ops
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from tests.fixtures_chain import Anvil

E18 = 10**18
SHOP = "0x" + "5e" * 20


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


class _PrunedNode(httpx.BaseTransport):
    """The real node, except that state before ``keep_from`` is gone (a pruned full node)."""

    def __init__(self, keep_from: int) -> None:
        self.inner = httpx.HTTPTransport()
        self.keep_from = keep_from

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        items = body if isinstance(body, list) else [body]
        if any(i.get("method") == "eth_call" and str(i["params"][1]).startswith("0x")
               and int(i["params"][1], 16) < self.keep_from for i in items):
            answers = [{"jsonrpc": "2.0", "id": i["id"], "error": {
                "code": -32000, "message": "missing trie node 2bca0e91f (path ) state "
                "0x2bca0e91f is not available, not found"}} for i in items]
            return httpx.Response(200, json=answers if isinstance(body, list) else answers[0])
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def history(ledger_sandbox: SandboxServer, anvil: Anvil) -> dict[str, Any]:
    """One agent paid at four instants around the February 2030 boundaries, plus a spend
    out of its wallet and a stranger's transfer in, then 100 blocks so all is final."""
    server = ledger_sandbox
    made = server.control("POST", "agents", {})
    token = server.control("POST", "ledger/token", {})
    server.control("POST", "ledger/earn", {"agentId": made["agentId"],
                                           "amount": str(1000 * E18), "daysAgo": 90})
    blocks: dict[str, int] = {}
    with JsonRpcClient(anvil.url) as rpc:
        for when, amount in (("2030-01-31T23:59:59", 1), ("2030-02-01T00:00:00", 2),
                             ("2030-02-28T23:59:59", 3), ("2030-03-01T00:00:00", 4)):
            rpc.request("evm_setNextBlockTimestamp", [at(when)])
            paid = server.control("POST", "ledger/payout", {
                "agentId": made["agentId"], "amount": str(amount * E18 + 1), "daysAgo": 30})
            blocks[when] = int(paid["blockNumber"])
        rpc.request("evm_setNextBlockTimestamp", [at("2030-03-02T10:00:00")])
        token_ops.transfer(rpc, token["address"], made["walletAddress"], SHOP, E18 // 2,
                           impersonate=True)
        rpc.request("evm_setNextBlockTimestamp", [at("2030-03-03T10:00:00")])
        token_ops.transfer(rpc, token["address"], token["treasury"], made["walletAddress"],
                           7 * E18)
        rpc.request("anvil_mine", ["0x64"])
    return {**made, "token": token, "blocks": blocks, "sandbox": server, "anvil": anvil}


def run(history: dict[str, Any], state: Path, window: Window,
        transport: httpx.BaseTransport | None = None) -> Any:
    server: SandboxServer = history["sandbox"]
    settings = load_settings({
        "platform.api_url": server.base_url, "chain.rpc_url": history["anvil"].url,
        "chain.wallet_address": history["walletAddress"],
        "chain.token_address": history["token"]["address"], "paths.state_dir": state}, env={})
    with PlatformClient(settings.platform, Secret(history["apiKey"])) as client, \
            JsonRpcClient(history["anvil"].url, transport=transport) as rpc:
        report = reconcile_earnings(settings, rpc, PlatformLedger(client), window)
        return report, rpc


def test_since_until_cover_whole_utc_days_exactly(history: dict[str, Any],
                                                  tmp_path: Path) -> None:
    report, _ = run(history, tmp_path, Window(
        since=datetime(2030, 2, 1, tzinfo=UTC), until=datetime(2030, 3, 1, tzinfo=UTC)))
    b = history["blocks"]
    c = report.context
    assert (c["fromBlock"], c["toBlock"]) == (b["2030-02-01T00:00:00"], b["2030-02-28T23:59:59"])
    assert c["periodStart"] == at("2030-02-01T00:00:00")
    assert c["periodEnd"] == at("2030-02-28T23:59:59")
    # binary search: at most 2 x log2(range) lookups per date bound
    bound = 2 * math.ceil(math.log2(c["latestBlock"] + 1))
    assert 0 < c["dateLookups"] <= 2 * bound
    payouts = [m for m in movements(report) if m.type == "payout"]
    assert [(show_time(m.when), m.amount) for m in payouts] == [
        ("2030-02-01 00:00:00 UTC", 2 * E18 + 1), ("2030-02-28 23:59:59 UTC", 3 * E18 + 1)]
    assert "2030-02-01 00:00:00 UTC to 2030-02-28 23:59:59 UTC" in render.period_text(report)
    # a warm cache answers the same question with fewer lookups
    again, _ = run(history, tmp_path, Window(
        since=datetime(2030, 2, 1, tzinfo=UTC), until=datetime(2030, 3, 1, tzinfo=UTC)))
    assert again.context["dateLookups"] < c["dateLookups"]
    assert (again.context["fromBlock"], again.context["toBlock"]) == (c["fromBlock"],
                                                                      c["toBlock"])


def test_every_transfer_is_dated_by_its_block(history: dict[str, Any], tmp_path: Path) -> None:
    report, _ = run(history, tmp_path, Window(from_block=0))
    with JsonRpcClient(history["anvil"].url) as rpc:
        for m in report.matches:
            block = rpc.get_block(m.block_number)
            assert block is not None
            assert report.block_times[m.block_number] == block.timestamp
    rows = movements(report)
    on_chain = [r for r in rows if r.block is not None]
    assert len(on_chain) == 6  # four payouts, one spend, one stranger's transfer
    assert all(r.when == datetime.fromtimestamp(report.block_times[r.block], UTC)
               for r in on_chain if r.block is not None)
    ledger_only = [r for r in rows if r.block is None]
    assert ledger_only and all(r.when.tzinfo is not None for r in ledger_only)


def test_symbol_chain_and_agent_are_named(history: dict[str, Any], tmp_path: Path) -> None:
    report, _ = run(history, tmp_path, Window(from_block=0))
    c = report.context
    assert c["symbol"] == "tIMPRMPT" and c["chainName"] == "Base"
    assert c["agentId"] == history["agentId"] and c["agentName"]
    assert c["explorer"] == "https://basescan.org"
    page = render.render_html(report)
    assert c["agentName"] in page and "tIMPRMPT" in page


def test_balances_add_up_with_balance_of(history: dict[str, Any], tmp_path: Path) -> None:
    b = history["blocks"]
    first = b["2030-02-01T00:00:00"]
    report, _ = run(history, tmp_path, Window(from_block=first))
    check = report.balances
    assert check is not None and check.unchecked is None
    with JsonRpcClient(history["anvil"].url) as rpc:
        token, wallet = history["token"]["address"], history["walletAddress"]
        assert check.opening == erc20.read_balance(rpc, token, wallet, first - 1)
        assert check.closing == erc20.read_balance(rpc, token, wallet, report.context["toBlock"])
    assert check.opening == E18 + 1  # the January payout
    assert check.received == 2 * E18 + 1 + 3 * E18 + 1 + 4 * E18 + 1 + 7 * E18
    assert check.sent == E18 // 2
    assert check.agrees is True
    wallet_moves = sum(m.amount for m in movements(report) if m.account == "wallet")
    assert check.opening + wallet_moves == check.closing
    assert "balanceOf agrees" in render.render_html(report)


def test_a_pruned_node_is_said_so_not_passed(history: dict[str, Any], tmp_path: Path) -> None:
    first = history["blocks"]["2030-02-01T00:00:00"]
    report, _ = run(history, tmp_path, Window(from_block=first),
                    transport=_PrunedNode(keep_from=first + 50))
    check = report.balances
    assert check is not None and check.unchecked == NO_HISTORY
    assert check.opening is None and check.agrees is None
    page = render.render_html(report)
    assert "not checked: the RPC has no historical state" in page
    assert "balanceOf agrees" not in page
