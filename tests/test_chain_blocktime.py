"""Block timestamps on a real anvil: fetched once per block in batches, and dates turned
into blocks by binary search, exactly at the boundaries (this module's own anvil: it sets
block timestamps with ``evm_setNextBlockTimestamp``)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from impromptu_ops.chain import networks
from impromptu_ops.chain.blocktime import BlockTimes
from impromptu_ops.chain.rpc import Block, JsonRpcClient
from tests.fixtures_chain import Anvil

T0 = 2_000_000_000  # 2033-05-18, after anything the other tests' clocks produce


@pytest.fixture(scope="module")
def timed(anvil: Anvil) -> Iterator[tuple[JsonRpcClient, dict[int, int]]]:
    """Blocks at T0, T0+10, ..., T0+490 (ten seconds apart), numbered from ``base``."""
    rpc = JsonRpcClient(anvil.url)
    stamps: dict[int, int] = {}
    for i in range(50):
        rpc.request("evm_setNextBlockTimestamp", [T0 + 10 * i])
        rpc.request("evm_mine", [])
        stamps[rpc.block_number()] = T0 + 10 * i
    yield rpc, stamps
    rpc.close()


def latest(rpc: JsonRpcClient) -> Block:
    block = rpc.get_block("latest")
    assert block is not None
    return block


def test_first_block_at_or_after_each_boundary(timed: tuple[JsonRpcClient, dict[int, int]]
                                               ) -> None:
    rpc, stamps = timed
    head = latest(rpc)
    first = min(stamps)
    for number, ts in stamps.items():
        clock = BlockTimes(rpc, {}, head)
        assert clock.first_at_or_after(ts) == number  # exactly at a block's time
        assert clock.first_at_or_after(ts - 9) == number  # just after the previous block
        assert clock.lookups <= 2 * math.ceil(math.log2(head.number + 1))
    clock = BlockTimes(rpc, {}, head)
    assert clock.first_at_or_after(T0 + 10 * 49 + 1) == head.number + 1  # after every block
    assert clock.first_at_or_after(0) == 0
    assert first >= 1


def test_a_warm_map_costs_nothing(timed: tuple[JsonRpcClient, dict[int, int]]) -> None:
    rpc, stamps = timed
    head = latest(rpc)
    known: dict[int, int] = {}
    cold = BlockTimes(rpc, known, head)
    target = sorted(stamps)[20]
    assert cold.first_at_or_after(stamps[target]) == target
    assert cold.lookups > 0
    warm = BlockTimes(rpc, dict(known), head)
    assert warm.first_at_or_after(stamps[target]) == target and warm.lookups == 0


def test_fetch_asks_only_for_new_blocks_in_one_batch(
        timed: tuple[JsonRpcClient, dict[int, int]]) -> None:
    rpc, stamps = timed
    numbers = sorted(stamps)[:10]
    clock = BlockTimes(rpc, {numbers[0]: stamps[numbers[0]]}, latest(rpc))
    before = rpc.calls, rpc.elements
    assert clock.fetch(numbers) == {n: stamps[n] for n in numbers}
    assert (rpc.calls - before[0], rpc.elements - before[1]) == (1, 9)  # one batch, 9 items
    assert clock.lookups == 9
    clock.fetch(numbers)
    assert clock.lookups == 9  # never twice
    final = numbers[4]
    assert set(clock.final_entries(final)) == {n for n in clock.known if n <= final}


def test_networks_by_chain_id() -> None:
    assert networks.network(8453).name == "Base"
    assert networks.explorer_base(8453) == "https://basescan.org"
    assert networks.explorer_base(84532) == "https://sepolia.basescan.org"
    assert networks.network(1).name == "Ethereum"
    assert networks.network(31337).name == "local" and networks.explorer_base(31337) == ""
    assert networks.network(999).name == "chain 999" and networks.explorer_base(999) == ""
    assert networks.explorer_base(8453, "none") == ""
    assert networks.explorer_base(31337, "https://explorer.example/") == \
        "https://explorer.example"
    assert networks.explorer_base(8453, "javascript:alert(1)") == ""
    assert networks.tx_url("", "0xab") == "" and networks.tx_url("https://x", "0xab") == \
        "https://x/tx/0xab"
