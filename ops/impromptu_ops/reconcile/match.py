"""Private: The pure reconciliation: ledger + transfers + referrals + policy -> a Report.

This module owns the arithmetic and the rules, and nothing else: no I/O, no clock (``now``
is an argument), no chain access. Every amount is an ``int`` of base units.

Rules (contract §6 and the issue):

- each PAYOUT is matched to a transfer by tx hash and log index (log index optional
  [ours]: when absent, the transaction's transfer of our token to our wallet, if any);
- a transfer can pay one PAYOUT only (a second claim is a duplicate payout);
- a PAYOUT must be on our chain, of our token, from an expected sender, to our wallet, for
  the recorded amount, and covered by vested earnings when it was made;
- every transfer of our token to our wallet needs a PAYOUT;
- vesting: earned credits (ENGAGEMENT, REFERRAL) vest ``VESTING_DAYS`` after ``createdAt``;
  the registration fee reduces what is available at once;
- REGISTRATION_FEE must equal minus the documented fee;
- REFERRAL credit = floor(baseAmount * REFERRAL_BPS / BPS_DENOMINATOR) per event, inside
  ``[registeredAt, registeredAt + 365 days)`` (UTC, half-open). Credits that differ from the
  per-event floor by at most 1 each while the referee's total equals the floor of the total
  are classed as *rounding* (the platform rounded on totals), not as wrong amounts.

The explanation lines are exact: ``paid per ledger + sum(chain_effect) == received on
chain``, and ``earned + fees - unvested == vested``, ``vested - paid == pending``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from impromptu_ops.chain.erc20 import Transfer
from impromptu_ops.reconcile.model import (
    Discrepancy,
    Kind,
    LedgerEntry,
    Match,
    Policy,
    Referral,
    Report,
    Totals,
    title,
)

CREDIT_TYPES = ("ENGAGEMENT", "REFERRAL")
PAYOUTS_INTO_WALLET = "payouts into the wallet, per ledger"  # first line of the 2nd part


def referral_credit(base_amount: int, policy: Policy) -> int:
    """The documented credit for one base earning: floor(5% of base)."""
    return base_amount * policy.referral_bps // policy.bps_denominator


def in_referral_window(created: datetime, registered: datetime, policy: Policy) -> bool:
    """UTC, half-open: ``registered <= created < registered + window``."""
    return registered <= created < registered + policy.referral_window


def vest_time(entry: LedgerEntry, policy: Policy) -> datetime:
    return entry.created_at + policy.vesting


def _d(kind: Kind, entry: LedgerEntry | None, detail: str, *, tx: Transfer | None = None,
       expected: int | None = None, actual: int | None = None, effect: int = 0,
       tx_hash: str | None = None) -> Discrepancy:
    fallback = tx_hash or (entry.tx_hash if entry else None)
    return Discrepancy(kind=kind, entry_id=entry.id if entry else None,
                       tx_hash=tx.tx_hash if tx else fallback,
                       log_index=tx.log_index if tx else (entry.log_index if entry else None),
                       expected=expected, actual=actual, chain_effect=effect, detail=detail)


def _find_transfer(entry: LedgerEntry, by_key: Mapping[tuple[str, int], Transfer],
                   by_tx: Mapping[str, list[Transfer]], policy: Policy) -> Transfer | None:
    assert entry.tx_hash is not None
    if entry.log_index is not None:
        return by_key.get((entry.tx_hash, entry.log_index))
    candidates = by_tx.get(entry.tx_hash, [])
    for t in candidates:
        if t.token == policy.token and t.recipient == policy.wallet:
            return t
    return candidates[0] if candidates else None


def _payouts(entries: Sequence[LedgerEntry], transfers: Iterable[Transfer],
             reorged: Mapping[tuple[str, int], Transfer], policy: Policy,
             final_block: int) -> tuple[list[Discrepancy], list[Match], int]:
    by_key: dict[tuple[str, int], Transfer] = {}
    for x in transfers:
        by_key.setdefault(x.key, x)
    by_tx: dict[str, list[Transfer]] = defaultdict(list)
    for x in sorted(by_key.values()):
        by_tx[x.tx_hash].append(x)
    reorged_by_tx: dict[str, Transfer] = {x.tx_hash: x for x in reorged.values()}
    found: list[Discrepancy] = []
    matches: list[Match] = []
    claimed: dict[tuple[str, int], str] = {}
    payouts = sorted((e for e in entries if e.type == "PAYOUT"),
                     key=lambda e: (e.created_at, e.id))
    for p in payouts:
        if p.chain_id is not None and p.chain_id != policy.chain_id:
            found.append(_d(Kind.WRONG_CHAIN, p, f"payout recorded on chain {p.chain_id}, "
                            f"expected {policy.chain_id}", expected=p.amount, actual=0,
                            effect=-p.amount))
            continue
        t = _find_transfer(p, by_key, by_tx, policy)
        if t is None:
            gone: Transfer | None = (
                reorged.get((p.tx_hash or "", p.log_index)) if p.log_index is not None
                else reorged_by_tx.get(p.tx_hash or ""))
            if gone is not None:
                found.append(_d(Kind.REORGED_TRANSFER, p, f"transfer seen in block "
                                f"{gone.block_number} was reorged out of the chain", tx=gone,
                                expected=p.amount, actual=0, effect=-p.amount))
            else:
                found.append(_d(Kind.PAYOUT_MISSING_ON_CHAIN, p, "no such transfer on chain",
                                expected=p.amount, actual=0, effect=-p.amount))
            if p.to_address != policy.wallet:
                found.append(_d(Kind.PAYOUT_TO_OTHER_ADDRESS, p,
                                f"ledger pays {p.to_address}, not the agent's wallet"))
            continue
        if t.key in claimed:
            found.append(_d(Kind.DUPLICATE_PAYOUT, p, f"transfer already pays entry "
                            f"{claimed[t.key]}", tx=t, expected=0, actual=p.amount,
                            effect=-p.amount))
            continue
        claimed[t.key] = p.id
        counted = t.token == policy.token and t.recipient == policy.wallet
        effect_left = -p.amount if not counted else 0
        if p.to_address != policy.wallet or t.recipient != policy.wallet:
            found.append(_d(Kind.PAYOUT_TO_OTHER_ADDRESS, p,
                            f"paid to {t.recipient} (ledger says {p.to_address}), not the "
                            "agent's wallet", tx=t, effect=effect_left))
            effect_left = 0
        if t.token != policy.token:
            found.append(_d(Kind.UNEXPECTED_TOKEN, p, f"paid in token {t.token}, not "
                            f"{policy.token}", tx=t, effect=effect_left))
            effect_left = 0
        if policy.payout_senders is not None and t.sender not in policy.payout_senders:
            found.append(_d(Kind.UNEXPECTED_SENDER, p, f"sent by {t.sender}, not an expected "
                            "payout address", tx=t))
        if t.amount != p.amount:
            found.append(_d(Kind.AMOUNT_MISMATCH, p, "on-chain amount differs from the ledger",
                            tx=t, expected=p.amount, actual=t.amount,
                            effect=(t.amount - p.amount) if counted else 0))
        matches.append(Match(entry_id=p.id, tx_hash=t.tx_hash, log_index=t.log_index,
                             amount=t.amount, block_number=t.block_number,
                             provisional=t.block_number > final_block))
    received = 0
    for x in sorted(by_key.values()):
        if x.token != policy.token or x.recipient != policy.wallet:
            continue
        received += x.amount
        if x.key not in claimed:
            found.append(_d(Kind.UNRECORDED_TRANSFER, None, f"transfer in block "
                            f"{x.block_number} from {x.sender} has no ledger entry", tx=x,
                            expected=0, actual=x.amount, effect=x.amount))
    return found, matches, received


def _vesting(entries: Sequence[LedgerEntry], policy: Policy,
             skip: set[str]) -> list[Discrepancy]:
    """Walk time forwards: a payout may not exceed what had vested (net of fees) by then.

    ``skip``: payouts already reported as duplicates of another entry's transfer; they moved
    no money, so counting them again would report one fault twice.
    """
    events: list[tuple[datetime, int, LedgerEntry]] = []  # (when, order, entry)
    for e in entries:
        if e.id in skip:
            continue
        if e.type in CREDIT_TYPES:
            events.append((vest_time(e, policy), 0, e))
        elif e.type == "REGISTRATION_FEE":
            events.append((e.created_at, 1, e))
        elif e.type == "PAYOUT":
            events.append((e.created_at, 2, e))
    found: list[Discrepancy] = []
    available = 0
    for _, _, e in sorted(events, key=lambda x: (x[0], x[1], x[2].id)):
        if e.type == "PAYOUT":
            if e.amount > available:
                found.append(_d(Kind.UNVESTED_PAYOUT, e, "payout exceeds the earnings vested "
                                f"by {e.created_at.isoformat()}", expected=max(available, 0),
                                actual=e.amount))
            available -= e.amount
        else:
            available += e.amount
    return found


def _fees(entries: Sequence[LedgerEntry], policy: Policy) -> list[Discrepancy]:
    found: list[Discrepancy] = []
    fees = [e for e in entries if e.type == "REGISTRATION_FEE"]
    for i, e in enumerate(sorted(fees, key=lambda e: (e.created_at, e.id))):
        expected = -policy.registration_fee if i == 0 else 0
        if e.amount != expected:
            why = "withheld fee differs from the documented fee" if i == 0 \
                else "a second registration fee"
            found.append(_d(Kind.REGISTRATION_FEE_MISMATCH, e, why, expected=expected,
                            actual=e.amount))
    return found


def _referrals(entries: Sequence[LedgerEntry], referrals: Sequence[Referral],
               policy: Policy) -> list[Discrepancy]:
    registered = {r.agent_id: r.registered_at for r in referrals}
    found: list[Discrepancy] = []
    in_window: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in sorted((e for e in entries if e.type == "REFERRAL"),
                    key=lambda e: (e.created_at, e.id)):
        referee = e.referee_agent_id or ""
        start = registered.get(referee)
        if start is None:
            found.append(_d(Kind.REFERRAL_UNKNOWN_REFEREE, e, f"referee {referee} is not in "
                            "the agent's referrals"))
            start = e.referee_registered_at
        assert start is not None
        if not in_referral_window(e.created_at, start, policy):
            found.append(_d(Kind.REFERRAL_OUTSIDE_WINDOW, e, f"credited "
                            f"{e.created_at.isoformat()}, outside the first year from "
                            f"{start.isoformat()}", expected=0, actual=e.amount))
            continue
        in_window[referee].append(e)
    for group in in_window.values():
        wrong = [e for e in group if e.amount != referral_credit(e.base_amount or 0, policy)]
        if not wrong:
            continue
        total_base = sum(e.base_amount or 0 for e in group)
        total_credit = sum(e.amount for e in group)
        rounding = total_credit == referral_credit(total_base, policy) and all(
            abs(e.amount - referral_credit(e.base_amount or 0, policy)) <= 1 for e in wrong)
        for e in wrong:
            expected = referral_credit(e.base_amount or 0, policy)
            if rounding:
                found.append(_d(Kind.REFERRAL_ROUNDING, e, "credit rounded on the referee's "
                                "running total, not per event", expected=expected,
                                actual=e.amount))
            else:
                found.append(_d(Kind.REFERRAL_AMOUNT_MISMATCH, e, f"credit is not floor("
                                f"{policy.referral_bps}/{policy.bps_denominator} of "
                                f"{e.base_amount})", expected=expected, actual=e.amount))
    return found


def _series(entries: Sequence[LedgerEntry]) -> tuple[tuple[str, int, int], ...]:
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in entries:
        day = e.created_at.date().isoformat()
        if e.type in CREDIT_TYPES:
            by_day[day][0] += e.amount
        elif e.type == "PAYOUT":
            by_day[day][1] += e.amount
    out: list[tuple[str, int, int]] = []
    earned = paid = 0
    for day in sorted(by_day):
        earned += by_day[day][0]
        paid += by_day[day][1]
        out.append((day, earned, paid))
    return tuple(out)


def reconcile(entries: Sequence[LedgerEntry], transfers: Iterable[Transfer],
              referrals: Sequence[Referral], policy: Policy, *, now: datetime,
              final_block: int, reorged: Mapping[tuple[str, int], Transfer] | None = None,
              context: Mapping[str, object] | None = None) -> Report:
    """Reconcile the ledger against the chain.

    Args:
        entries: the whole ledger (all types).
        transfers: ERC-20 transfers seen on chain: those of any token to the wallet in the
            scanned range, plus those in the transactions the payouts name.
        referrals: the agent's referees and their registration times.
        policy: chain, token, wallet, fee and rules.
        now: the time at which vesting is judged.
        final_block: matches above this block are provisional.
        reorged: transfers seen earlier whose block was since replaced, by key.
        context: extra facts to carry into the report (range scanned, decimals...).
    """
    seen = list(transfers)
    found, matches, received = _payouts(entries, seen, reorged or {}, policy, final_block)
    received_final = sum(t.amount for t in {t.key: t for t in seen}.values()
                         if t.token == policy.token and t.recipient == policy.wallet
                         and t.block_number <= final_block)
    found += _vesting(entries, policy, {d.entry_id for d in found
                                        if d.kind is Kind.DUPLICATE_PAYOUT and d.entry_id})
    found += _fees(entries, policy)
    found += _referrals(entries, referrals, policy)
    credits = [e for e in entries if e.type in CREDIT_TYPES]
    earned = sum(e.amount for e in credits)
    unvested = sum(e.amount for e in credits if vest_time(e, policy) > now)
    fees = sum(e.amount for e in entries if e.type == "REGISTRATION_FEE")
    paid = sum(e.amount for e in entries if e.type == "PAYOUT")
    vested = earned - unvested + fees
    totals = Totals(earned=earned, fees=fees, unvested=unvested, vested=vested,
                    paid_ledger=paid, received_chain=received,
                    received_final=received_final, pending=vested - paid)
    # Signs: each part is one account, and + adds to that account's balance, - takes from
    # it. A payout leaves the platform balance (-) and arrives in the wallet (+): the two
    # lines name their account so the same payout never reads as a sign flip.
    explanation: list[tuple[str, int]] = [
        ("earned (engagement + referral credits)", earned),
        ("registration fee withheld", fees),
        ("not yet vested", -unvested),
        ("= vested", vested),
        ("paid out to the wallet, per ledger", -paid),
        ("= pending (vested, not yet paid)", vested - paid),
        (PAYOUTS_INTO_WALLET, paid),
    ]
    for d in found:
        if d.chain_effect:
            label = f"{title(d.kind)} {d.entry_id or ''} ({d.kind.value})".replace("  ", " ")
            explanation.append((label, d.chain_effect))
    explanation.append(("= received on chain (token to wallet)", received))
    order = {k: i for i, k in enumerate(Kind)}
    found.sort(key=lambda d: (order[d.kind], d.entry_id or "", d.tx_hash or ""))
    return Report(discrepancies=tuple(found), matches=tuple(matches), totals=totals,
                  explanation=tuple(explanation), series=_series(entries),
                  context=dict(context or {}), entries=tuple(entries),
                  transfers=tuple(sorted({t.key: t for t in seen}.values())))

