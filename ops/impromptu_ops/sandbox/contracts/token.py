"""Deploy the test token and move it on a dev chain, with no signing library.

This module owns the sandbox's on-chain actions: deploying ``TestToken`` from the committed
artifact and sending ``transfer`` calls. Transactions go through ``eth_sendTransaction``
from anvil's unlocked dev accounts, or from any address after
``anvil_impersonateAccount`` (the unexpected-sender scenario): the code holds no private key.
Dev nodes mine on send, so the receipt is read right after.

It is test infrastructure for the sandbox and the tests; production code never sends.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from impromptu_ops.chain import erc20
from impromptu_ops.chain.rpc import JsonRpcClient, to_int
from impromptu_ops.errors import ChainError
from impromptu_ops.sandbox.contracts.build import load_artifact

GAS = 200_000
DEPLOY_GAS = 2_000_000


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    contract_address: str | None
    logs: list[dict[str, Any]]


def dev_accounts(rpc: JsonRpcClient) -> list[str]:
    accounts = rpc.request("eth_accounts")
    if not isinstance(accounts, list) or not accounts:
        raise ChainError("the dev node has no unlocked accounts")
    return [str(a).lower() for a in accounts]


def receipt(rpc: JsonRpcClient, tx_hash: str, wait: float = 10.0) -> Receipt:
    """The receipt of a mined transaction (raises when missing or reverted).

    anvil mines on send but may answer the send before the block is sealed: poll briefly.
    """
    deadline = time.monotonic() + wait
    raw = rpc.get_transaction_receipt(tx_hash)
    while raw is None and time.monotonic() < deadline:
        time.sleep(0.005)
        raw = rpc.get_transaction_receipt(tx_hash)
    if raw is None:
        raise ChainError(f"transaction {tx_hash[:10]}… was not mined")
    if to_int(raw.get("status"), "status") != 1:
        raise ChainError(f"transaction {tx_hash[:10]}… reverted")
    addr = raw.get("contractAddress")
    return Receipt(tx_hash=tx_hash.lower(), block_number=to_int(raw.get("blockNumber")),
                   block_hash=str(raw.get("blockHash")).lower(),
                   contract_address=str(addr).lower() if addr else None,
                   logs=list(raw.get("logs") or []))


def deploy_token(rpc: JsonRpcClient, deployer: str, *, decimals: int, supply: int) -> str:
    """Deploy ``TestToken(decimals, supply)``; the whole supply goes to ``deployer``."""
    artifact = load_artifact()
    tx = rpc.send_transaction({"from": deployer, "gas": hex(DEPLOY_GAS),
                               "data": erc20.constructor_calldata(artifact.bytecode,
                                                                  decimals, supply)})
    address = receipt(rpc, tx).contract_address
    if address is None:
        raise ChainError("the token deployment created no contract")
    return address


def transfer(rpc: JsonRpcClient, token: str, sender: str, to: str, amount: int,
             *, impersonate: bool = False) -> Receipt:
    """``token.transfer(to, amount)`` sent from ``sender``; returns the mined receipt.

    Args:
        impersonate: ``sender`` is not a dev account: impersonate it for this one send
            (and fund it with gas money first).
    """
    if impersonate:
        rpc.request("anvil_impersonateAccount", [sender])
        rpc.request("anvil_setBalance", [sender, hex(10**18)])
    try:
        tx = rpc.send_transaction({"from": sender, "to": token, "gas": hex(GAS),
                                   "data": erc20.transfer_calldata(to, amount)})
    finally:
        if impersonate:
            rpc.request("anvil_stopImpersonatingAccount", [sender])
    return receipt(rpc, tx)
