"""Private: The statement: one row per movement of the period, dated, signed, priced.

This module owns turning a :class:`~.model.Report` into the rows an accountant reads
(``Movement``): every ledger entry of the period (credits, the registration fee, payouts)
and every on-chain transfer of the token into or out of the wallet in the scanned blocks
that no payout explains. It is pure: dates come from the report's block timestamps (for
anything on chain) or from the ledger's ``createdAt`` (for what exists only on the
platform), prices from a :class:`~.prices.PriceList`.

Signs (one rule everywhere): each row names its account, ``platform`` (the balance the
platform owes the agent) or ``wallet`` (the agent's on-chain wallet); ``+`` adds to that
account, ``-`` takes from it. A payout is the wallet's ``+`` (the platform side is the
"paid out" line of the balance table).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from impromptu_ops import contract
from impromptu_ops.reconcile.model import Kind, Report, title
from impromptu_ops.reconcile.prices import PriceList

TYPE_NAMES = {"ENGAGEMENT": "engagement credit", "REFERRAL": "referral credit",
              "REGISTRATION_FEE": "registration fee", "PAYOUT": "payout"}
CENT = Decimal("0.01")
CLAIM = "ledger only"  # a payout the ledger records but the chain does not show


@dataclass(frozen=True)
class Movement:
    """One row of the statement (amounts in base units, signed per :mod:`this module`)."""

    when: datetime
    block: int | None
    tx_hash: str
    log_index: int | None
    type: str
    account: str
    amount: int
    counterparty: str
    ledger_id: str
    status: str
    on_chain: bool
    fiat: Decimal | None = None


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def show_time(when: datetime) -> str:
    """``2026-01-31 14:05:09 UTC``: UTC, no microseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def token_units(amount: int, decimals: int) -> Decimal:
    return Decimal(amount).scaleb(-decimals)


def fiat_value(amount: int, decimals: int, price: Decimal | None) -> Decimal | None:
    if price is None:
        return None
    return (token_units(amount, decimals) * price).quantize(CENT, rounding=ROUND_HALF_EVEN)


def movements(report: Report, prices: PriceList | None = None) -> list[Movement]:
    """The period's movements in time order.

    The period is ``context["fromBlock"]..context["toBlock"]`` for on-chain rows and
    ``context["ledgerStart"]..context["ledgerEnd"]`` (unix seconds, inclusive; default
    the period's dates) for rows that exist only in the ledger.
    """
    c = report.context
    token, wallet = str(c.get("token", "")), str(c.get("wallet", ""))
    first, last = int(c.get("fromBlock", 0)), int(c.get("toBlock", 2**63))
    start = int(c.get("ledgerStart", c.get("periodStart", 0)))
    end = int(c.get("ledgerEnd", c.get("periodEnd", 2**63)))
    decimals = int(c.get("decimals", 18))
    times = report.block_times
    generated = c.get("generatedAt")
    now = datetime.fromisoformat(generated) if isinstance(generated, str) \
        else datetime.max.replace(tzinfo=UTC)
    by_entry: dict[str, list[Kind]] = {}
    for d in report.discrepancies:
        if d.entry_id:
            by_entry.setdefault(d.entry_id, []).append(d.kind)
    matched = {m.entry_id: m for m in report.matches}
    transfers = {t.key: t for t in report.transfers}
    claimed: set[tuple[str, int]] = set()
    rows: list[Movement] = []

    def in_blocks(block: int) -> bool:
        return first <= block <= last and block in times

    def ledger_time_in(when: datetime) -> bool:
        return start <= when.timestamp() <= end

    for e in report.entries:
        problems = "; ".join(f"{title(k)} ({k.value})" for k in by_entry.get(e.id, []))
        if e.type == "PAYOUT":
            m = matched.get(e.id)
            if m is not None:
                claimed.add((m.tx_hash, m.log_index))
                t = transfers.get((m.tx_hash, m.log_index))
                if not in_blocks(m.block_number):
                    continue
                # paid to another address or in another token: it moved nothing into
                # this wallet's balance of this token
                into = t is not None and t.token == token and t.recipient == wallet
                status = "received, provisional" if m.provisional else "received"
                if not into:
                    status = "not received by this wallet in this token"
                rows.append(Movement(
                    when=utc(times[m.block_number]), block=m.block_number, tx_hash=m.tx_hash,
                    log_index=m.log_index, type="payout", account="wallet" if into else CLAIM,
                    amount=m.amount,
                    counterparty=t.sender if t else "", ledger_id=e.id,
                    status=f"{status}; {problems}" if problems else status, on_chain=True))
            elif ledger_time_in(e.created_at):
                rows.append(Movement(
                    when=e.created_at, block=None, tx_hash=e.tx_hash or "",
                    log_index=e.log_index, type="payout", account=CLAIM, amount=e.amount,
                    counterparty=e.to_address or "", ledger_id=e.id,
                    status=problems or "not on chain", on_chain=False))
            continue
        if not ledger_time_in(e.created_at):
            continue
        if e.type in ("ENGAGEMENT", "REFERRAL"):
            vests = e.vests_at or e.created_at + timedelta(days=contract.VESTING_DAYS)
            status = ("vested " if vests <= now else "vests ") + \
                vests.astimezone(UTC).strftime("%Y-%m-%d")
            who = (e.node_id or "") if e.type == "ENGAGEMENT" else (e.referee_agent_id or "")
        else:
            status, who = "withheld by the platform", "platform"
        rows.append(Movement(
            when=e.created_at, block=None, tx_hash="", log_index=None,
            type=TYPE_NAMES.get(e.type, e.type.lower()), account="platform", amount=e.amount,
            counterparty=who, ledger_id=e.id,
            status=f"{status}; {problems}" if problems else status, on_chain=False))
    for t in report.transfers:
        if t.key in claimed or t.token != token or t.recipient != wallet \
                or not in_blocks(t.block_number):
            continue
        rows.append(Movement(
            when=utc(times[t.block_number]), block=t.block_number, tx_hash=t.tx_hash,
            log_index=t.log_index, type="transfer in", account="wallet", amount=t.amount,
            counterparty=t.sender, ledger_id="",
            status=f"{title(Kind.UNRECORDED_TRANSFER)} ({Kind.UNRECORDED_TRANSFER.value})",
            on_chain=True))
    for t in report.outgoing:
        if not in_blocks(t.block_number):
            continue
        rows.append(Movement(
            when=utc(times[t.block_number]), block=t.block_number, tx_hash=t.tx_hash,
            log_index=t.log_index, type="transfer out", account="wallet", amount=-t.amount,
            counterparty=t.recipient, ledger_id="", status="sent", on_chain=True))
    if prices is not None:
        rows = [_priced(r, decimals, prices) for r in rows]
    rows.sort(key=lambda r: (r.when, r.block or 0, r.log_index or 0, r.ledger_id))
    return rows


def _priced(row: Movement, decimals: int, prices: PriceList) -> Movement:
    price = prices.price(row.when.astimezone(UTC).date())
    return Movement(**{**row.__dict__, "fiat": fiat_value(row.amount, decimals, price)})


def unpriced_days(rows: Sequence[Movement]) -> list[str]:
    """Days of movements the price file has no price for (the report names them)."""
    return sorted({r.when.astimezone(UTC).date().isoformat() for r in rows if r.fiat is None})
