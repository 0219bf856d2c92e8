"""Private: The registration fee: the server's payment request and the on-chain receipt check.

Pure core: :func:`parse_payment_request` (the 402 body's ``payment`` object, hostile input)
and :func:`receipt_problems` (a transaction receipt against that request: success, and an
ERC-20 ``Transfer`` of at least the amount of the token to the recipient). The only I/O is
:func:`fetch_receipt`, a single ``eth_getTransactionReceipt`` (and ``eth_chainId``) call
through the chain package's :class:`~impromptu_ops.chain.rpc.JsonRpcClient`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from impromptu_ops import contract
from impromptu_ops.errors import ChainError, InputError, MalformedResponse

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class PaymentRequest:
    """What the server asks to be paid (contract §3.3)."""

    chain_id: int
    token: str
    amount: int  # base units
    recipient: str
    reference: str
    mode: str = "upfront"

    def describe(self) -> str:
        return (f"{self.amount} base units of token {self.token} to {self.recipient} on chain "
                f"{self.chain_id}" + (f" (reference {self.reference})" if self.reference else ""))


def check_tx_hash(text: str) -> str:
    """Validate a ``--payment-tx`` value.

    Raises:
        InputError: not ``0x`` + 64 hex digits.
    """
    if not TX_HASH_RE.match(text):
        raise InputError("--payment-tx must be a transaction hash: 0x followed by 64 hex digits")
    return text.lower()


def parse_payment_request(obj: Any) -> PaymentRequest:
    """Validate the ``payment`` object of a 402 answer.

    Raises:
        MalformedResponse: a missing or malformed field.
    """
    if not isinstance(obj, Mapping):
        raise MalformedResponse("PAYMENT_REQUIRED without a payment object")
    chain_id, token, amount = obj.get("chainId"), obj.get("token"), obj.get("amount")
    recipient, reference = obj.get("recipient"), obj.get("reference", "")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or chain_id <= 0:
        raise MalformedResponse("payment.chainId must be a positive integer")
    for name, value in (("token", token), ("recipient", recipient)):
        if not isinstance(value, str) or not ADDRESS_RE.match(value):
            raise MalformedResponse(f"payment.{name} must be a 0x address")
    if isinstance(amount, str) and amount.isdigit():
        amount = int(amount)
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise MalformedResponse("payment.amount must be a non-negative integer (base units)")
    if not isinstance(reference, str) or len(reference) > 200:
        raise MalformedResponse("payment.reference must be a short string")
    mode = obj.get("mode", "upfront")
    mode = mode if isinstance(mode, str) and mode in contract.PAYMENT_MODES else "upfront"
    assert isinstance(token, str) and isinstance(recipient, str)
    return PaymentRequest(chain_id, token, amount, recipient, reference, mode)


def _topic_address(topic: Any) -> str | None:
    if not isinstance(topic, str) or len(topic) != 66:
        return None
    return "0x" + topic[-40:].lower()


def receipt_problems(receipt: Any, request: PaymentRequest) -> list[str]:
    """Why ``receipt`` does not prove ``request`` (empty list: it does).

    Args:
        receipt: the ``eth_getTransactionReceipt`` result (``None``: not found).
        request: the server's payment request.
    """
    if receipt is None:
        return ["the transaction was not found on that chain (not mined yet, or another chain)"]
    if not isinstance(receipt, Mapping):
        return ["the RPC returned a receipt that is not an object"]
    problems: list[str] = []
    if str(receipt.get("status", "")).lower() not in ("0x1", "1"):
        problems.append("the transaction failed (receipt status is not 1)")
    best = 0
    token, recipient = request.token.lower(), request.recipient.lower()
    logs = receipt.get("logs")
    for log in logs if isinstance(logs, list) else []:
        if not isinstance(log, Mapping) or str(log.get("address", "")).lower() != token:
            continue
        topics = log.get("topics")
        if (not isinstance(topics, list) or len(topics) != 3
                or str(topics[0]).lower() != contract.ERC20_TRANSFER_TOPIC
                or _topic_address(topics[2]) != recipient):
            continue
        try:
            best = max(best, int(str(log.get("data", "0x0")), 16))
        except ValueError:
            continue
    if best == 0:
        problems.append(f"it contains no Transfer of token {request.token} to {request.recipient}")
    elif best < request.amount:
        problems.append(f"it transfers {best} base units to the recipient; the fee is "
                        f"{request.amount}")
    return problems


def fetch_receipt(rpc_url: str, tx_hash: str, chain_id: int, timeout: float,
                  max_response_bytes: int) -> Any:
    """The receipt of ``tx_hash`` from ``rpc_url``, after checking the RPC's chain id.

    Raises:
        ChainError: the RPC failed, or serves another chain than the payment's.
    """
    from impromptu_ops.chain.rpc import JsonRpcClient

    with JsonRpcClient(rpc_url, timeout=timeout, max_response_bytes=max_response_bytes) as rpc:
        served = rpc.chain_id()
        if served != chain_id:
            raise ChainError(f"the configured chain RPC serves chain {served}; the payment "
                             f"is requested on chain {chain_id}")
        return rpc.get_transaction_receipt(tx_hash)
