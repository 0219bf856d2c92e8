"""Private: how a reconciliation report's amounts, dates and verdicts are shown, in every format.

Shared by the tables, CSV and JSON (:mod:`.render`) and the HTML page (:mod:`.page`):
constants, exact amount text (integers of base units, never a float), verdict sentences.
Pure.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from impromptu_ops import contract
from impromptu_ops.chain import networks
from impromptu_ops.chain.erc20 import format_units
from impromptu_ops.reconcile.model import Report
from impromptu_ops.reconcile.statement import (
    show_time,
    token_units,
    utc,
)

FORMATS = ("table", "json", "csv", "koinly", "html")
TOTALS_LINES = 6  # the explanation's first part: earned ... = pending (see match.reconcile)
CSV_COLUMNS = ("date_utc", "block", "tx_hash", "log_index", "type", "account",
               "amount_decimal", "amount_base_units", "token_symbol", "token_address",
               "counterparty", "ledger_id", "status", "fiat_value", "fiat_currency")


# Koinly's universal CSV layout, https://support.koinly.io/en/articles/9489976 ("How to
# create a custom CSV file with your data"): dates "YYYY-MM-DD HH:MM UTC", in UTC.
KOINLY_COLUMNS = ("Date", "Sent Amount", "Sent Currency", "Received Amount",
                  "Received Currency", "Fee Amount", "Fee Currency", "Net Worth Amount",
                  "Net Worth Currency", "Label", "Description", "TxHash")
NO_PRICES = "no fiat values: no price file given (--prices FILE)"


def decimals_of(report: Report) -> int:
    value = report.context.get("decimals", contract.DEFAULT_DECIMALS)
    return value if isinstance(value, int) else contract.DEFAULT_DECIMALS


def symbol_of(report: Report) -> str:
    value = report.context.get("symbol")
    return value if isinstance(value, str) and value else "tokens"


def amount_text(value: int | None, decimals: int) -> str:
    return "" if value is None else format_units(value, decimals)


def grouped(value: int, decimals: int) -> str:
    """Exact, with thousands grouped: ``1,234.000000000000000001``."""
    text = format_units(value, decimals)
    sign = "-" if text.startswith("-") else ""
    whole, _, frac = text.lstrip("-").partition(".")
    return f"{sign}{int(whole):,}" + (f".{frac}" if frac else "")


def shown(value: int, decimals: int, places: int) -> str:
    """Fixed display precision, grouped: ``1,234.5000`` (rounded half to even)."""
    q = token_units(value, decimals).quantize(Decimal(1).scaleb(-places),
                                              rounding=ROUND_HALF_EVEN)
    return f"{q:,.{places}f}"


def tx_text(value: str | None) -> str:
    return contract.show_tx_hash(value) if value else ""


def verdict(report: Report) -> str:
    if report.reconciled:
        return "RECONCILED"
    return f"DISCREPANCIES: {len(report.discrepancies)}"


def period_text(report: Report) -> str:
    c = report.context
    start, end = c.get("periodStart"), c.get("periodEnd")
    dates = (f"{show_time(utc(start))} to {show_time(utc(end))}"
             if isinstance(start, int) and isinstance(end, int) else "dates unknown")
    return f"{dates} (blocks {c.get('fromBlock')} to {c.get('toBlock')})"


def chain_text(report: Report) -> str:
    c = report.context
    chain_id = c.get("chainId")
    name = c.get("chainName") or (networks.network(chain_id).name
                                  if isinstance(chain_id, int) else "?")
    return f"{name} (chain id {chain_id})"


def agent_text(report: Report) -> str:
    c = report.context
    name, agent_id = c.get("agentName") or "", c.get("agentId") or ""
    if name and agent_id:
        return f"{name} ({agent_id})"
    return str(name or agent_id or "agent not named by the platform")


def finding_dates(report: Report) -> list[str]:
    """Each discrepancy's date: its transfer's block time when known, else its ledger
    entry's ``createdAt`` (UTC, no microseconds); "" when it has neither."""
    created = {e.id: e.created_at for e in report.entries}
    blocks = {t.key: t.block_number for t in (*report.transfers, *report.outgoing)}
    out: list[str] = []
    for x in report.discrepancies:
        block = blocks.get((x.tx_hash or "", x.log_index if x.log_index is not None else -1))
        if block is not None and block in report.block_times:
            out.append(show_time(utc(report.block_times[block])))
        elif x.entry_id in created:
            out.append(show_time(created[x.entry_id]))
        else:
            out.append("")
    return out


def split_totals(report: Report) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The explanation's two parts: earned -> pending, and payouts -> on chain."""
    lines = list(report.explanation)
    return lines[:TOTALS_LINES], lines[TOTALS_LINES:]


def wallet_lines(report: Report) -> list[tuple[str, int | None]]:
    b = report.balances
    if b is None:
        return []
    opening = ("opening balance (before block 0)" if b.opening_block < 0
               else f"opening balance (balanceOf after block {b.opening_block})")
    return [(opening, b.opening),
            ("received in the period", b.received), ("sent in the period", -b.sent),
            ("= expected closing balance", b.expected_closing),
            (f"closing balance (balanceOf after block {b.closing_block})", b.closing)]


def balance_verdict(report: Report) -> str:
    b = report.balances
    if b is None:
        return "not checked"
    if b.unchecked:
        return b.unchecked
    d = decimals_of(report)
    if b.agrees:
        return "balanceOf agrees: opening + received - sent = closing"
    diff = (b.closing or 0) - (b.expected_closing or 0)
    return f"balanceOf DIFFERS by {grouped(diff, d)} {symbol_of(report)}"
