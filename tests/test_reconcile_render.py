"""The report's renderings and exports, from the pure core's report (no I/O).

The HTML is one self-contained page whose chart is drawn over time with readable axes; the
CSV has one row per movement with exact decimal and base-unit amounts in separate columns;
the Koinly export follows Koinly's universal CSV layout as documented in "How to create a
custom CSV file with your data" (https://support.koinly.io/en/articles/9489976: columns
Date, Sent Amount, Sent Currency, Received Amount, Received Currency, Fee Amount, Fee
Currency, Net Worth Amount, Net Worth Currency, Label, Description, TxHash; dates
``YYYY-MM-DD HH:MM UTC``, in UTC; a negative/sent amount goes in Sent).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops import contract
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.errors import InputError
from impromptu_ops.reconcile import render
from impromptu_ops.reconcile.match import reconcile
from impromptu_ops.reconcile.model import (
    BalanceCheck,
    Discrepancy,
    Kind,
    LedgerEntry,
    Policy,
    Report,
    Totals,
)
from impromptu_ops.reconcile.prices import parse_prices
from impromptu_ops.reconcile.statement import movements

E18 = 10**18
TOKEN, WALLET, TREASURY = "0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20
SHOP = "0x" + "dd" * 20
TOTALS = Totals(earned=150 * E18 + 1, fees=-10 * E18, unvested=0, vested=140 * E18 + 1,
                paid_ledger=50 * E18, received_chain=50 * E18, received_final=50 * E18,
                pending=90 * E18 + 1)
POLICY = Policy(chain_id=8453, token=TOKEN, wallet=WALLET, vesting=timedelta(days=1))
NOW = datetime(2026, 6, 1, tzinfo=UTC)
# block 10 at 2026-03-01 12:00:00 UTC, block 20 a day later, block 30 two days later
T10 = int(datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp())
TIMES = {0: T10 - 86_400 * 60, 10: T10, 20: T10 + 86_400, 30: T10 + 2 * 86_400,
         40: T10 + 3 * 86_400}


def report(series: tuple[tuple[str, int, int], ...], found: tuple[Discrepancy, ...] = ()
           ) -> Report:
    return Report(discrepancies=found, matches=(), totals=TOTALS,
                  explanation=(("payouts into the wallet, per ledger", 50 * E18),),
                  series=series, context={"decimals": 18})


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def statement_report(entry_id: str = "p1") -> Report:
    """A credit, the fee, a payout received in block 10, a stranger's transfer in block 20
    and a spend out of the wallet in block 30."""
    entries = [
        LedgerEntry(id="e1", type="ENGAGEMENT", amount=100 * E18 + 1, token=TOKEN,
                    created_at=datetime(2026, 1, 10, 9, 30, 15, 123456, tzinfo=UTC)),
        LedgerEntry(id="fee", type="REGISTRATION_FEE", amount=-contract.REGISTRATION_FEE,
                    token=TOKEN, created_at=datetime(2026, 1, 5, tzinfo=UTC)),
        LedgerEntry(id=entry_id, type="PAYOUT", amount=56 * E18 + 1, token=TOKEN,
                    created_at=datetime(2026, 2, 28, tzinfo=UTC), tx_hash=tx(1), log_index=0,
                    chain_id=8453, to_address=WALLET)]
    received = [Transfer(10, 0, tx(1), tx(99), TOKEN, TREASURY, WALLET, 56 * E18 + 1),
                Transfer(20, 3, tx(2), tx(98), TOKEN, SHOP, WALLET, 2 * E18)]
    sent = Transfer(30, 1, tx(3), tx(97), TOKEN, WALLET, SHOP, 5 * E18)
    r = reconcile(entries, received, [], POLICY, now=NOW, final_block=35)
    context = {"decimals": 18, "symbol": "IMPRMPT", "token": TOKEN, "wallet": WALLET,
               "chainId": 8453, "chainName": "Base", "agentName": "alice",
               "agentId": "agt_1", "explorer": "https://basescan.org", "fromBlock": 0,
               "toBlock": 40, "periodStart": TIMES[0], "periodEnd": TIMES[40],
               "displayDecimals": 4, "generatedAt": NOW.isoformat()}
    balances = BalanceCheck(-1, 40, 0, 53 * E18 + 1, 58 * E18 + 1, 5 * E18)
    return dataclasses.replace(r, context=context, outgoing=(sent,), block_times=TIMES,
                               balances=balances)


def _points(page: str) -> list[list[float]]:
    return [[float(p.split(",")[0]) for p in m.split()]
            for m in re.findall(r'<polyline[^>]*points="([^"]*)"', page)]


def test_chart_x_axis_is_time_not_entry_count() -> None:
    page = render.render_html(report((("2026-01-01", E18, 0), ("2026-01-02", 2 * E18, 0),
                                      ("2026-01-31", 3 * E18, E18))))
    earned, paid = _points(page)
    assert earned == paid
    assert earned[0] == 80.0 and earned[-1] == 700.0
    # one day out of thirty: near the left edge, not in the middle
    assert abs(earned[1] - (80 + 620 / 30)) < 0.1


def test_chart_axes_are_round_numbers_and_dates() -> None:
    page = render.render_html(report((("2026-01-01", 56 * E18 + 1, 0),
                                      ("2026-03-01", 100_617_283_945_061_728_395, E18))))
    labels = re.findall(r'text-anchor="end">([^<]*)</text>', page)
    assert {"0", "50", "100", "150"} <= set(labels)
    assert "100.617283945061728395" not in page
    assert "2026-01-01</text>" in page and "2026-03-01</text>" in page


def test_nice_ticks() -> None:
    assert render.nice_ticks(Decimal("100.6")) == [Decimal(x) for x in (0, 50, 100, 150)]
    assert render.nice_ticks(Decimal("90")) == [Decimal(x) for x in (0, 25, 50, 75, 100)]
    assert render.nice_ticks(Decimal("0.003"))[-1] >= Decimal("0.003")
    assert render.nice_ticks(Decimal(0)) == [Decimal(0), Decimal(1)]


def test_a_single_day_is_still_drawn() -> None:
    page = render.render_html(report((("2026-01-01", E18, E18),)))
    assert page.count("<circle") == 2


def test_html_is_self_contained_escaped_and_links_only_to_the_explorer() -> None:
    hostile = Discrepancy(Kind.UNRECORDED_TRANSFER, "<script>alert(1)</script>", None, None,
                          0, 5, 5, 'from "<img src=x>"')
    r = dataclasses.replace(statement_report(), discrepancies=(hostile,))
    page = render.render_html(r)
    assert page.startswith("<!doctype html>") and "<svg" in page
    tags = re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)([^>]*)>", page)
    assert {name.lower() for name, _ in tags} <= {
        "html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr",
        "th", "td", "svg", "line", "polyline", "circle", "text", "tspan", "div", "span",
        "a", "dl", "dt", "dd", "code", "strong"}
    assert not any(re.search(r"\b(src|on\w+)\s*=", attrs) for _, attrs in tags)
    hrefs = re.findall(r'href="([^"]*)"', page)
    assert hrefs and all(h.startswith("https://basescan.org/") for h in hrefs)
    assert f"https://basescan.org/tx/{tx(1)}" in hrefs
    assert f"https://basescan.org/address/{SHOP}" in hrefs
    assert "@import" not in page and "url(" not in page
    assert "&lt;script&gt;" in page  # the hostile text is shown, escaped


def test_html_reads_as_a_statement() -> None:
    page = render.render_html(statement_report())
    assert "Earnings statement: alice" in page and "agt_1" in page
    assert "Base (chain id 8453)" in page and "IMPRMPT" in page
    assert "2026-01-10 09:30:15 UTC" in page and ".123456" not in page
    assert "2026-03-01 12:00:00 UTC" in page  # the payout dated by its block
    # fixed precision, grouped, right-aligned, exact value on hover
    assert '<td class="num" title="56.000000000000000001 IMPRMPT">56.0000</td>' in page
    assert '<td class="num" title="-10 IMPRMPT">-10.0000</td>' in page
    assert "balanceOf agrees" in page and "after block 40" in page
    assert render.NO_PRICES in page


def test_html_says_when_balances_were_not_checked() -> None:
    r = statement_report()
    r = dataclasses.replace(r, balances=BalanceCheck(-1, 40, None, None, 58 * E18, 5 * E18,
                                                     "not checked: the RPC has no "
                                                     "historical state"))
    page = render.render_html(r)
    assert "not checked: the RPC has no historical state" in page
    assert "balanceOf agrees" not in page


def test_no_explorer_no_links() -> None:
    r = statement_report()
    r = dataclasses.replace(r, context={**r.context, "explorer": ""})
    assert "href=" not in render.render_html(r)


def test_csv_has_one_dated_row_per_movement() -> None:
    rows = list(csv.DictReader(io.StringIO(render.render_csv(statement_report()))))
    assert list(rows[0]) == list(render.CSV_COLUMNS)
    assert [(r["date_utc"], r["type"], r["account"], r["amount_decimal"]) for r in rows] == [
        ("2026-01-05 00:00:00 UTC", "registration fee", "platform", "-10"),
        ("2026-01-10 09:30:15 UTC", "engagement credit", "platform",
         "100.000000000000000001"),
        ("2026-03-01 12:00:00 UTC", "payout", "wallet", "56.000000000000000001"),
        ("2026-03-02 12:00:00 UTC", "transfer in", "wallet", "2"),
        ("2026-03-03 12:00:00 UTC", "transfer out", "wallet", "-5")]
    payout = rows[2]
    assert payout["amount_base_units"] == str(56 * E18 + 1)
    assert payout["block"] == "10" and payout["tx_hash"] == tx(1)
    assert payout["token_symbol"] == "IMPRMPT" and payout["ledger_id"] == "p1"
    assert payout["counterparty"] == TREASURY and payout["status"] == "received"
    assert "unrecorded_transfer" in rows[3]["status"] and rows[4]["counterparty"] == SHOP
    assert all(r["fiat_value"] == "" for r in rows)


def test_movements_on_the_wallet_add_up_to_balance_of() -> None:
    r = statement_report()
    wallet = sum(m.amount for m in movements(r) if m.account == "wallet")
    assert r.balances is not None and r.balances.opening is not None and r.balances.agrees
    assert r.balances.opening + wallet == r.balances.closing


def test_the_period_limits_the_movements() -> None:
    r = statement_report()
    r = dataclasses.replace(r, context={**r.context, "fromBlock": 15, "toBlock": 25,
                                        "periodStart": TIMES[10] + 1, "periodEnd": TIMES[20]})
    assert [m.type for m in movements(r)] == ["transfer in"]


def test_prices_are_joined_by_utc_day() -> None:
    prices = parse_prices("date,price,currency\n2026-03-01,0.5,EUR\n2026-03-03,2,EUR\n")
    rows = list(csv.DictReader(io.StringIO(render.render_csv(statement_report(), prices))))
    by_type = {r["type"]: r for r in rows}
    assert by_type["payout"]["fiat_value"] == "28.00"  # 56.000...01 x 0.5
    assert by_type["payout"]["fiat_currency"] == "EUR"
    assert by_type["transfer out"]["fiat_value"] == "-10.00"
    assert by_type["transfer in"]["fiat_value"] == ""  # 2026-03-02 has no price
    page = render.render_html(statement_report(), prices)
    assert "no price for" in page and "2026-03-02" in page and "value (EUR)" in page


def test_koinly_universal_layout() -> None:
    prices = parse_prices("date,USD\n2026-03-01,1.25\n")
    text = render.render_koinly(statement_report(), prices)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(render.KOINLY_COLUMNS)
    assert len(rows) == 3  # the wallet's on-chain movements only
    payout, gift, spend = rows
    assert payout["Date"] == "2026-03-01 12:00 UTC"
    assert payout["Received Amount"] == "56.000000000000000001"
    assert payout["Received Currency"] == "IMPRMPT" and payout["Sent Amount"] == ""
    assert payout["Label"] == "income" and payout["TxHash"] == tx(1)
    assert payout["Net Worth Amount"] == "70.00" and payout["Net Worth Currency"] == "USD"
    assert gift["Label"] == "" and gift["Received Amount"] == "2"
    assert spend["Sent Amount"] == "5" and spend["Sent Currency"] == "IMPRMPT"
    assert spend["Received Amount"] == "" and spend["Net Worth Amount"] == ""


@pytest.mark.parametrize("text", [
    "", "day,price\n2026-01-01,1\n", "date,price,currency\n2026-01-01,1e3,EUR\n",
    "date,price,currency\n2026-01-01,1,EUR\n2026-01-02,1,USD\n",
    "date,EUR\n2026-01-01,1\n2026-01-01,2\n", "date,EUR\n01/02/2026,1\n",
    "date,EUR\n2026-01-01,-1\n", "date,EUR\n2026-01-01,1,2\n", "date,EUR\n"])
def test_bad_price_files_are_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_prices(text)


def test_machine_formats_keep_exact_base_units() -> None:
    r = statement_report()
    doc = json.loads(render.render_json(r))
    assert doc["totals"]["earned"] == str(100 * E18 + 1)
    assert doc["totalsFormatted"]["earned"] == "100.000000000000000001"
    assert doc["matches"][0]["date"] == "2026-03-01 12:00:00 UTC"
    assert doc["balances"]["agrees"] is True
    rows = list(csv.DictReader(io.StringIO(render.render_csv(r))))
    assert rows and all("e" not in r["amount_base_units"].lower() for r in rows)


def test_csv_text_cells_cannot_become_formulas() -> None:
    r = statement_report(entry_id='=HYPERLINK("http://x","y")')
    for text in (render.render_csv(r), render.render_koinly(r)):
        cells = [c for row in csv.reader(io.StringIO(text)) for c in row]
        assert not any(c[:1] in ("=", "+", "@") for c in cells)
    assert '\'=HYPERLINK(""http://x"",""y"")' in render.render_csv(r)
    rows = list(csv.DictReader(io.StringIO(render.render_csv(r))))
    fee = next(row for row in rows if row["type"] == "registration fee")
    assert fee["amount_base_units"] == str(-10 * E18)  # numbers intact


def test_text_table_names_and_groups() -> None:
    text = render.render_table(statement_report())
    assert "alice (agt_1)" in text and "Base (chain id 8453)" in text
    assert "IMPRMPT" in text
    assert "100.000000000000000001" in text and "balanceOf agrees" in text
    # dates for the period, blocks beside them
    assert f"{datetime.fromtimestamp(TIMES[0], UTC):%Y-%m-%d %H:%M:%S} UTC" in text
    assert "(blocks 0 to 40)" in text
    assert "-90.000000000000000001" not in text  # no sign flips: payouts name their account


def test_grouping() -> None:
    assert render.grouped(1_234_567 * E18 + 1, 18) == "1,234,567.000000000000000001"
    assert render.shown(-1_234_567 * E18 - 6 * 10**13, 18, 4) == "-1,234,567.0001"
    assert render.shown(5 * 10**13, 18, 4) == "0.0000"  # half to even


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_price_files_parse_or_refuse_in_one_error(text: str) -> None:
    try:
        prices = parse_prices(text)
    except InputError as exc:
        assert "\n" not in exc.message
        return
    assert prices.by_day and prices.currency.isalpha()


def test_findings_are_dated() -> None:
    entries = [LedgerEntry(id="p9", type="PAYOUT", amount=E18, token=TOKEN,
                           created_at=datetime(2026, 2, 1, 8, 0, 0, 999, tzinfo=UTC),
                           tx_hash=tx(9), log_index=0, chain_id=8453, to_address=WALLET)]
    stranger = Transfer(20, 3, tx(2), tx(98), TOKEN, SHOP, WALLET, 2 * E18)
    r = reconcile(entries, [stranger], [], POLICY, now=NOW, final_block=35)
    r = dataclasses.replace(r, block_times=TIMES, context=statement_report().context)
    dates = dict(zip((x.kind for x in r.discrepancies), render.finding_dates(r), strict=True))
    assert dates[Kind.PAYOUT_MISSING_ON_CHAIN] == "2026-02-01 08:00:00 UTC"
    assert dates[Kind.UNRECORDED_TRANSFER] == "2026-03-02 12:00:00 UTC"
    doc = json.loads(render.render_json(r))
    assert {d["date"] for d in doc["discrepancies"]} == set(dates.values())
    assert "2026-03-02 12:00:00 UTC" in render.render_html(r)


def test_a_payout_to_another_address_is_not_a_wallet_movement() -> None:
    entries = [LedgerEntry(id="p1", type="PAYOUT", amount=E18, token=TOKEN,
                           created_at=datetime(2026, 2, 28, tzinfo=UTC), tx_hash=tx(1),
                           log_index=0, chain_id=8453, to_address=WALLET)]
    elsewhere = Transfer(10, 0, tx(1), tx(99), TOKEN, TREASURY, SHOP, E18)
    r = reconcile(entries, [elsewhere], [], POLICY, now=NOW, final_block=35)
    r = dataclasses.replace(r, block_times=TIMES, context=statement_report().context)
    (row,) = movements(r)
    assert row.account == "ledger only" and "not received" in row.status
    assert "(payout_to_other_address)" in row.status
    assert render.render_koinly(r).count("\n") == 1  # the header only
