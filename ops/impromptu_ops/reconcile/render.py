"""Private: Render a :class:`~.model.Report` as a text table, JSON, CSV, Koinly CSV or one HTML
page.

This module owns presentation only. Amounts stay integers of base units in JSON and CSV
(as decimal strings, so no reader turns them into floats) beside their exact decimal form
in a separately named column; the HTML shows a fixed number of decimals
(``chain.display_decimals``) with digit grouping and the exact value in a ``title``
attribute; the text table shows exact values, grouped. No float touches an amount.

Dates are UTC without microseconds everywhere. Signs follow one rule (see
:mod:`.statement`): each table or row names its account, ``+`` adds to it, ``-`` takes.

Transaction hashes are written in full in JSON, CSV and the HTML links (a reader needs the
whole hash), and abbreviated with :func:`contract.show_tx_hash` in the table and the HTML
text (a person only needs to recognise them).

The HTML page is :mod:`.page`; what every format shares (amount text, verdicts, dates)
is :mod:`.display`. This module dispatches (:func:`render`) and writes (:func:`write_report`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from impromptu_ops import atomic
from impromptu_ops.chain.erc20 import format_units
from impromptu_ops.errors import InputError
from impromptu_ops.reconcile.display import (
    CSV_COLUMNS,
    FORMATS,
    KOINLY_COLUMNS,
    NO_PRICES,
    agent_text,
    amount_text,
    balance_verdict,
    chain_text,
    decimals_of,
    finding_dates,
    grouped,
    period_text,
    shown,
    split_totals,
    symbol_of,
    tx_text,
    verdict,
    wallet_lines,
)
from impromptu_ops.reconcile.model import Report, title
from impromptu_ops.reconcile.page import nice_ticks, render_html
from impromptu_ops.reconcile.prices import PriceList
from impromptu_ops.reconcile.statement import (
    movements,
    show_time,
    utc,
)


def to_dict(report: Report, prices: PriceList | None = None) -> dict[str, Any]:
    """The JSON document (amounts as strings of base units)."""
    d = decimals_of(report)
    t = report.totals
    b = report.balances
    rows = movements(report, prices)
    return {
        "reconciled": report.reconciled,
        "context": dict(report.context),
        "period": period_text(report),
        "totals": {k: str(v) for k, v in vars(t).items()},
        "totalsFormatted": {k: format_units(v, d) for k, v in vars(t).items()},
        "explanation": [{"label": label, "amount": str(v)} for label, v in report.explanation],
        "balances": None if b is None else {
            "openingBlock": b.opening_block, "closingBlock": b.closing_block,
            "opening": None if b.opening is None else str(b.opening),
            "closing": None if b.closing is None else str(b.closing),
            "received": str(b.received), "sent": str(b.sent),
            "agrees": b.agrees, "unchecked": b.unchecked},
        "discrepancies": [
            {"kind": x.kind.value, "title": title(x.kind), "entryId": x.entry_id,
             "date": when or None, "txHash": x.tx_hash, "logIndex": x.log_index,
             "expected": None if x.expected is None else str(x.expected),
             "actual": None if x.actual is None else str(x.actual),
             "chainEffect": str(x.chain_effect), "detail": x.detail}
            for x, when in zip(report.discrepancies, finding_dates(report), strict=True)],
        "matches": [
            {"entryId": m.entry_id, "txHash": m.tx_hash, "logIndex": m.log_index,
             "amount": str(m.amount), "block": m.block_number, "provisional": m.provisional,
             "date": show_time(utc(report.block_times[m.block_number]))
             if m.block_number in report.block_times else None}
            for m in report.matches],
        "movements": [{
            "date": show_time(r.when), "block": r.block, "txHash": r.tx_hash or None,
            "logIndex": r.log_index, "type": r.type, "account": r.account,
            "amount": str(r.amount), "amountDecimal": format_units(r.amount, d),
            "counterparty": r.counterparty, "ledgerId": r.ledger_id, "status": r.status,
            "fiat": None if r.fiat is None else str(r.fiat)} for r in rows],
        "fiatCurrency": prices.currency if prices else None,
        "series": [{"day": day, "earned": str(e), "paid": str(p)}
                   for day, e, p in report.series],
    }


def render_json(report: Report, prices: PriceList | None = None) -> str:
    return json.dumps(to_dict(report, prices), indent=2, sort_keys=True) + "\n"


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run: ledger ids and details come from the platform,
    and ``=HYPERLINK(...)`` in an id would be a formula (OWASP "CSV injection")."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(report: Report, prices: PriceList | None = None) -> str:
    """One row per movement of the period (see :mod:`.statement`)."""
    d = decimals_of(report)
    symbol = _cell(symbol_of(report))
    token = str(report.context.get("token", ""))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in movements(report, prices):
        w.writerow([show_time(r.when), "" if r.block is None else r.block, r.tx_hash,
                    "" if r.log_index is None else r.log_index, r.type, r.account,
                    format_units(r.amount, d), r.amount, symbol, token,
                    _cell(r.counterparty), _cell(r.ledger_id), _cell(r.status),
                    "" if r.fiat is None else r.fiat,
                    prices.currency if prices is not None and r.fiat is not None else ""])
    return buf.getvalue()


def render_koinly(report: Report, prices: PriceList | None = None) -> str:
    """The wallet's on-chain movements in Koinly's universal layout: payouts received are
    ``income``; other transfers in and out carry no label (plain deposits, withdrawals).
    What never reached the chain (credits, the withheld fee) is not a wallet movement."""
    d = decimals_of(report)
    symbol = _cell(symbol_of(report))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(KOINLY_COLUMNS)
    for r in movements(report, prices):
        if not r.on_chain or r.account != "wallet":
            continue
        when = r.when.strftime("%Y-%m-%d %H:%M UTC")
        size = format_units(abs(r.amount), d)
        sent = (size, symbol) if r.amount < 0 else ("", "")
        got = (size, symbol) if r.amount >= 0 else ("", "")
        worth = ("" if r.fiat is None else str(abs(r.fiat)),
                 prices.currency if prices is not None and r.fiat is not None else "")
        label = "income" if r.type == "payout" else ""
        what = (f"Impromptu payout, ledger entry {r.ledger_id}" if r.ledger_id
                else f"{r.type} {'from' if r.amount >= 0 else 'to'} {r.counterparty}")
        w.writerow([when, *sent, *got, "", "", *worth, label, _cell(what), r.tx_hash])
    return buf.getvalue()


def _on_the_point(values: list[str]) -> list[str]:
    """Exact decimals padded with spaces after the digits so the points line up when the
    column is right-aligned (no digit is added: the values stay exact)."""
    width = max((len(v.partition(".")[2]) + 1 for v in values if "." in v), default=0)
    return [v + " " * (width - (len(v.partition(".")[2]) + 1 if "." in v else 0))
            if v else v for v in values]


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...],
           right: tuple[int, ...] = ()) -> str:
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else []
    for i in right:
        if columns:
            columns[i] = _on_the_point(columns[i])
    rows = [tuple(r) for r in zip(*columns, strict=True)] if columns else rows
    allrows = [header, *rows]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in allrows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_table(report: Report, prices: PriceList | None = None) -> str:
    d = decimals_of(report)
    c = report.context
    symbol = symbol_of(report)
    out = [verdict(report),
           f"agent   {agent_text(report)}",
           f"wallet  {c.get('wallet')}",
           f"chain   {chain_text(report)}",
           f"token   {symbol} {c.get('token')} ({d} decimals)",
           f"period  {period_text(report)}; final up to block {c.get('finalBlock')} "
           f"({c.get('finalSource')})",
           f"signs   + adds to the account named, - takes from it; amounts in {symbol}", ""]
    totals, chain = split_totals(report)
    out.append(_table([(label, grouped(v, d)) for label, v in totals],
                      ("platform balance", "amount"), right=(1,)))
    out.append("")
    out.append(_table([(label, grouped(v, d)) for label, v in chain],
                      ("wallet: ledger vs chain", "amount"), right=(1,)))
    wallet = wallet_lines(report)
    if wallet:
        out.append("")
        out.append(_table([(label, "" if v is None else grouped(v, d)) for label, v in wallet],
                          ("wallet balance", "amount"), right=(1,)))
        out.append(balance_verdict(report))
    if report.discrepancies:
        out.append("")
        out.append(_table([(f"{title(x.kind)} ({x.kind.value})", when, x.entry_id or "",
                            tx_text(x.tx_hash), amount_text(x.expected, d),
                            amount_text(x.actual, d), x.detail)
                           for x, when in zip(report.discrepancies, finding_dates(report),
                                              strict=True)],
                          ("discrepancy", "date", "entry", "tx", "expected", "actual",
                           "detail"), right=(4, 5)))
    provisional = [m for m in report.matches if m.provisional]
    out.append("")
    out.append(f"{len(report.matches)} payouts matched on chain, {len(provisional)} "
               "provisional (above the final block)")
    if not c.get("sendersChecked", True):
        out.append("note: payout senders not checked (set chain.payout_senders)")
    return "\n".join(out) + "\n"


def check_output(path: Path) -> None:
    """Refuse, before any work, an output path whose folder does not exist (a typo must not
    create folders) or that is a folder.

    Raises:
        InputError: the path cannot take the report.
    """
    if path.is_dir():
        raise InputError(f"--output {path} is a folder")
    if not path.parent.is_dir():
        raise InputError(f"--output {path}: folder {path.parent} does not exist")


def write_report(report: Report, fmt: str, path: Path,
                 prices: PriceList | None = None) -> None:
    """Write the report to ``path`` atomically (temp file, fsync, rename), mode 0600.

    Raises:
        InputError: the folder is missing or the file cannot be written.
    """
    check_output(path)
    try:
        atomic.write_text(path, render(report, fmt, prices))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def render(report: Report, fmt: str, prices: PriceList | None = None) -> str:
    """The report in one of :data:`FORMATS`."""
    return {"table": render_table, "json": render_json, "csv": render_csv,
            "koinly": render_koinly, "html": render_html}[fmt](report, prices)


# The one entry point of the report's presentation: what the CLI and the tests reach through
# ``render`` (the shared display helpers and the HTML page are modules of their own).
__all__ = ["CSV_COLUMNS", "FORMATS", "KOINLY_COLUMNS", "NO_PRICES", "check_output",
           "finding_dates", "grouped", "nice_ticks", "period_text", "render", "render_csv",
           "render_html", "render_json", "render_koinly", "render_table", "shown", "to_dict",
           "verdict", "write_report"]
