"""Benchmark: reconcile 2,000 payouts over 200,000 blocks behind a limited provider.

What runs for real: the JSON-RPC client (httpx over loopback HTTP), the adaptive scanner,
finality and reorg checks, the cache, the matcher. What is simulated: the chain. An
in-memory chain (deterministic blocks, 2,000 ERC-20 Transfer logs to the agent's wallet,
1,200 of them in one 300-block burst, so a window there holds more than 500 logs) is served by the
tests' loopback limit proxy (``tests/chain_proxy.py``), which refuses ``eth_getLogs`` over
1,000 blocks or 500 results in real provider shapes (QuickNode-style range errors;
Alchemy-style suggested ranges or Infura-style "more than N results").

Prints, per provider style: eth_getLogs calls, refusals, all HTTP requests, wall time, the
ratio of getLogs calls to the minimum possible (a greedy tiling of the range into pieces
of <= 1,000 blocks and <= 500 logs, which is optimal: the incoming scan's tiling plus the
outgoing scan's, whose filter matches no log here), and the rerun's calls with the cache.

Then the JSON-RPC budget of the report (each element of a batch counts as one call): all
calls <= 1.2 x the logs minimum + one block lookup per distinct block holding a matched
transfer + 2 x log2(range) per date bound + the named fixed calls (chain id, the three
heads, symbol, decimals, balanceOf at the two ends, the period's two end blocks), for a
whole-range run and for a one-month ``--since/--until`` run.

    .venv/bin/python -m bench.reconcile
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.chain_proxy import LimitProxy

from impromptu_ops import contract
from impromptu_ops.chain import erc20
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.reconcile.model import Report
from impromptu_ops.reconcile.service import Window, reconcile_earnings
from impromptu_ops.settings import load_settings

BLOCKS = 200_000
PAYOUTS = 2_000
MAX_BLOCKS = 1_000
MAX_RESULTS = 500
FINALITY_DEPTH = 64
TOKEN = "0x" + "a1" * 20
WALLET = "0x" + "b2" * 20
TREASURY = "0x" + "c3" * 20
T0 = 1_750_000_000


def h(kind: str, n: int) -> str:
    return "0x" + hashlib.sha256(f"{kind}:{n}".encode()).hexdigest()


class FakeChain:
    """Answers the JSON-RPC methods the reconciler uses, from memory."""

    def __init__(self, seed: int = 7, wallets: tuple[str, ...] = (WALLET,)) -> None:
        rng = random.Random(seed)
        # 800 payouts spread out, 1,200 in a 300-block burst (a batch payout run)
        spread = [rng.randrange(1, BLOCKS) for _ in range(PAYOUTS - 1_200)]
        burst_start = rng.randrange(1, BLOCKS - 2_000)
        burst = [burst_start + rng.randrange(0, 300) for _ in range(1_200)]
        self.blocks = sorted(spread + burst)
        self.logs: list[dict[str, Any]] = []
        per_block: dict[int, int] = {}
        for i, block in enumerate(self.blocks):
            index = per_block.get(block, 0)
            per_block[block] = index + 1
            amount = 10**18 + i * 7919
            self.logs.append({
                "address": TOKEN, "topics": [contract.ERC20_TRANSFER_TOPIC,
                                             erc20.address_topic(TREASURY),
                                             erc20.address_topic(wallets[i % len(wallets)])],
                "data": "0x" + erc20.encode_uint256(amount), "blockNumber": hex(block),
                "logIndex": hex(index), "transactionHash": h("tx", i),
                "blockHash": h("block", block), "removed": False})
        self.by_tx = {log["transactionHash"]: log for log in self.logs}

    def block(self, n: int) -> dict[str, Any]:
        return {"number": hex(n), "hash": h("block", n), "timestamp": hex(T0 + 2 * n)}

    def balance(self, block: int, owner: str = WALLET) -> int:
        """``owner``'s token balance after ``block`` (every log pays one of the wallets)."""
        end = bisect.bisect_right(self.blocks, block)
        topic = erc20.address_topic(owner)
        return sum(int(log["data"], 16) for log in self.logs[:end] if log["topics"][2] == topic)

    def matching(self, logs: list[dict[str, Any]], flt: Mapping[str, Any]
                 ) -> list[dict[str, Any]]:
        """A node applies the filter's address and topics (null = any; a list = any of
        them: Ethereum JSON-RPC spec, eth_newFilter topics, "each topic can also be an
        array of DATA with 'or' options")."""
        address = flt.get("address")
        topics = flt.get("topics") or []
        out = []
        for log in logs:
            if address and log["address"] != str(address).lower():
                continue
            if all(t is None or (log["topics"][i] in t if isinstance(t, list)
                                 else log["topics"][i] == t) for i, t in enumerate(topics)):
                out.append(log)
        return out

    def __call__(self, req: Mapping[str, Any]) -> dict[str, Any]:
        method, params = req["method"], req.get("params", [])
        result: Any
        if method == "eth_chainId":
            result = hex(8453)
        elif method == "eth_blockNumber":
            result = hex(BLOCKS - 1)
        elif method == "eth_getBlockByNumber":
            tag = params[0]
            latest = BLOCKS - 1
            n = {"latest": latest, "finalized": latest - FINALITY_DEPTH,
                 "safe": latest - FINALITY_DEPTH // 2}.get(tag)
            result = self.block(int(tag, 16) if n is None else n)
        elif method == "eth_call":
            data, tag = params[0]["data"], params[1] if len(params) > 1 else "latest"
            if data == erc20.SELECTOR_SYMBOL:
                result = "0x" + erc20.encode_uint256(32) + erc20.encode_uint256(7) + \
                    b"IMPRMPT".hex().ljust(64, "0")
            elif data.startswith(erc20.SELECTOR_BALANCE_OF):
                block = BLOCKS - 1 if tag == "latest" else int(tag, 16)
                owner = "0x" + data[-40:]
                result = "0x" + erc20.encode_uint256(self.balance(block, owner))
            else:
                result = "0x" + erc20.encode_uint256(18)
        elif method == "eth_getLogs":
            lo, hi = int(params[0]["fromBlock"], 16), int(params[0]["toBlock"], 16)
            a, b = bisect.bisect_left(self.blocks, lo), bisect.bisect_right(self.blocks, hi)
            result = self.matching(self.logs[a:b], params[0])
        elif method == "eth_getTransactionReceipt":
            log = self.by_tx.get(params[0])
            result = None if log is None else {"status": "0x1", "logs": [log],
                                               "blockNumber": log["blockNumber"]}
        else:
            return {"jsonrpc": "2.0", "id": req.get("id"),
                    "error": {"code": -32601, "message": f"no {method}"}}
        return {"jsonrpc": "2.0", "id": req.get("id"), "result": result}


class Ledger:
    """2,000 PAYOUT entries (one per transfer) and an old credit that covers them."""

    def __init__(self, chain: FakeChain, wallet: str = WALLET) -> None:
        topic = erc20.address_topic(wallet)
        mine = [(i, log) for i, log in enumerate(chain.logs) if log["topics"][2] == topic]
        total = sum(int(log["data"], 16) for _, log in mine)
        self._entries: list[Mapping[str, Any]] = [{
            "id": "credit", "type": "ENGAGEMENT", "amount": str(total), "token": TOKEN,
            "createdAt": "2025-01-01T00:00:00Z"}]
        for i, log in mine:
            self._entries.append({
                "id": f"payout-{i}", "type": "PAYOUT", "amount": str(int(log["data"], 16)),
                "token": TOKEN, "createdAt": "2026-01-01T00:00:00Z",
                "txHash": log["transactionHash"], "logIndex": int(log["logIndex"], 16),
                "chainId": 8453, "toAddress": wallet})

    def entries(self) -> list[Mapping[str, Any]]:
        return self._entries

    def referrals(self) -> list[Mapping[str, Any]]:
        return []


def minimum_calls(blocks: list[int], first: int, last: int) -> int:
    """Greedy tiling into ranges of <= MAX_BLOCKS blocks and <= MAX_RESULTS logs (optimal)."""
    calls, cursor = 0, first
    while cursor <= last:
        end = min(last, cursor + MAX_BLOCKS - 1)
        a = bisect.bisect_left(blocks, cursor)
        if bisect.bisect_right(blocks, end) - a > MAX_RESULTS:
            end = blocks[a + MAX_RESULTS] - 1  # stop before the 501st log's block
        calls += 1
        cursor = end + 1
    return calls


def minimum_outgoing(first: int, last: int) -> int:
    """The outgoing scan's filter matches nothing here: only the block-range cap counts."""
    return -(-(last - first + 1) // MAX_BLOCKS)


FIXED = 10  # chain id, latest/finalized/safe, symbol, decimals, 2 x balanceOf, 2 period ends


def budget(report: Report, minimum_logs: int, bounds: int) -> tuple[float, dict[str, Any]]:
    """The issue's budget for one run, and what the run spent, by part."""
    c = report.context
    blocks = len({m.block_number for m in report.matches
                  if c["fromBlock"] <= m.block_number <= c["toBlock"]})
    span = max(2, c["latestBlock"] + 1)
    # Receipts of the ledger's payouts outside the scanned range (each proves one payout
    # without scanning its blocks) are named apart: the budget is about the scan.
    allowed = 1.2 * minimum_logs + blocks + bounds * 2 * math.log2(span) + FIXED \
        + c["receiptLookups"]
    return allowed, {"blocks with a matched transfer": blocks,
                     "receipts": c["receiptLookups"],
                     "block lookups": c["blockLookups"], "date lookups": c["dateLookups"],
                     "JSON-RPC calls": c["rpcElements"]}


def run(style: str) -> None:
    chain = FakeChain()
    ledger = Ledger(chain)
    with tempfile.TemporaryDirectory() as tmp, LimitProxy(
            chain, max_blocks=MAX_BLOCKS, max_results=MAX_RESULTS, style=style,
            range_style="quicknode") as proxy:
        settings = load_settings({"chain.rpc_url": proxy.url, "chain.wallet_address": WALLET,
                                  "chain.token_address": TOKEN,
                                  "paths.state_dir": Path(tmp)}, env={})
        now = datetime(2026, 6, 1, tzinfo=UTC)
        with JsonRpcClient(proxy.url) as rpc:
            started = time.perf_counter()
            report = reconcile_earnings(settings, rpc, ledger, Window(from_block=0), now=now)
            wall = time.perf_counter() - started
            calls = rpc.calls
        getlogs = len(proxy.getlogs_calls)
        refused = sum(1 for c in proxy.getlogs_calls if c[2] == "refused")
        served = getlogs - refused
        minimum = minimum_calls(chain.blocks, 0, BLOCKS - 1) + minimum_outgoing(0, BLOCKS - 1)
        assert report.reconciled, report.discrepancies[:3]
        assert report.totals.received_chain == report.totals.paid_ledger
        assert len(report.matches) == PAYOUTS
        proxy.getlogs_calls.clear()
        with JsonRpcClient(proxy.url) as rpc:
            started = time.perf_counter()
            again = reconcile_earnings(settings, rpc, ledger, Window(from_block=0), now=now)
            rewall = time.perf_counter() - started
            recalls = rpc.calls
        assert again.discrepancies == report.discrepancies and again.totals == report.totals
        assert report.balances is not None and report.balances.agrees
        # One month by dates, on a fresh cache: two binary searches on block timestamps.
        month = Path(tmp) / "month"
        month.mkdir()
        msettings = load_settings({"chain.rpc_url": proxy.url, "chain.wallet_address": WALLET,
                                   "chain.token_address": TOKEN, "paths.state_dir": month},
                                  env={})
        since = datetime.fromtimestamp(T0 + 2 * 100_000, UTC)
        until = since + timedelta(days=1)  # blocks are 2 s apart: 43,200 blocks
        proxy.getlogs_calls.clear()
        with JsonRpcClient(proxy.url) as rpc:
            dated = reconcile_earnings(msettings, rpc, ledger, Window(since=since, until=until),
                                       now=now)
        c = dated.context
        month_min = (minimum_calls(chain.blocks, c["fromBlock"], c["toBlock"])
                     + minimum_outgoing(c["fromBlock"], c["toBlock"]))
    print(f"[{style} results errors, quicknode range errors]")
    print(f"  first run : {calls} RPC requests ({getlogs} eth_getLogs: {served} served, "
          f"{refused} refused), {wall:.2f} s")
    print(f"  minimum   : {minimum} eth_getLogs calls; ratio calls/minimum = "
          f"{getlogs / minimum:.3f} (served only: {served / minimum:.3f})")
    print(f"  rerun     : {recalls} RPC requests, {rewall:.3f} s; report identical")
    for label, r, mins, bounds in (("whole range", report, minimum, 0),
                                   (f"one day by date (blocks {c['fromBlock']:,}.."
                                    f"{c['toBlock']:,})", dated, month_min, 2)):
        allowed, spent = budget(r, mins, bounds)
        calls_made = spent["JSON-RPC calls"]
        verdict = "within" if calls_made <= allowed else "OVER"
        print(f"  budget, {label}: {calls_made} JSON-RPC calls (batch elements counted) "
              f"{verdict} {allowed:.0f} = 1.2 x {mins} logs minimum + "
              f"{spent['blocks with a matched transfer']} blocks with a matched transfer + "
              f"{bounds} x 2 x log2(range) + {FIXED} fixed + {spent['receipts']} receipts of "
              f"payouts outside the range; block lookups "
              f"{spent['block lookups']}, date lookups {spent['date lookups']}")
        assert calls_made <= allowed, f"{label}: over the call budget"


def main() -> None:
    print(f"{BLOCKS:,} blocks, {PAYOUTS:,} payouts, provider limit {MAX_BLOCKS:,} blocks or "
          f"{MAX_RESULTS} results per call; chain.max_block_range = 10,000 (the default)")
    for style in ("alchemy", "infura"):
        run(style)


if __name__ == "__main__":
    main()
