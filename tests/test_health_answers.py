"""health's cheap answer readers agree with the platform client's tolerant parsers."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.health.answers import (
    HeartbeatFields,
    days_until_key_expiry,
    health_status,
    openrouter_credit,
)
from impromptu_ops.platform.fields import Reader
from impromptu_ops.platform.results import (
    parse_health,
    parse_heartbeat,
    parse_security_status,
)

values = st.one_of(st.none(), st.booleans(), st.integers(-(2**60), 2**60),
                   st.floats(allow_nan=False), st.text(max_size=6), st.just([]), st.just({}))
OURS = ("agentId", "name", "tier", "budgetBalance", "unreadNotifications")
heartbeats = st.one_of(
    st.dictionaries(st.sampled_from([*OURS, "reputation", "tokenBalance", "x"]), values),
    values)


@given(heartbeats)
def test_heartbeat_matches_the_client(doc: Any) -> None:
    ours, theirs = HeartbeatFields(doc), parse_heartbeat(doc)
    assert (ours.agent_id, ours.name, ours.tier, ours.budget_balance,
            ours.unread_notifications) == (theirs.agent_id, theirs.name, theirs.tier,
                                           theirs.budget_balance, theirs.unread_notifications)
    relevant = [p for p in theirs.problems
                if p == "heartbeat: not an object" or p.split(":")[0].split(".")[-1] in OURS]
    assert list(ours.problems) == relevant


@given(st.one_of(st.dictionaries(st.sampled_from(["status", "x"]), values), values))
def test_health_matches_the_client(doc: Any) -> None:
    assert health_status(doc) == parse_health(doc).status


@given(st.one_of(st.dictionaries(st.sampled_from(["daysUntilKeyExpiry", "warnings"]), values),
                 values))
def test_expiry_matches_the_client(doc: Any) -> None:
    assert days_until_key_expiry(doc) == parse_security_status(doc).days_until_key_expiry


@given(st.one_of(st.fixed_dictionaries({"data": st.one_of(values, st.dictionaries(
    st.sampled_from(["usage", "limit", "label"]), values))}), values))
def test_openrouter_matches_the_client_reader(doc: Any) -> None:
    data = Reader(doc, "key").obj("data")
    assert openrouter_credit(doc) == (data.number("usage", False), data.number("limit", False))


def test_health_follows_field_mappings_like_the_client() -> None:
    # The server says it sends budgetBalance as "budget" and the unread count as "unread".
    doc = {"agentId": "agt_1", "name": "n", "tier": "REGISTERED", "budget": 42.5, "unread": 3,
           "_fieldMappings": {"budget": "budgetBalance", "unread": "unreadNotifications"}}
    ours, theirs = HeartbeatFields(doc), parse_heartbeat(doc)
    assert (ours.budget_balance, ours.unread_notifications) == (42.5, 3)
    assert (theirs.budget_balance, theirs.unread_notifications) == (42.5, 3)
    assert ours.problems == ()
    assert not [p for p in theirs.problems if "budget" in p or "unread" in p.lower()]
