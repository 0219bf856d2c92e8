"""The pure reconciliation core: one scenario per discrepancy class, exact sums, properties."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops import contract
from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.errors import MalformedResponse
from impromptu_ops.reconcile.match import (
    PAYOUTS_INTO_WALLET,
    in_referral_window,
    reconcile,
    referral_credit,
)
from impromptu_ops.reconcile.model import (
    Kind,
    LedgerEntry,
    Policy,
    Referral,
    Report,
    parse_entry,
)

TOKEN = "0x" + "aa" * 20
OTHER_TOKEN = "0x" + "ab" * 20
WALLET = "0x" + "bb" * 20
TREASURY = "0x" + "cc" * 20
STRANGER = "0x" + "dd" * 20
NOW = datetime(2026, 6, 1, tzinfo=UTC)
T0 = NOW - timedelta(days=200)
E18 = 10**18
POLICY = Policy(chain_id=8453, token=TOKEN, wallet=WALLET,
                payout_senders=frozenset({TREASURY}))


def tx(n: int) -> str:
    return "0x" + f"{n:064x}"


def credit(i: int, amount: int, when: datetime) -> LedgerEntry:
    return LedgerEntry(id=f"e{i}", type="ENGAGEMENT", amount=amount, token=TOKEN,
                       created_at=when)


def payout(i: int, amount: int, when: datetime, n: int, *, log_index: int | None = 0,
           to: str = WALLET, chain_id: int = 8453) -> LedgerEntry:
    return LedgerEntry(id=f"p{i}", type="PAYOUT", amount=amount, token=TOKEN, created_at=when,
                       tx_hash=tx(n), log_index=log_index, chain_id=chain_id, to_address=to)


def transfer(n: int, amount: int, *, block: int = 10, log_index: int = 0, token: str = TOKEN,
             sender: str = TREASURY, to: str = WALLET) -> Transfer:
    return Transfer(block_number=block, log_index=log_index, tx_hash=tx(n),
                    block_hash=tx(10_000 + block), token=token, sender=sender, recipient=to,
                    amount=amount)


def referral(i: int, base: int, when: datetime, referee: str = "agt_r",
             amount: int | None = None) -> LedgerEntry:
    return LedgerEntry(id=f"r{i}", type="REFERRAL",
                       amount=referral_credit(base, POLICY) if amount is None else amount,
                       token=TOKEN, created_at=when, referee_agent_id=referee,
                       referee_registered_at=T0, base_entry_id=f"b{i}", base_amount=base)


REFERRALS = [Referral("agt_r", T0)]


def clean() -> tuple[list[LedgerEntry], list[Transfer]]:
    entries = [
        credit(1, 100 * E18 + 1, T0),
        credit(2, 50 * E18, T0 + timedelta(days=1)),
        referral(1, 12_345_678_901_234_567_891, T0 + timedelta(days=2)),
        LedgerEntry(id="fee", type="REGISTRATION_FEE", amount=-contract.REGISTRATION_FEE,
                    token=TOKEN, created_at=T0),
        payout(1, 90 * E18 + 1, T0 + timedelta(days=70), 1),
        credit(3, 7, NOW - timedelta(days=5)),  # not vested yet
    ]
    return entries, [transfer(1, 90 * E18 + 1)]


def run(entries: list[LedgerEntry], transfers: list[Transfer], *, final_block: int = 100,
        reorged: dict[tuple[str, int], Transfer] | None = None) -> Report:
    return reconcile(entries, transfers, REFERRALS, POLICY, now=NOW, final_block=final_block,
                     reorged=reorged)


def assert_identities(report: Report) -> None:
    t = report.totals
    effects = sum(d.chain_effect for d in report.discrepancies)
    assert t.paid_ledger + effects == t.received_chain
    assert t.earned + t.fees - t.unvested == t.vested
    assert t.vested - t.paid_ledger == t.pending
    # the explanation's last block sums exactly
    lines = list(report.explanation)
    start = max(i for i, (label, _) in enumerate(lines) if label == PAYOUTS_INTO_WALLET)
    assert sum(v for _, v in lines[start:-1]) == lines[-1][1]


def test_clean_scenario_reconciles_exactly_to_the_wei() -> None:
    entries, transfers = clean()
    report = run(entries, transfers)
    assert report.reconciled, report.discrepancies
    t = report.totals
    ref = referral_credit(12_345_678_901_234_567_891, POLICY)
    assert ref == 617_283_945_061_728_394  # floor(5%), exact
    assert t.earned == 150 * E18 + 1 + ref + 7
    assert t.unvested == 7
    assert t.fees == -10 * E18
    assert t.vested == 140 * E18 + 1 + ref
    assert t.paid_ledger == t.received_chain == 90 * E18 + 1
    assert t.pending == 50 * E18 + ref
    assert [m.entry_id for m in report.matches] == ["p1"]
    assert_identities(report)


def scenario(kind: Kind) -> tuple[list[LedgerEntry], list[Transfer], dict[str, Any]]:
    entries, transfers = clean()
    extra: dict[str, Any] = {}
    day = T0 + timedelta(days=80)
    if kind is Kind.PAYOUT_MISSING_ON_CHAIN:
        entries.append(payout(2, E18, day, 2))
    elif kind is Kind.AMOUNT_MISMATCH:
        entries.append(payout(2, E18, day, 2))
        transfers.append(transfer(2, E18 - 1, block=11))
    elif kind is Kind.UNEXPECTED_SENDER:
        entries.append(payout(2, E18, day, 2))
        transfers.append(transfer(2, E18, block=11, sender=STRANGER))
    elif kind is Kind.UNEXPECTED_TOKEN:
        entries.append(payout(2, E18, day, 2))
        transfers.append(transfer(2, E18, block=11, token=OTHER_TOKEN))
    elif kind is Kind.WRONG_CHAIN:
        entries.append(payout(2, E18, day, 2, chain_id=1))
    elif kind is Kind.DUPLICATE_PAYOUT:
        entries.append(payout(2, 90 * E18 + 1, day, 1))
    elif kind is Kind.UNRECORDED_TRANSFER:
        transfers.append(transfer(3, 5 * E18, block=12))
    elif kind is Kind.PAYOUT_TO_OTHER_ADDRESS:
        entries.append(payout(2, E18, day, 2, to=STRANGER))
        transfers.append(transfer(2, E18, block=11, to=STRANGER))
    elif kind is Kind.UNVESTED_PAYOUT:
        entries.append(payout(2, 60 * E18, T0 + timedelta(days=71), 2))
        transfers.append(transfer(2, 60 * E18, block=11))
    elif kind is Kind.REGISTRATION_FEE_MISMATCH:
        entries = [dataclasses.replace(e, amount=-9 * E18) if e.id == "fee" else e
                   for e in entries]
    elif kind is Kind.REFERRAL_AMOUNT_MISMATCH:
        entries.append(referral(2, 1000, T0 + timedelta(days=3), amount=60))
    elif kind is Kind.REFERRAL_ROUNDING:
        # the platform rounded on the running total: 19+19+19 -> credits 0, 1, 1 (not 0, 0, 0)
        for i, amount in ((10, 0), (11, 1), (12, 1)):
            entries.append(LedgerEntry(id=f"r{i}", type="REFERRAL", amount=amount, token=TOKEN,
                                       created_at=T0 + timedelta(days=i),
                                       referee_agent_id="agt_s", referee_registered_at=T0,
                                       base_entry_id=f"b{i}", base_amount=19 + (i == 12) * 2))
        extra["referrals"] = [*REFERRALS, Referral("agt_s", T0)]
    elif kind is Kind.REFERRAL_OUTSIDE_WINDOW:
        entries.append(referral(3, 1000, T0 + timedelta(days=365)))
    elif kind is Kind.REFERRAL_UNKNOWN_REFEREE:
        entries.append(referral(4, 1000, T0 + timedelta(days=3), referee="agt_unknown"))
    elif kind is Kind.REORGED_TRANSFER:
        entries.append(payout(2, E18, day, 2))
        gone = transfer(2, E18, block=11)
        extra["reorged"] = {gone.key: gone}
    return entries, transfers, extra


@pytest.mark.parametrize("kind", list(Kind), ids=lambda k: k.value)
def test_each_discrepancy_class_is_found_and_named(kind: Kind) -> None:
    entries, transfers, extra = scenario(kind)
    report = reconcile(entries, transfers, extra.get("referrals", REFERRALS), POLICY,
                       now=NOW, final_block=100, reorged=extra.get("reorged"))
    assert kind in report.kinds(), report.discrepancies
    assert not report.reconciled
    assert_identities(report)


def test_discrepancy_specifics() -> None:
    entries, transfers, _ = scenario(Kind.AMOUNT_MISMATCH)
    (d,) = run(entries, transfers).discrepancies
    assert (d.entry_id, d.expected, d.actual, d.tx_hash) == ("p2", E18, E18 - 1, tx(2))
    entries, transfers, extra = scenario(Kind.REORGED_TRANSFER)
    report = run(entries, transfers, reorged=extra["reorged"])
    assert report.kinds() == {Kind.REORGED_TRANSFER}  # not also "missing"
    entries, transfers, _ = scenario(Kind.UNVESTED_PAYOUT)
    (d,) = run(entries, transfers).discrepancies
    assert d.entry_id == "p2" and d.actual == 60 * E18
    assert d.expected == 150 * E18 + 1 + referral_credit(12_345_678_901_234_567_891, POLICY) \
        - 10 * E18 - (90 * E18 + 1)


def test_rounding_is_separate_from_wrong_amounts() -> None:
    entries, transfers, extra = scenario(Kind.REFERRAL_ROUNDING)
    report = reconcile(entries, transfers, extra["referrals"], POLICY, now=NOW, final_block=100)
    assert report.kinds() == {Kind.REFERRAL_ROUNDING}
    entries, transfers, _ = scenario(Kind.REFERRAL_AMOUNT_MISMATCH)
    assert run(entries, transfers).kinds() == {Kind.REFERRAL_AMOUNT_MISMATCH}


def test_referral_window_is_utc_half_open() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=365)
    assert in_referral_window(start, start, POLICY)
    assert in_referral_window(end - timedelta(microseconds=1), start, POLICY)
    assert not in_referral_window(end, start, POLICY)
    assert not in_referral_window(start - timedelta(microseconds=1), start, POLICY)
    # the same instant written in another zone is the same instant
    other = datetime.fromisoformat("2025-12-31T19:00:00-05:00")
    assert not in_referral_window(other, start, POLICY)


def test_provisional_matches_are_reported_not_failed() -> None:
    entries, transfers = clean()
    report = run(entries, transfers, final_block=5)
    assert report.reconciled
    assert report.matches[0].provisional
    assert report.totals.received_final == 0


# --- properties -----------------------------------------------------------------------
amounts = st.integers(min_value=1, max_value=10**30)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[LedgerEntry], list[Transfer]]:
    entries: list[LedgerEntry] = []
    transfers: list[Transfer] = []
    for i in range(draw(st.integers(0, 6))):
        entries.append(credit(i, draw(amounts), T0 + timedelta(days=draw(st.integers(0, 190)))))
    if draw(st.booleans()):
        entries.append(LedgerEntry(id="fee", type="REGISTRATION_FEE", token=TOKEN,
                                   amount=-draw(st.integers(0, 20 * E18)), created_at=T0))
    for i in range(draw(st.integers(0, 8))):
        n = draw(st.integers(1, 6))  # small tx space: duplicates and collisions happen
        entries.append(payout(i, draw(amounts), T0 + timedelta(days=draw(st.integers(0, 199))),
                              n, log_index=draw(st.sampled_from([0, 1, None])),
                              to=draw(st.sampled_from([WALLET, WALLET, STRANGER]))))
    for _ in range(draw(st.integers(0, 8))):
        transfers.append(transfer(draw(st.integers(1, 8)), draw(amounts),
                                  block=draw(st.integers(1, 200)),
                                  log_index=draw(st.integers(0, 1)),
                                  token=draw(st.sampled_from([TOKEN, TOKEN, OTHER_TOKEN])),
                                  sender=draw(st.sampled_from([TREASURY, STRANGER])),
                                  to=draw(st.sampled_from([WALLET, WALLET, STRANGER]))))
    return entries, transfers


@settings(max_examples=300, deadline=None)
@given(worlds(), st.integers(0, 200))
def test_sums_are_exact_and_every_payout_is_accounted_once(
        world: tuple[list[LedgerEntry], list[Transfer]], final_block: int) -> None:
    entries, transfers = world
    report = run(entries, transfers, final_block=final_block)
    assert_identities(report)
    payouts = {e.id for e in entries if e.type == "PAYOUT"}
    matched = {m.entry_id for m in report.matches}
    unmatched_kinds = {Kind.PAYOUT_MISSING_ON_CHAIN, Kind.DUPLICATE_PAYOUT, Kind.WRONG_CHAIN,
                       Kind.REORGED_TRANSFER}
    unmatched = {d.entry_id for d in report.discrepancies if d.kind in unmatched_kinds}
    assert not matched & unmatched  # no entry both matched and missing
    assert matched | unmatched == payouts
    assert len(matched) == len(report.matches)  # one match per entry
    keys = [(m.tx_hash, m.log_index) for m in report.matches]
    assert len(keys) == len(set(keys))  # one transfer pays one entry
    assert report.reconciled == (not report.discrepancies)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**40))
def test_referral_credit_is_the_floor_of_five_percent(base: int) -> None:
    credit_ = referral_credit(base, POLICY)
    assert credit_ * 10_000 <= base * 500 < (credit_ + 1) * 10_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=6),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "type", "amount", "token", "createdAt", "txHash",
                                        "toAddress", "chainId", "logIndex", "baseAmount",
                                        "refereeAgentId", "refereeRegisteredAt", "vestsAt"]),
                       json_values) | json_values)
def test_hostile_ledger_entries_are_refused_cleanly(raw: Any) -> None:
    try:
        entry = parse_entry(raw)
    except MalformedResponse:
        return
    assert isinstance(entry.amount, int)


def test_amounts_must_be_integer_strings() -> None:
    base = {"id": "x", "type": "ENGAGEMENT", "token": TOKEN,
            "createdAt": "2026-01-01T00:00:00Z"}
    assert parse_entry({**base, "amount": "1000000000000000000000001"}).amount == 10**24 + 1
    for bad in (1.5, "1e18", True, "0x10", None):
        with pytest.raises(MalformedResponse):
            parse_entry({**base, "amount": bad})
    with pytest.raises(MalformedResponse):
        parse_entry({**base, "amount": "1", "createdAt": "2026-01-01T00:00:00"})  # no zone


@pytest.mark.parametrize(("field", "value"), [
    ("id", "led_\x1b[2J\x1b[Hall good"),
    ("id", "x" * 201),
    ("token", "0x\x1b]0;pwned\x07"),
    ("nodeId", "node\r\nRECONCILED"),
    ("refereeAgentId", "agt_\u202eevil"),
])
def test_ids_that_would_rewrite_a_terminal_are_refused(field: str, value: str) -> None:
    raw = {"id": "r1", "type": "REFERRAL", "amount": "5", "token": TOKEN,
           "createdAt": "2026-01-02T00:00:00Z", "refereeAgentId": "agt_r",
           "refereeRegisteredAt": "2026-01-01T00:00:00Z", "baseAmount": "100",
           "nodeId": "n1"}
    if field == "nodeId":
        raw["type"] = "ENGAGEMENT"
    with pytest.raises(MalformedResponse):
        parse_entry({**raw, field: value})
    from impromptu_ops.reconcile.model import parse_referral
    with pytest.raises(MalformedResponse):
        parse_referral({"agentId": "agt\x1b[31m", "registeredAt": "2026-01-01T00:00:00Z"})
