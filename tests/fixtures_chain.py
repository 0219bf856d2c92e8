"""Chain fixtures: a real anvil (chain id 8453) on a free loopback port, and a deployed token.

``ledger_sandbox`` (module scope) is a sandbox whose ``--chain-rpc`` is that anvil, for the
end-to-end reconciliation tests.

``anvil`` is module-scoped (one node per test module, ~0.3 s to start); tests isolate
themselves with ``evm_snapshot``/``evm_revert`` through ``chain`` (function scope), which
also deploys a fresh test token inside the snapshot. The binary comes from env
``IMPROMPTU_TEST_ANVIL`` (``scripts/test`` sets it), falling back to
``.cache/npm/node_modules/.bin/anvil``; a missing binary FAILS the test, it never skips.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from impromptu_ops.chain.anvil import AnvilNode
from impromptu_ops.chain.anvil import start_anvil as start_node
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.errors import ChainError
from impromptu_ops.sandbox.contracts import token as token_ops
from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer

REPO = Path(__file__).resolve().parents[1]
CHAIN_ID = 8453
DECIMALS = 18
# Tiny PoW parameters for the ledger sandbox (as tests/fixtures_sandbox.py uses; not imported
# from there because a plugin module must not be imported before pytest registers it).
FAST_POW = {"pow_memory_kib": 64, "pow_iterations": 1, "pow_difficulty": 1}
SUPPLY = 10**40  # plenty: tests pay amounts above 10**27 to prove exactness


def anvil_binary() -> Path:
    env = os.environ.get("IMPROMPTU_TEST_ANVIL")
    path = Path(env) if env else REPO / ".cache" / "npm" / "node_modules" / ".bin" / "anvil"
    if not path.exists():
        pytest.fail(f"anvil not found at {path}: run scripts/test (it installs "
                    "@foundry-rs/anvil into .cache/npm) or set IMPROMPTU_TEST_ANVIL")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Anvil:
    url: str
    node: AnvilNode

    def rpc(self) -> JsonRpcClient:
        return JsonRpcClient(self.url, rate_limit_retries=0)


def start_anvil(extra: tuple[str, ...] = ()) -> Anvil:
    try:
        node = start_node(str(anvil_binary()), *extra, chain_id=CHAIN_ID)
    except ChainError as exc:
        pytest.fail(str(exc))
    return Anvil(node.url, node)


def stop_anvil(anvil: Anvil) -> None:
    anvil.node.stop()


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    node = start_anvil()
    try:
        yield node
    finally:
        stop_anvil(node)


@dataclass
class Chain:
    """A snapshot-isolated view of the module's anvil with a freshly deployed token."""

    url: str
    rpc: JsonRpcClient
    token: str
    treasury: str  # dev account 0: deployer, holds the supply, pays out
    accounts: list[str]

    def pay(self, to: str, amount: int, *, sender: str | None = None,
            token: str | None = None) -> token_ops.Receipt:
        sender = sender or self.treasury
        return token_ops.transfer(self.rpc, token or self.token, sender, to, amount,
                                  impersonate=sender not in self.accounts)

    def mine(self, blocks: int) -> None:
        self.rpc.request("anvil_mine", [hex(blocks)])


@pytest.fixture
def chain(anvil: Anvil) -> Iterator[Chain]:
    rpc = anvil.rpc()
    snap = rpc.request("evm_snapshot")
    try:
        accounts = token_ops.dev_accounts(rpc)
        address = token_ops.deploy_token(rpc, accounts[0], decimals=DECIMALS, supply=SUPPLY)
        yield Chain(anvil.url, rpc, address, accounts[0], accounts)
    finally:
        rpc.request("evm_revert", [snap])
        rpc.close()


@pytest.fixture(scope="module")
def ledger_sandbox(anvil: Anvil, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxConfig.build(**FAST_POW, chain_rpc=anvil.url),
                           tmp_path_factory.mktemp("ledger-sandbox") / "state",
                           host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
