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

The HTML report is a single file: inline CSS (screen and print) and an inline SVG chart;
no script and no external resource; links only to the configured block explorer; every
text is HTML-escaped.
"""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from impromptu_ops import atomic, contract
from impromptu_ops.chain import networks
from impromptu_ops.chain.erc20 import format_units
from impromptu_ops.errors import InputError
from impromptu_ops.reconcile.model import Report, title
from impromptu_ops.reconcile.prices import PriceList
from impromptu_ops.reconcile.statement import (
    movements,
    show_time,
    token_units,
    unpriced_days,
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


def _decimals(report: Report) -> int:
    value = report.context.get("decimals", contract.DEFAULT_DECIMALS)
    return value if isinstance(value, int) else contract.DEFAULT_DECIMALS


def _symbol(report: Report) -> str:
    value = report.context.get("symbol")
    return value if isinstance(value, str) and value else "tokens"


def _amt(value: int | None, decimals: int) -> str:
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


def _tx(value: str | None) -> str:
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


def to_dict(report: Report, prices: PriceList | None = None) -> dict[str, Any]:
    """The JSON document (amounts as strings of base units)."""
    d = _decimals(report)
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
    d = _decimals(report)
    symbol = _cell(_symbol(report))
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
    d = _decimals(report)
    symbol = _cell(_symbol(report))
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


def _split(report: Report) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The explanation's two parts: earned -> pending, and payouts -> on chain."""
    lines = list(report.explanation)
    return lines[:TOTALS_LINES], lines[TOTALS_LINES:]


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


def _wallet_lines(report: Report) -> list[tuple[str, int | None]]:
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
    d = _decimals(report)
    if b.agrees:
        return "balanceOf agrees: opening + received - sent = closing"
    diff = (b.closing or 0) - (b.expected_closing or 0)
    return f"balanceOf DIFFERS by {grouped(diff, d)} {_symbol(report)}"


def render_table(report: Report, prices: PriceList | None = None) -> str:
    d = _decimals(report)
    c = report.context
    symbol = _symbol(report)
    out = [verdict(report),
           f"agent   {agent_text(report)}",
           f"wallet  {c.get('wallet')}",
           f"chain   {chain_text(report)}",
           f"token   {symbol} {c.get('token')} ({d} decimals)",
           f"period  {period_text(report)}; final up to block {c.get('finalBlock')} "
           f"({c.get('finalSource')})",
           f"signs   + adds to the account named, - takes from it; amounts in {symbol}", ""]
    totals, chain = _split(report)
    out.append(_table([(label, grouped(v, d)) for label, v in totals],
                      ("platform balance", "amount"), right=(1,)))
    out.append("")
    out.append(_table([(label, grouped(v, d)) for label, v in chain],
                      ("wallet: ledger vs chain", "amount"), right=(1,)))
    wallet = _wallet_lines(report)
    if wallet:
        out.append("")
        out.append(_table([(label, "" if v is None else grouped(v, d)) for label, v in wallet],
                          ("wallet balance", "amount"), right=(1,)))
        out.append(balance_verdict(report))
    if report.discrepancies:
        out.append("")
        out.append(_table([(f"{title(x.kind)} ({x.kind.value})", when, x.entry_id or "",
                            _tx(x.tx_hash), _amt(x.expected, d), _amt(x.actual, d), x.detail)
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


# --- HTML --------------------------------------------------------------------------------
def nice_ticks(top: Decimal, count: int = 4) -> list[Decimal]:
    """Round axis values from 0 covering ``top``: steps of 1, 2, 2.5 or 5 x 10^k."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    raw = top / count
    exp = raw.adjusted()
    step = Decimal(10) ** exp
    for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if m * Decimal(10) ** exp >= raw:
            step = m * Decimal(10) ** exp
            break
    ticks = [Decimal(0)]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _tick_label(value: Decimal) -> str:
    text = f"{value.normalize():,f}"
    return text


def _chart(series: tuple[tuple[str, int, int], ...], decimals: int, symbol: str) -> str:
    width, height = 720, 280
    left, right, top_pad, bottom = 80, 20, 30, 50
    if not series:
        return "<p>No ledger entries to chart.</p>"
    top_units = token_units(max(max(e, p) for _, e, p in series), decimals)
    ticks = nice_ticks(top_units)
    scale = ticks[-1] or Decimal(1)
    days = [date.fromisoformat(day).toordinal() for day, _, _ in series]
    span = (days[-1] - days[0]) or 1
    plot_w, plot_h = width - left - right, height - top_pad - bottom

    def x_of(ordinal: int) -> float:
        return left + plot_w * ((ordinal - days[0]) / span if len(days) > 1 else 0.5)

    def y_of(units: Decimal) -> float:
        return height - bottom - plot_h * float(units / scale)  # drawing only

    def point(i: int, v: int) -> str:
        return f"{x_of(days[i]):.1f},{y_of(token_units(v, decimals)):.1f}"

    def marks(points: list[str], colour: str) -> str:  # a single day still shows
        return "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" '
                       f'fill="{colour}"/>' for p in points)

    earned_points = [point(i, e) for i, (_, e, _) in enumerate(series)]
    paid_points = [point(i, p) for i, (_, _, p) in enumerate(series)]
    grid = "".join(
        f'<line x1="{left}" y1="{y_of(t):.1f}" x2="{width - right}" y2="{y_of(t):.1f}" '
        f'stroke="#ddd"/><text x="{left - 6}" y="{y_of(t) + 4:.1f}" font-size="11" '
        f'text-anchor="end">{html.escape(_tick_label(t))}</text>' for t in ticks)
    step = max(1, (len(days) - 1) // 4) if len(days) > 1 else 1
    shown_days = sorted({*range(0, len(days), step), len(days) - 1})

    def anchor(i: int) -> str:  # the end labels stay inside the drawing
        if len(days) > 1 and i == 0:
            return "start"
        return "end" if len(days) > 1 and i == len(days) - 1 else "middle"

    xlabels = "".join(
        f'<line x1="{x_of(days[i]):.1f}" y1="{height - bottom}" x2="{x_of(days[i]):.1f}" '
        f'y2="{height - bottom + 4}" stroke="#888"/><text x="{x_of(days[i]):.1f}" '
        f'y="{height - bottom + 17}" font-size="11" text-anchor="{anchor(i)}">'
        f'{html.escape(series[i][0])}</text>' for i in shown_days)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="cumulative earned and paid over time, in {html.escape(symbol)}">'
        f'{grid}'
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#888"/>'
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{height - bottom}" stroke="#888"/>'
        f'{xlabels}'
        f'<polyline fill="none" stroke="#2a7" stroke-width="2" '
        f'points="{" ".join(earned_points)}"/>'
        f'<polyline fill="none" stroke="#27c" stroke-width="2" '
        f'points="{" ".join(paid_points)}"/>'
        f'{marks(earned_points, "#2a7")}{marks(paid_points, "#27c")}'
        f'<text x="{left}" y="{top_pad - 12}" font-size="12">{html.escape(symbol)}'
        ' (cumulative)</text>'
        f'<text x="{(left + width - right) // 2}" y="{height - 10}" font-size="12" '
        'text-anchor="middle">date (UTC)</text>'
        f'<text x="{width - right}" y="{top_pad - 12}" font-size="12" text-anchor="end">'
        '<tspan fill="#2a7">■ earned</tspan> <tspan fill="#27c">■ paid</tspan></text>'
        "</svg>")


class _Html:
    """Formatting helpers bound to one report (decimals, symbol, explorer)."""

    def __init__(self, report: Report) -> None:
        c = report.context
        self.d = _decimals(report)
        self.symbol = _symbol(report)
        places = c.get("displayDecimals", 4)
        self.places = places if isinstance(places, int) and 0 <= places <= 30 else 4
        explorer = c.get("explorer")
        self.explorer = explorer if isinstance(explorer, str) else ""

    def amount(self, value: int | None) -> str:
        if value is None:
            return '<td class="num"></td>'
        exact = f"{format_units(value, self.d)} {self.symbol}"
        return (f'<td class="num" title="{html.escape(exact)}">'
                f"{html.escape(shown(value, self.d, self.places))}</td>")

    def link(self, url: str, text: str, full: str = "") -> str:
        label = html.escape(text)
        hover = f' title="{html.escape(full)}"' if full else ""
        if not url:
            return f"<span{hover}>{label}</span>" if hover else label
        return f'<a href="{html.escape(url)}"{hover}>{label}</a>'

    def tx(self, tx_hash: str | None) -> str:
        if not tx_hash:
            return ""
        return self.link(networks.tx_url(self.explorer, tx_hash), _tx(tx_hash), tx_hash)

    def address(self, address: str) -> str:
        if not address.startswith("0x") or len(address) != 42:
            return html.escape(address)
        return self.link(networks.address_url(self.explorer, address),
                         f"{address[:8]}…{address[-6:]}", address)

    def block(self, number: int | None) -> str:
        if number is None:
            return ""
        return self.link(networks.block_url(self.explorer, number), f"{number:,}")


def _rows(items: list[str]) -> str:
    return "".join(f"<tr>{r}</tr>" for r in items)


def render_html(report: Report, prices: PriceList | None = None) -> str:
    h = _Html(report)
    e = html.escape
    c = report.context
    rows = movements(report, prices)
    totals, chain = _split(report)

    def lines(items: list[tuple[str, int]]) -> str:
        return _rows([f'<td class="{"sum" if label.startswith("=") else ""}">{e(label)}</td>'
                      f"{h.amount(v)}" for label, v in items])

    wallet = "".join(f"<tr><td>{e(label)}</td>{h.amount(v)}</tr>"
                     for label, v in _wallet_lines(report))
    b = report.balances
    check_class = "ok" if b is not None and b.agrees else "bad" if b is not None and \
        b.agrees is False else "note"
    found = _rows([
        f"<td>{e(title(x.kind))} <code>{e(x.kind.value)}</code></td>"
        f"<td class=\"nowrap\">{e(when)}</td>"
        f"<td class=\"id\">{e(x.entry_id or '')}</td><td class=\"id\">{h.tx(x.tx_hash)}</td>"
        f"{h.amount(x.expected)}{h.amount(x.actual)}<td>{e(x.detail)}</td>"
        for x, when in zip(report.discrepancies, finding_dates(report), strict=True)])
    fiat_head = f"value ({e(prices.currency)})" if prices else "value"
    moves = _rows([
        f"<td class=\"nowrap\">{e(show_time(r.when))}</td>"
        f"<td class=\"num\">{h.block(r.block)}</td>"
        f"<td class=\"id\">{h.tx(r.tx_hash)}</td><td>{e(r.type)}</td><td>{e(r.account)}</td>"
        f"{h.amount(r.amount)}"
        f"<td class=\"num\">{'' if r.fiat is None else e(f'{r.fiat:,.2f}')}</td>"
        f"<td class=\"id\">{h.address(r.counterparty)}</td>"
        f"<td class=\"id\">{e(r.ledger_id)}</td>"
        f"<td>{e(r.status)}</td>" for r in rows])
    if prices is None:
        fiat_note = NO_PRICES
    else:
        missing = unpriced_days(rows)
        fiat_note = f"fiat values in {prices.currency} from the price file given" + (
            f"; no price for {', '.join(missing)}" if missing else "")
    status = "ok" if report.reconciled else "bad"
    name = str(c.get("agentName") or c.get("agentId") or "agent")
    token = str(c.get("token", ""))
    wallet_addr = str(c.get("wallet", ""))
    explorer_note = (f"links open {e(h.explorer)}" if h.explorer
                     else "no block explorer for this chain (chain.explorer_url)")
    generated = str(c.get("generatedAt", "")).replace("T", " ").replace("+00:00", " UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Earnings statement: {e(name)}, {e(period_text(report))}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:76em;
padding:0 1em;color:#111;line-height:1.4}}
h1{{font-size:1.5em;margin-bottom:.2em}}h2{{font-size:1.15em;margin-top:1.6em;
border-bottom:1px solid #ccc}}
table{{border-collapse:collapse;margin:.6em 0}}td,th{{border:1px solid #ccc;
padding:.25em .6em;text-align:left;vertical-align:top}}th{{background:#f3f3f3}}
.num{{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}}
.sum{{font-weight:600}}.nowrap{{white-space:nowrap}}.ok{{color:#161}}.bad{{color:#a11}}.note{{color:#555}}
dl{{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}}dt{{font-weight:600}}
dd{{margin:0}}code{{font-size:.85em;color:#555}}a{{color:#14c}}
.wide{{font-size:.9em;width:100%}}.id{{overflow-wrap:anywhere}}
@media print{{body{{margin:0;max-width:none;font-size:10pt}}a{{color:inherit;
text-decoration:none}}h2{{break-after:avoid}}tr{{break-inside:avoid}}
.wide{{font-size:8pt}}}}
</style></head><body>
<h1>Earnings statement: {e(name)}</h1>
<p class="{status}"><strong>{e(verdict(report))}</strong></p>
<dl>
<dt>Agent</dt><dd>{e(agent_text(report))}</dd>
<dt>Wallet</dt><dd>{h.link(networks.address_url(h.explorer, wallet_addr), wallet_addr)}</dd>
<dt>Chain</dt><dd>{e(chain_text(report))}</dd>
<dt>Token</dt><dd>{e(h.symbol)}, {h.link(networks.address_url(h.explorer, token), token)}
({_decimals(report)} decimals)</dd>
<dt>Period</dt><dd>{e(period_text(report))}</dd>
<dt>Final</dt><dd>up to block {e(str(c.get('finalBlock')))} ({e(str(c.get('finalSource')))})
</dd>
<dt>Generated</dt><dd>{e(generated)}</dd>
</dl>
<p class="note">Amounts in {e(h.symbol)}, shown with {h.places} decimals (hover for the exact
value; the CSV export has it in full). Signs: + adds to the account named, - takes from it.
Dates are UTC. {explorer_note}.</p>
<h2>Platform balance</h2>
<table><tr><th>per the platform's ledger</th><th class="num">{e(h.symbol)}</th></tr>
{lines(totals)}</table>
<h2>Wallet: ledger vs chain</h2>
<table><tr><th>payouts into the wallet</th><th class="num">{e(h.symbol)}</th></tr>
{lines(chain)}</table>
<h2>Wallet balance: opening, movements, closing</h2>
<table><tr><th>on chain, in the period</th><th class="num">{e(h.symbol)}</th></tr>
{wallet}</table>
<p class="{check_class}">{e(balance_verdict(report))}</p>
<h2>Earned vs paid over time</h2>
{_chart(report.series, h.d, h.symbol)}
<h2>Discrepancies ({len(report.discrepancies)})</h2>
<table class="wide"><tr><th>finding</th><th>date (UTC)</th><th>ledger entry</th>
<th>transaction</th>
<th class="num">expected</th><th class="num">actual</th><th>detail</th></tr>{found}</table>
<h2>Movements in the period ({len(rows)})</h2>
<p class="note">{e(fiat_note)}</p>
<table class="wide"><tr><th>date (UTC)</th><th class="num">block</th><th>transaction</th>
<th>type</th><th>account</th><th class="num">amount</th><th class="num">{fiat_head}</th>
<th>counterparty</th><th>ledger entry</th><th>status</th></tr>{moves}</table>
</body></html>
"""


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
