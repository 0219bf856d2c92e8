"""Render a :class:`~.model.Report` as a text table, JSON, CSV or one self-contained HTML file.

This module owns presentation only. Amounts stay integers of base units in JSON and CSV
(as decimal strings, so no reader turns them into floats) with a formatted companion
column; the table and HTML show token units formatted exactly from the integers (no float
anywhere). Transaction hashes are written in full in JSON and CSV (machine formats: a
reader needs the whole hash), and abbreviated with :func:`contract.show_tx_hash` in the
table and HTML (a person only needs to recognise them, and the redactor would mask a full
32-byte hex string, which looks like a private key).

The HTML report is a single file: inline CSS and an inline SVG chart of cumulative earned
vs paid over time; no script, no external resource; every text is HTML-escaped.
"""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

from impromptu_ops import atomic, contract
from impromptu_ops.chain.erc20 import format_units
from impromptu_ops.errors import InputError
from impromptu_ops.reconcile.model import Report

FORMATS = ("table", "json", "csv", "html")
TOTALS_LINES = 6  # the explanation's first part: earned ... = pending (see match.reconcile)


def _decimals(report: Report) -> int:
    value = report.context.get("decimals", contract.DEFAULT_DECIMALS)
    return value if isinstance(value, int) else contract.DEFAULT_DECIMALS


def _amt(value: int | None, decimals: int) -> str:
    return "" if value is None else format_units(value, decimals)


def _tx(value: str | None) -> str:
    return contract.show_tx_hash(value) if value else ""


def verdict(report: Report) -> str:
    if report.reconciled:
        return "RECONCILED"
    return f"DISCREPANCIES: {len(report.discrepancies)}"


def to_dict(report: Report) -> dict[str, Any]:
    """The JSON document (amounts as strings of base units)."""
    d = _decimals(report)
    t = report.totals
    return {
        "reconciled": report.reconciled,
        "context": dict(report.context),
        "totals": {k: str(v) for k, v in vars(t).items()},
        "totalsFormatted": {k: format_units(v, d) for k, v in vars(t).items()},
        "explanation": [{"label": label, "amount": str(v)} for label, v in report.explanation],
        "discrepancies": [
            {"kind": x.kind.value, "entryId": x.entry_id, "txHash": x.tx_hash,
             "logIndex": x.log_index,
             "expected": None if x.expected is None else str(x.expected),
             "actual": None if x.actual is None else str(x.actual),
             "chainEffect": str(x.chain_effect), "detail": x.detail}
            for x in report.discrepancies],
        "matches": [
            {"entryId": m.entry_id, "txHash": m.tx_hash, "logIndex": m.log_index,
             "amount": str(m.amount), "block": m.block_number, "provisional": m.provisional}
            for m in report.matches],
        "series": [{"day": day, "earned": str(e), "paid": str(p)}
                   for day, e, p in report.series],
    }


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, sort_keys=True) + "\n"


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run: ledger ids and details come from the platform,
    and ``=HYPERLINK(...)`` in an id would be a formula (OWASP "CSV injection")."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(report: Report) -> str:
    d = _decimals(report)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["record", "kind", "entry_id", "tx_hash", "log_index", "expected", "actual",
                "amount_units", "detail"])
    for x in report.discrepancies:
        w.writerow(["discrepancy", x.kind.value, _cell(x.entry_id or ""), x.tx_hash or "",
                    "" if x.log_index is None else x.log_index,
                    "" if x.expected is None else x.expected,
                    "" if x.actual is None else x.actual,
                    _amt(x.actual, d), _cell(x.detail)])
    for m in report.matches:
        w.writerow(["match", "provisional" if m.provisional else "final", _cell(m.entry_id),
                    m.tx_hash, m.log_index, m.amount, m.amount, _amt(m.amount, d),
                    f"block {m.block_number}"])
    for key, value in vars(report.totals).items():
        w.writerow(["total", key, "", "", "", "", value, _amt(value, d), ""])
    return buf.getvalue()


def _split(report: Report) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The explanation's two parts: earned -> pending, and paid per ledger -> on chain."""
    lines = list(report.explanation)
    return lines[:TOTALS_LINES], lines[TOTALS_LINES:]


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    allrows = [header, *rows]
    widths = [max(len(r[i]) for r in allrows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in allrows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_table(report: Report) -> str:
    d = _decimals(report)
    c = report.context
    out = [f"{verdict(report)}  chain {c.get('chainId')}  blocks {c.get('fromBlock')}.."
           f"{c.get('toBlock')} (final up to {c.get('finalBlock')}, "
           f"{c.get('finalSource')})  wallet {c.get('wallet')}", ""]
    totals, chain = _split(report)
    out.append(_table([(label, _amt(v, d)) for label, v in totals], ("totals", "amount")))
    out.append("")
    out.append(_table([(label, _amt(v, d)) for label, v in chain],
                      ("ledger vs chain", "amount")))
    if report.discrepancies:
        out.append("")
        out.append(_table([(x.kind.value, x.entry_id or "", _tx(x.tx_hash),
                            _amt(x.expected, d), _amt(x.actual, d), x.detail)
                           for x in report.discrepancies],
                          ("discrepancy", "entry", "tx", "expected", "actual", "detail")))
    provisional = [m for m in report.matches if m.provisional]
    out.append("")
    out.append(f"{len(report.matches)} payouts matched on chain, {len(provisional)} "
               "provisional (above the final block)")
    if not c.get("sendersChecked", True):
        out.append("note: payout senders not checked (set chain.payout_senders)")
    return "\n".join(out) + "\n"


def _chart(series: tuple[tuple[str, int, int], ...], decimals: int) -> str:
    width, height, pad = 720, 260, 40
    if not series:
        return "<p>No ledger entries to chart.</p>"
    top = max(max(e, p) for _, e, p in series) or 1
    # x is proportional to time (days since the first entry), so gaps in the ledger show
    days = [date.fromisoformat(day).toordinal() for day, _, _ in series]
    span = (days[-1] - days[0]) or 1

    def point(i: int, v: int) -> str:
        x = pad + (width - 2 * pad) * ((days[i] - days[0]) / span if len(days) > 1 else 0.5)
        y = height - pad - (height - 2 * pad) * (v / top)  # float: drawing only
        return f"{x:.1f},{y:.1f}"

    def marks(points: list[str], colour: str) -> str:  # a single day still shows
        return "".join(f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" '
                       f'fill="{colour}"/>' for p in points)

    earned_points = [point(i, e) for i, (_, e, _) in enumerate(series)]
    paid_points = [point(i, p) for i, (_, _, p) in enumerate(series)]
    earned, paid = " ".join(earned_points), " ".join(paid_points)
    first, last = html.escape(series[0][0]), html.escape(series[-1][0])
    top_label = html.escape(format_units(top, decimals))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="cumulative earned and paid over time">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#888"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>'
        f'<polyline fill="none" stroke="#2a7" stroke-width="2" points="{earned}"/>'
        f'<polyline fill="none" stroke="#27c" stroke-width="2" points="{paid}"/>'
        f'{marks(earned_points, "#2a7")}{marks(paid_points, "#27c")}'
        f'<text x="{pad}" y="{height - 10}" font-size="12">{first}</text>'
        f'<text x="{width - pad}" y="{height - 10}" font-size="12" '
        f'text-anchor="end">{last}</text>'
        f'<text x="{pad + 4}" y="{pad - 8}" font-size="12">{top_label}</text>'
        f'<text x="{width - pad}" y="{pad - 8}" font-size="12" text-anchor="end">'
        '<tspan fill="#2a7">■ earned</tspan> <tspan fill="#27c">■ paid</tspan></text>'
        "</svg>")


def render_html(report: Report) -> str:
    d = _decimals(report)
    e = html.escape
    c = report.context

    def rows(items: list[tuple[str, ...]]) -> str:
        return "".join("<tr>" + "".join(f"<td>{e(x)}</td>" for x in r) + "</tr>"
                       for r in items)

    totals, chain = _split(report)
    explanation = rows([(label, _amt(v, d)) for label, v in totals])
    reconciliation = rows([(label, _amt(v, d)) for label, v in chain])
    found = rows([(x.kind.value, x.entry_id or "", _tx(x.tx_hash), _amt(x.expected, d),
                   _amt(x.actual, d), x.detail) for x in report.discrepancies])
    matches = rows([(m.entry_id, _tx(m.tx_hash), str(m.log_index), _amt(m.amount, d),
                     str(m.block_number), "provisional" if m.provisional else "final")
                    for m in report.matches])
    status = "ok" if report.reconciled else "bad"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>impromptu-ops earnings reconciliation</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-variant-numeric:tabular-nums}}.ok{{color:#161}}.bad{{color:#a11}}
</style></head><body>
<h1 class="{status}">{e(verdict(report))}</h1>
<p>Chain {e(str(c.get('chainId')))}, token {e(str(c.get('token')))}, wallet
{e(str(c.get('wallet')))}; blocks {e(str(c.get('fromBlock')))}..{e(str(c.get('toBlock')))},
final up to {e(str(c.get('finalBlock')))} ({e(str(c.get('finalSource')))}); generated
{e(str(c.get('generatedAt')))}.</p>
<h2>Earned vs paid over time</h2>
{_chart(report.series, d)}
<h2>Totals, explained</h2>
<table><tr><th>totals</th><th>amount</th></tr>{explanation}</table>
<table><tr><th>ledger vs chain</th><th>amount</th></tr>{reconciliation}</table>
<h2>Discrepancies ({len(report.discrepancies)})</h2>
<table><tr><th>class</th><th>entry</th><th>tx</th><th>expected</th><th>actual</th>
<th>detail</th></tr>{found}</table>
<h2>Matched payouts ({len(report.matches)})</h2>
<table><tr><th>entry</th><th>tx</th><th>log</th><th>amount</th><th>block</th><th>status</th>
</tr>{matches}</table>
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


def write_report(report: Report, fmt: str, path: Path) -> None:
    """Write the report to ``path`` atomically (temp file, fsync, rename), mode 0600.

    Raises:
        InputError: the folder is missing or the file cannot be written.
    """
    check_output(path)
    try:
        atomic.write_text(path, render(report, fmt))
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None


def render(report: Report, fmt: str) -> str:
    """The report in one of :data:`FORMATS`."""
    return {"table": render_table, "json": render_json, "csv": render_csv,
            "html": render_html}[fmt](report)
