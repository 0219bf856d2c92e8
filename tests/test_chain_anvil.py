"""The chain layer against a real anvil (chain id 8453): token, logs, limits, finality, reorgs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from impromptu_ops import contract
from impromptu_ops.chain import erc20, finality
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.chain.scan import LogScanner
from impromptu_ops.sandbox.contracts import token as token_ops
from tests.chain_proxy import LimitProxy, forward_to
from tests.fixtures_chain import Chain


def wallet_topics(wallet: str) -> list[str | None]:
    return [contract.ERC20_TRANSFER_TOPIC, None, erc20.address_topic(wallet)]


def scan(rpc: JsonRpcClient, wallet: str, first: int, last: int,
         span: int = 10_000) -> tuple[list[erc20.Transfer], LogScanner]:
    scanner = LogScanner(rpc, span)
    out = [t for c in scanner.scan(first, last, topics=wallet_topics(wallet))
           for t in map(erc20.decode_transfer_log, c.logs) if t is not None]
    return out, scanner


def test_chain_id_and_decimals_are_read_from_the_chain(chain: Chain) -> None:
    assert chain.rpc.chain_id() == 8453
    assert erc20.read_decimals(chain.rpc, chain.token) == 18
    six = token_ops.deploy_token(chain.rpc, chain.treasury, decimals=6, supply=10**12)
    assert erc20.read_decimals(chain.rpc, six) == 6


def test_amounts_are_exact_to_the_wei(chain: Chain) -> None:
    wallet = chain.accounts[5]
    amounts = [1, 10**18 - 1, 123_456_789_012_345_678_901_234_567, 10**27 + 12345]
    receipts = [chain.pay(wallet, a) for a in amounts]
    found, _ = scan(chain.rpc, wallet, 0, chain.rpc.block_number())
    assert [t.amount for t in found] == amounts
    assert [t.tx_hash for t in found] == [r.tx_hash for r in receipts]
    assert all(t.sender == chain.treasury and t.token == chain.token for t in found)
    assert erc20.read_balance(chain.rpc, chain.token, wallet) == sum(amounts)


@pytest.fixture
def busy_chain(chain: Chain) -> Iterator[tuple[Chain, str, int]]:
    """30 payouts spread over ~200 blocks, some sharing a block neighbourhood."""
    wallet = chain.accounts[6]
    total = 0
    for i in range(30):
        chain.pay(wallet, 10**18 + i)
        total += 10**18 + i
        chain.mine(7 if i % 3 else 1)
    yield chain, wallet, total


@pytest.mark.parametrize(("style", "range_style"), [
    ("alchemy", "quicknode"), ("infura", "wide"), ("infura", "quicknode"),
])
def test_provider_limit_errors_split_correctly(busy_chain: tuple[Chain, str, int], style: str,
                                               range_style: str) -> None:
    chain, wallet, total = busy_chain
    last = chain.rpc.block_number()
    direct, _ = scan(chain.rpc, wallet, 0, last)
    with LimitProxy(forward_to(chain.url), max_blocks=40, max_results=3, style=style,
                    range_style=range_style) as proxy:
        rpc = JsonRpcClient(proxy.url)
        limited, scanner = scan(rpc, wallet, 0, last)
        rpc.close()
    assert limited == direct and len(direct) == 30
    assert sum(t.amount for t in limited) == total
    refused = [c for c in proxy.getlogs_calls if c[2] == "refused"]
    served = [c for c in proxy.getlogs_calls if c[2] == "ok"]
    assert refused and scanner.splits == len(refused)
    # the served ranges tile [0, last] exactly
    assert served[0][0] == 0 and served[-1][1] == last
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(served))


def test_rate_limited_provider_is_waited_for_not_split(chain: Chain) -> None:
    wallet = chain.accounts[7]
    chain.pay(wallet, 42)
    with LimitProxy(forward_to(chain.url), rate_limit=3) as proxy:
        rpc = JsonRpcClient(proxy.url, sleeper=lambda s: None)
        found, scanner = scan(rpc, wallet, 0, chain.rpc.block_number())
        rpc.close()
    assert [t.amount for t in found] == [42]
    assert scanner.splits == 0 and proxy.rate_limited == 3


def test_finality_tags_and_confirmations(chain: Chain) -> None:
    chain.mine(150)
    heads = finality.read_heads(chain.rpc, 12)
    assert heads.source == "finalized"
    assert 0 < heads.final < heads.latest.number
    by_depth = finality.read_heads(chain.rpc, 12, use_tags=False)
    assert by_depth.final == by_depth.latest.number - 12 and by_depth.source == "confirmations"


def test_reorg_is_detected_from_stored_hashes(chain: Chain) -> None:
    wallet = chain.accounts[8]
    receipt = chain.pay(wallet, 777)
    chain.mine(2)
    stored = {receipt.block_number: receipt.block_hash}
    assert finality.changed_blocks(chain.rpc, stored) == set()
    depth = chain.rpc.block_number() - receipt.block_number + 1
    chain.rpc.request("anvil_reorg", [depth, []])  # replace the payout's block, without it
    assert finality.changed_blocks(chain.rpc, stored) == {receipt.block_number}
    found, _ = scan(chain.rpc, wallet, 0, chain.rpc.block_number())
    assert found == []
    assert chain.rpc.get_transaction_receipt(receipt.tx_hash) is None


def test_block_at_or_after_a_time(chain: Chain) -> None:
    chain.rpc.request("anvil_mine", ["0x5", "0x3c"])  # 5 blocks, 60 s apart
    latest = chain.rpc.get_block("latest")
    assert latest is not None
    target = latest.timestamp - 90
    n = finality.block_at_or_after(chain.rpc, target, latest)
    block, before = chain.rpc.get_block(n), chain.rpc.get_block(n - 1)
    assert block is not None and before is not None
    assert block.timestamp >= target > before.timestamp
