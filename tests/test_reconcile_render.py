"""The report's renderings: the HTML is one self-contained file whose chart is drawn over
time, and every format carries amounts exactly."""

from __future__ import annotations

import csv
import io
import json
import re

from impromptu_ops.reconcile import render
from impromptu_ops.reconcile.model import Discrepancy, Kind, Report, Totals

E18 = 10**18
TOTALS = Totals(earned=150 * E18 + 1, fees=-10 * E18, unvested=0, vested=140 * E18 + 1,
                paid_ledger=50 * E18, received_chain=50 * E18, received_final=50 * E18,
                pending=90 * E18 + 1)


def report(series: tuple[tuple[str, int, int], ...], found: tuple[Discrepancy, ...] = ()
           ) -> Report:
    return Report(discrepancies=found, matches=(), totals=TOTALS,
                  explanation=(("paid per ledger", 50 * E18),), series=series,
                  context={"decimals": 18})


def _points(page: str) -> list[list[float]]:
    return [[float(p.split(",")[0]) for p in m.split()]
            for m in re.findall(r'<polyline[^>]*points="([^"]*)"', page)]


def test_chart_x_axis_is_time_not_entry_count() -> None:
    page = render.render_html(report((("2026-01-01", E18, 0), ("2026-01-02", 2 * E18, 0),
                                      ("2026-01-31", 3 * E18, E18))))
    earned, paid = _points(page)
    assert earned == paid
    assert earned[0] == 40.0 and earned[-1] == 680.0
    # one day out of thirty: near the left edge, not in the middle
    assert abs(earned[1] - (40 + 640 / 30)) < 0.1


def test_a_single_day_is_still_drawn() -> None:
    page = render.render_html(report((("2026-01-01", E18, E18),)))
    assert page.count("<circle") == 2


def test_html_is_self_contained_and_escaped() -> None:
    hostile = Discrepancy(Kind.UNRECORDED_TRANSFER, "<script>alert(1)</script>", None, None,
                          0, 5, 5, 'from "<img src=x>"')
    page = render.render_html(report((("2026-01-01", E18, 0),), (hostile,)))
    assert page.startswith("<!doctype html>") and "<svg" in page
    tags = re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>", page)
    assert {name.lower() for name, _ in tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr",
        "th", "td", "svg", "line", "polyline", "circle", "text", "tspan", "div", "span"}
    assert not any(re.search(r"\b(src|href|on\w+)\s*=", attrs) for _, attrs in tags)
    assert "@import" not in page and "url(" not in page
    assert "&lt;script&gt;" in page  # the hostile text is shown, escaped


def test_machine_formats_keep_exact_base_units() -> None:
    r = report((("2026-01-01", E18, 0),))
    doc = json.loads(render.render_json(r))
    assert doc["totals"]["earned"] == str(150 * E18 + 1)
    assert doc["totalsFormatted"]["earned"] == "150.000000000000000001"
    rows = list(csv.DictReader(io.StringIO(render.render_csv(r))))
    assert rows and all("e" not in (row.get("amount") or "").lower() for row in rows)


def test_csv_text_cells_cannot_become_formulas() -> None:
    hostile = Discrepancy(Kind.REFERRAL_UNKNOWN_REFEREE, '=HYPERLINK("http://x","y")', None,
                          None, None, None, 0, "@SUM(1+1)")
    fee = Discrepancy(Kind.REGISTRATION_FEE_MISMATCH, "fee", None, None, -10 * E18,
                      -9 * E18, 0, "withheld fee differs from the documented fee")
    rows = list(csv.DictReader(io.StringIO(render.render_csv(report(
        (("2026-01-01", E18, 0),), (hostile, fee))))))
    bad, good = rows[0], rows[1]
    assert bad["entry_id"] == '\'=HYPERLINK("http://x","y")' and bad["detail"] == "'@SUM(1+1)"
    assert good["entry_id"] == "fee" and good["expected"] == str(-10 * E18)  # numbers intact
