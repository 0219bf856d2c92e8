"""ERC-20 by hand: the ABI encoding we need and Transfer log decoding.

This module owns the byte layouts of ``transfer(address,uint256)``, ``decimals()``,
``balanceOf(address)``, ``symbol()``, constructor arguments, and the ``Transfer(address
indexed from, address indexed to, uint256 value)`` log (topics[0] =
:data:`contract.ERC20_TRANSFER_TOPIC`). The decoding functions are pure and refuse anything
malformed with
:class:`~impromptu_ops.errors.MalformedResponse` (a node's answer is hostile input).
The two read helpers at the bottom take a :class:`~.rpc.JsonRpcClient`; nothing here signs.

Amounts are ``int`` base units; addresses are lower-case ``0x`` + 40 hex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from impromptu_ops import contract
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.errors import ChainError, InputError, MalformedResponse

SELECTOR_TRANSFER = "0xa9059cbb"  # keccak("transfer(address,uint256)")[:4]
SELECTOR_DECIMALS = "0x313ce567"  # keccak("decimals()")[:4]
SELECTOR_BALANCE_OF = "0x70a08231"  # keccak("balanceOf(address)")[:4]
SELECTOR_SYMBOL = "0x95d89b41"  # keccak("symbol()")[:4]
MAX_SYMBOL = 32  # longest symbol shown; a longer one is hostile or broken
UINT256_MAX = 2**256 - 1

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_WORD_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")


def normalize_address(value: str) -> str:
    """Validate an address and return it lower-case.

    Raises:
        InputError: not ``0x`` + 40 hex digits.
    """
    if not isinstance(value, str) or not _ADDRESS_RE.match(value.strip()):
        raise InputError(f"{str(value)[:60]!r} is not an address (0x + 40 hex digits)")
    return value.strip().lower()


def is_address(value: object) -> bool:
    return isinstance(value, str) and bool(_ADDRESS_RE.match(value))


def is_tx_hash(value: object) -> bool:
    return isinstance(value, str) and bool(_HASH_RE.match(value))


def encode_uint256(value: int) -> str:
    """One 32-byte ABI word, hex without ``0x``."""
    if not 0 <= value <= UINT256_MAX:
        raise InputError(f"{value} does not fit in uint256")
    return f"{value:064x}"


def encode_address(address: str) -> str:
    """An address as a 32-byte ABI word, hex without ``0x``."""
    return normalize_address(address)[2:].rjust(64, "0")


def address_topic(address: str) -> str:
    """An indexed address as a log topic (``0x`` + 64 hex)."""
    return "0x" + encode_address(address)


def transfer_calldata(to: str, amount: int) -> str:
    return SELECTOR_TRANSFER + encode_address(to) + encode_uint256(amount)


def balance_of_calldata(owner: str) -> str:
    return SELECTOR_BALANCE_OF + encode_address(owner)


def constructor_calldata(bytecode: str, *words: int) -> str:
    """Creation code followed by ABI-encoded static (uint) constructor arguments."""
    return bytecode + "".join(encode_uint256(w) for w in words)


def decode_uint256(data: str) -> int:
    """A single ``0x`` + 64-hex ABI word -> int.

    Raises:
        MalformedResponse: not exactly one word.
    """
    if not isinstance(data, str) or not _WORD_RE.match(data):
        raise MalformedResponse(f"expected one 32-byte ABI word, got {str(data)[:80]!r}")
    return int(data, 16)


def _topic_address(topic: Any) -> str:
    if not isinstance(topic, str) or not _WORD_RE.match(topic) or int(topic, 16) >> 160:
        raise MalformedResponse(f"log topic {str(topic)[:80]!r} is not an indexed address")
    return "0x" + topic[-40:].lower()


def _quantity(value: Any, what: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"0x[0-9a-fA-F]{1,64}", value):
        return int(value, 16)
    raise MalformedResponse(f"log {what} {str(value)[:80]!r} is not a hex quantity")


@dataclass(frozen=True, order=True)
class Transfer:
    """One ERC-20 ``Transfer`` log.

    Ordered by position on chain (block, log index). ``key`` identifies it: a transaction
    can emit several transfers, so the tx hash alone is not enough.
    """

    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str
    token: str
    sender: str
    recipient: str
    amount: int

    @property
    def key(self) -> tuple[str, int]:
        return (self.tx_hash, self.log_index)


def decode_transfer_log(log: Mapping[str, Any]) -> Transfer | None:
    """Decode one log object from ``eth_getLogs`` or a receipt.

    Returns:
        The transfer, or ``None`` when the log is not an ERC-20 ``Transfer`` (another event,
        or an ERC-721 ``Transfer`` whose token id is indexed: four topics, empty data).

    Raises:
        MalformedResponse: the log claims to be a Transfer but is malformed.
    """
    topics = log.get("topics")
    if not isinstance(topics, list) or not topics:
        return None
    if not isinstance(topics[0], str) or topics[0].lower() != contract.ERC20_TRANSFER_TOPIC:
        return None
    if len(topics) != 3:
        return None  # ERC-721 (4 topics) or a non-standard event with the same signature
    address = log.get("address")
    tx_hash = log.get("transactionHash")
    block_hash = log.get("blockHash")
    if not is_address(address):
        raise MalformedResponse(f"log address {str(address)[:80]!r} is not an address")
    if not is_tx_hash(tx_hash) or not is_tx_hash(block_hash):
        raise MalformedResponse("log without a valid transactionHash/blockHash")
    assert isinstance(address, str) and isinstance(tx_hash, str) and isinstance(block_hash, str)
    return Transfer(
        block_number=_quantity(log.get("blockNumber"), "blockNumber"),
        log_index=_quantity(log.get("logIndex"), "logIndex"),
        tx_hash=tx_hash.lower(),
        block_hash=block_hash.lower(),
        token=address.lower(),
        sender=_topic_address(topics[1]),
        recipient=_topic_address(topics[2]),
        amount=decode_uint256(str(log.get("data"))),
    )


def read_decimals(rpc: JsonRpcClient, token: str) -> int:
    """``decimals()`` of the token.

    Raises:
        ChainError: the call failed, or the token answered something that is not 0..255
            (not an ERC-20 at that address: pin ``chain.decimals`` to override).
    """
    try:
        value = decode_uint256(rpc.call(normalize_address(token), SELECTOR_DECIMALS))
    except MalformedResponse as exc:
        raise ChainError(f"token {token} did not answer decimals(): {exc.message}",
                         hint="check chain.token_address or pin chain.decimals") from None
    if value > 255:
        raise ChainError(f"token {token} answered decimals() = {value}",
                         hint="check chain.token_address or pin chain.decimals")
    return value


def read_balance(rpc: JsonRpcClient, token: str, owner: str,
                 block: str | int = "latest") -> int:
    """``balanceOf(owner)`` at a block number or tag (a number needs an archive-capable
    node once the block is old: the caller decides what an error means)."""
    tag = hex(block) if isinstance(block, int) else block
    return decode_uint256(rpc.call(normalize_address(token), balance_of_calldata(owner), tag))


def decode_abi_string(data: str) -> str:
    """The output of ``symbol()``: an ABI ``string`` or, for old tokens (MKR, SAI), a
    ``bytes32`` padded with zeros.

    Raises:
        MalformedResponse: neither shape, not UTF-8, control characters or too long.
    """
    if not isinstance(data, str) or not re.fullmatch(r"0x(?:[0-9a-fA-F]{64})+", data):
        raise MalformedResponse(f"symbol() answered {str(data)[:80]!r}")
    raw = bytes.fromhex(data[2:])
    if len(raw) == 32:
        text = raw.rstrip(b"\0")
    else:
        offset = int.from_bytes(raw[:32], "big")
        if offset + 32 > len(raw):
            raise MalformedResponse("symbol() answered a string offset past the end")
        length = int.from_bytes(raw[offset:offset + 32], "big")
        if length > MAX_SYMBOL or offset + 32 + length > len(raw):
            raise MalformedResponse(f"symbol() answered a string of {length} bytes")
        text = raw[offset + 32:offset + 32 + length]
    try:
        symbol = text.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedResponse("symbol() is not UTF-8") from None
    if not symbol or len(symbol) > MAX_SYMBOL or not symbol.isprintable() or "\0" in symbol:
        raise MalformedResponse(f"symbol() answered an unusable symbol {symbol[:40]!r}")
    return symbol


def read_symbol(rpc: JsonRpcClient, token: str) -> str:
    """``symbol()`` of the token.

    Raises:
        ChainError: the call failed or the answer is not a usable symbol.
    """
    try:
        return decode_abi_string(rpc.call(normalize_address(token), SELECTOR_SYMBOL))
    except MalformedResponse as exc:
        raise ChainError(f"token {token} did not answer symbol(): {exc.message}",
                         hint="check chain.token_address") from None


def format_units(amount: int, decimals: int) -> str:
    """Base units -> a decimal string (exact; only for printing)."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    if decimals == 0 or frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"
