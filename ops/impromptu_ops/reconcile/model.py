"""The values of the reconciliation: ledger entries, referrals, the policy, the report.

This module owns the shapes (frozen dataclasses) and the parsing of the platform's ledger
JSON (contract §6) into them. Parsing is strict: amounts are decimal strings (or ints) of
base units, never floats; timestamps are RFC 3339 with a zone; anything else is a
:class:`~impromptu_ops.errors.MalformedResponse` naming the entry. It does no arithmetic
on the ledger (see :mod:`.match`) and no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from impromptu_ops import contract
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.errors import MalformedResponse

_INT_RE = re.compile(r"^-?\d{1,80}$")
_HEX_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_TEXT = 200  # longest id or name accepted from the ledger


class Kind(StrEnum):
    """Every class of discrepancy the report can name."""

    PAYOUT_MISSING_ON_CHAIN = "payout_missing_on_chain"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNEXPECTED_SENDER = "unexpected_sender"
    UNEXPECTED_TOKEN = "unexpected_token"  # noqa: S105 - a class name, not a secret
    WRONG_CHAIN = "wrong_chain"
    DUPLICATE_PAYOUT = "duplicate_payout"
    UNRECORDED_TRANSFER = "unrecorded_transfer"
    PAYOUT_TO_OTHER_ADDRESS = "payout_to_other_address"
    UNVESTED_PAYOUT = "unvested_payout"
    REGISTRATION_FEE_MISMATCH = "registration_fee_mismatch"
    REFERRAL_AMOUNT_MISMATCH = "referral_amount_mismatch"
    REFERRAL_ROUNDING = "referral_rounding"
    REFERRAL_OUTSIDE_WINDOW = "referral_outside_window"
    REFERRAL_UNKNOWN_REFEREE = "referral_unknown_referee"
    REORGED_TRANSFER = "reorged_transfer"


# What a person reads for each class (the code stays beside it, for searching and JSON).
TITLES: dict[Kind, str] = {
    Kind.PAYOUT_MISSING_ON_CHAIN: "Payout missing on chain",
    Kind.AMOUNT_MISMATCH: "Amount differs from the ledger",
    Kind.UNEXPECTED_SENDER: "Paid from an unexpected address",
    Kind.UNEXPECTED_TOKEN: "Paid in another token",
    Kind.WRONG_CHAIN: "Payout recorded on another chain",
    Kind.DUPLICATE_PAYOUT: "One transfer claimed by two payouts",
    Kind.UNRECORDED_TRANSFER: "Transfer received but not in the ledger",
    Kind.PAYOUT_TO_OTHER_ADDRESS: "Paid to another address",
    Kind.UNVESTED_PAYOUT: "Paid before the earnings vested",
    Kind.REGISTRATION_FEE_MISMATCH: "Registration fee differs",
    Kind.REFERRAL_AMOUNT_MISMATCH: "Referral credit is not 5% of the base",
    Kind.REFERRAL_ROUNDING: "Referral credit rounded on totals",
    Kind.REFERRAL_OUTSIDE_WINDOW: "Referral credited outside the first year",
    Kind.REFERRAL_UNKNOWN_REFEREE: "Referral for an unknown referee",
    Kind.REORGED_TRANSFER: "Transfer reorged out of the chain",
}


def title(kind: Kind) -> str:
    """``Payout missing on chain`` for :attr:`Kind.PAYOUT_MISSING_ON_CHAIN`."""
    return TITLES[kind]


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger entry; type-specific fields are ``None`` for other types."""

    id: str
    type: str
    amount: int
    token: str
    created_at: datetime
    vests_at: datetime | None = None
    node_id: str | None = None
    referee_agent_id: str | None = None
    referee_registered_at: datetime | None = None
    base_entry_id: str | None = None
    base_amount: int | None = None
    tx_hash: str | None = None
    log_index: int | None = None
    chain_id: int | None = None
    to_address: str | None = None


@dataclass(frozen=True)
class Referral:
    agent_id: str
    registered_at: datetime


@dataclass(frozen=True)
class Policy:
    """What the operator was told, as numbers (defaults from :mod:`impromptu_ops.contract`).

    Attributes:
        payout_senders: addresses allowed to send payouts; ``None`` = not checked.
    """

    chain_id: int
    token: str
    wallet: str
    registration_fee: int = contract.REGISTRATION_FEE
    payout_senders: frozenset[str] | None = None
    referral_bps: int = contract.REFERRAL_BPS
    bps_denominator: int = contract.BPS_DENOMINATOR
    referral_window: timedelta = timedelta(days=contract.REFERRAL_WINDOW_DAYS)
    vesting: timedelta = timedelta(days=contract.VESTING_DAYS)


@dataclass(frozen=True)
class Discrepancy:
    """One finding.

    Attributes:
        kind: its class.
        entry_id: the ledger entry concerned, if any.
        tx_hash, log_index: the on-chain transfer concerned, if any.
        expected, actual: base units (``None`` when not an amount question).
        chain_effect: how much this finding moves "paid per ledger" towards "received on
            chain" (the explanation sums these exactly).
        detail: one line for a person.
    """

    kind: Kind
    entry_id: str | None
    tx_hash: str | None
    log_index: int | None
    expected: int | None
    actual: int | None
    chain_effect: int
    detail: str


@dataclass(frozen=True)
class Match:
    entry_id: str
    tx_hash: str
    log_index: int
    amount: int
    block_number: int
    provisional: bool


@dataclass(frozen=True)
class Totals:
    """All in base units. ``vested`` is net of fees; ``pending`` = vested - paid."""

    earned: int
    fees: int
    unvested: int
    vested: int
    paid_ledger: int
    received_chain: int
    received_final: int
    pending: int


@dataclass(frozen=True)
class BalanceCheck:
    """The wallet's token balance at both ends of the period, against the movements.

    Attributes:
        opening_block, closing_block: ``balanceOf`` is read at the end of these blocks
            (``opening_block`` is the block before the period; -1 = before genesis, 0).
        opening, closing: on-chain ``balanceOf`` in base units; ``None`` when not checked.
        received, sent: the token's transfers into and out of the wallet in the period.
        unchecked: why the balances could not be read (``None`` when they were).
    """

    opening_block: int
    closing_block: int
    opening: int | None
    closing: int | None
    received: int
    sent: int
    unchecked: str | None = None

    @property
    def expected_closing(self) -> int | None:
        return None if self.opening is None else self.opening + self.received - self.sent

    @property
    def agrees(self) -> bool | None:
        """True when opening + received - sent == closing; None when not checked."""
        if self.opening is None or self.closing is None:
            return None
        return self.expected_closing == self.closing


@dataclass(frozen=True)
class Report:
    """The reconciliation's verdict.

    Attributes:
        explanation: ``(label, amount)`` lines: from earned to pending, then from paid per
            ledger through each finding's effect to received on chain.
        series: ``(day, cumulative earned, cumulative paid)`` for the chart.
        entries: the parsed ledger (every movement of the statement comes from it or
            from ``transfers``/``outgoing``).
        transfers: the token transfers considered (into the wallet: scanned range plus the
            transactions the payouts name).
        outgoing: the token's transfers out of the wallet in the scanned range.
        block_times: ``{block: unix seconds}`` for every block the report names.
        balances: the ``balanceOf`` cross-check, when the run made one.
    """

    discrepancies: tuple[Discrepancy, ...]
    matches: tuple[Match, ...]
    totals: Totals
    explanation: tuple[tuple[str, int], ...]
    series: tuple[tuple[str, int, int], ...]
    context: Mapping[str, Any] = field(default_factory=dict)
    entries: tuple[LedgerEntry, ...] = ()
    transfers: tuple[Transfer, ...] = ()
    outgoing: tuple[Transfer, ...] = ()
    block_times: Mapping[int, int] = field(default_factory=dict)
    balances: BalanceCheck | None = None

    @property
    def reconciled(self) -> bool:
        return not self.discrepancies

    def kinds(self) -> set[Kind]:
        return {d.kind for d in self.discrepancies}


# --- parsing -----------------------------------------------------------------------------
def parse_amount(value: Any, what: str) -> int:
    """A base-unit amount: a decimal string or an int, never a float or a bool."""
    if isinstance(value, bool | float):
        raise MalformedResponse(f"{what}: amount {value!r} is not an integer string")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.match(value.strip()):
        return int(value.strip())
    raise MalformedResponse(f"{what}: amount {str(value)[:60]!r} is not an integer string")


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or len(value) > 64:
        raise MalformedResponse(f"{what}: {str(value)[:60]!r} is not a timestamp")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedResponse(f"{what}: {value!r} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise MalformedResponse(f"{what}: {value!r} has no time zone")
    return when


def _printable(value: str, what: str) -> str:
    """Ids and names end up in a terminal table: a control character (an escape sequence
    that could rewrite the screen) or an oversized value is hostile, not data."""
    if len(value) > MAX_TEXT or not value.isprintable():
        raise MalformedResponse(f"{what} has control characters or is over {MAX_TEXT} "
                                "characters")
    return value


def _opt_str(raw: Mapping[str, Any], key: str, what: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"{what}: {key} is not a string")
    return _printable(value, f"{what}: {key}")


def parse_entry(raw: Any) -> LedgerEntry:
    """One ledger entry from the earnings endpoint.

    Raises:
        MalformedResponse: a required field is missing or has the wrong shape.
    """
    if not isinstance(raw, Mapping):
        raise MalformedResponse("ledger entry is not an object")
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not entry_id:
        raise MalformedResponse("ledger entry without a string id")
    _printable(entry_id, "ledger entry id")
    what = f"ledger entry {entry_id[:60]}"
    kind = raw.get("type")
    if kind not in contract.LEDGER_TYPES:
        raise MalformedResponse(f"{what}: unknown type {str(kind)[:40]!r}")
    assert isinstance(kind, str)
    amount = parse_amount(raw.get("amount"), what)
    token = _opt_str(raw, "token", what) or ""
    created = parse_time(raw.get("createdAt"), what)
    values: dict[str, Any] = {}
    if kind == "ENGAGEMENT":
        values["node_id"] = _opt_str(raw, "nodeId", what)
        if raw.get("vestsAt") is not None:
            values["vests_at"] = parse_time(raw.get("vestsAt"), what)
    elif kind == "REFERRAL":
        referee = _opt_str(raw, "refereeAgentId", what)
        if not referee:
            raise MalformedResponse(f"{what}: REFERRAL without refereeAgentId")
        values["referee_agent_id"] = referee
        values["referee_registered_at"] = parse_time(raw.get("refereeRegisteredAt"), what)
        values["base_entry_id"] = _opt_str(raw, "baseEntryId", what)
        values["base_amount"] = parse_amount(raw.get("baseAmount"), what)
        if raw.get("vestsAt") is not None:
            values["vests_at"] = parse_time(raw.get("vestsAt"), what)
    elif kind == "PAYOUT":
        tx_hash = raw.get("txHash")
        if not isinstance(tx_hash, str) or not _HEX_HASH.match(tx_hash):
            raise MalformedResponse(f"{what}: PAYOUT without a valid txHash")
        values["tx_hash"] = tx_hash.lower()
        to = raw.get("toAddress")
        if not isinstance(to, str) or not _HEX_ADDR.match(to):
            raise MalformedResponse(f"{what}: PAYOUT without a valid toAddress")
        values["to_address"] = to.lower()
        chain_id = raw.get("chainId")
        if chain_id is not None:
            if isinstance(chain_id, bool) or not isinstance(chain_id, int | str):
                raise MalformedResponse(f"{what}: chainId is not an integer")
            try:
                values["chain_id"] = int(chain_id)
            except ValueError:
                raise MalformedResponse(f"{what}: chainId is not an integer") from None
        log_index = raw.get("logIndex")  # [ours] optional: which log of the transaction
        if log_index is not None:
            if isinstance(log_index, bool) or not isinstance(log_index, int) or log_index < 0:
                raise MalformedResponse(f"{what}: logIndex is not a non-negative integer")
            values["log_index"] = log_index
        # [ours] the sign of a PAYOUT amount is not specified: what was sent is its size.
        amount = abs(amount)
    return LedgerEntry(id=entry_id, type=kind, amount=amount, token=token.lower(),
                       created_at=created, **values)


def parse_referral(raw: Any) -> Referral:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("agentId"), str):
        raise MalformedResponse("referral without an agentId")
    return Referral(agent_id=_printable(str(raw["agentId"]), "referral agentId"),
                    registered_at=parse_time(raw.get("registeredAt"), "referral"))
