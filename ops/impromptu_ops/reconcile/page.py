"""Private: the HTML report: one self-contained page with an inline SVG chart.

Inline CSS (screen and print) and an inline SVG chart; no script and no external resource;
links only to the configured block explorer; every text is HTML-escaped. Amounts show a
fixed number of decimals (``chain.display_decimals``) with digit grouping and the exact
value in a ``title`` attribute. Pure: a report in, a page out.
"""

from __future__ import annotations

import html
from datetime import date
from decimal import Decimal

from impromptu_ops.chain import networks
from impromptu_ops.chain.erc20 import format_units
from impromptu_ops.reconcile.display import (
    NO_PRICES,
    agent_text,
    balance_verdict,
    chain_text,
    decimals_of,
    finding_dates,
    period_text,
    shown,
    split_totals,
    symbol_of,
    tx_text,
    verdict,
    wallet_lines,
)
from impromptu_ops.reconcile.model import Report, title
from impromptu_ops.reconcile.prices import PriceList
from impromptu_ops.reconcile.statement import (
    movements,
    show_time,
    token_units,
    unpriced_days,
)


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
        self.d = decimals_of(report)
        self.symbol = symbol_of(report)
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
        return self.link(networks.tx_url(self.explorer, tx_hash), tx_text(tx_hash), tx_hash)

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
    totals, chain = split_totals(report)

    def lines(items: list[tuple[str, int]]) -> str:
        return _rows([f'<td class="{"sum" if label.startswith("=") else ""}">{e(label)}</td>'
                      f"{h.amount(v)}" for label, v in items])

    wallet = "".join(f"<tr><td>{e(label)}</td>{h.amount(v)}</tr>"
                     for label, v in wallet_lines(report))
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
({decimals_of(report)} decimals)</dd>
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
