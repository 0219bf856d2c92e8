"""Hypothesis tests for the client's pure parts: backoff, Retry-After, rate-limit headers,
error bodies and the tolerant result parsers. Hostile input must never raise."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops import contract, errors
from impromptu_ops.platform import results
from impromptu_ops.platform.errorbody import (
    MAX_TEXT,
    build_error,
    clean_text,
    error_class,
    parse_error_body,
)
from impromptu_ops.platform.ratelimit import RateLimit, parse_rate_limit
from impromptu_ops.retry import (
    backoff_delay,
    backoff_window,
    may_resend,
    parse_retry_after,
    resent_delete_is_done,
    seconds_until,
)
from impromptu_ops.secret import Secret

NOW = 1_790_000_000.0  # a fixed "now" in 2026
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20,
)

# --- backoff ----------------------------------------------------------------------------------


@given(attempt=st.integers(-5, 5000), base=st.floats(0, 1e6, allow_nan=False),
       cap=st.floats(0, 1e6, allow_nan=False), r=st.floats(0, 1, exclude_max=True))
def test_backoff_delay_stays_in_the_full_jitter_window(attempt: int, base: float, cap: float,
                                                       r: float) -> None:
    window = backoff_window(attempt, base, cap)
    assert 0.0 <= window <= cap
    if base > 0 and cap > 0:
        assert window == min(cap, base * 2 ** min(max(attempt, 0), 62))
    delay = backoff_delay(attempt, base, cap, lambda: r)
    assert 0.0 <= delay <= window
    assert math.isclose(delay, window * r)


@given(attempt=st.integers(0, 100), base=st.floats(0.001, 100), cap=st.floats(0.001, 1000))
def test_backoff_window_never_shrinks(attempt: int, base: float, cap: float) -> None:
    assert backoff_window(attempt, base, cap) <= backoff_window(attempt + 1, base, cap)


@given(r=st.floats(allow_nan=True, allow_infinity=True))
def test_a_broken_random_source_cannot_stretch_the_wait(r: float) -> None:
    assert 0.0 <= backoff_delay(3, 0.5, 30.0, lambda: r) <= backoff_window(3, 0.5, 30.0)


# --- Retry-After ------------------------------------------------------------------------------


@given(seconds=st.integers(0, 10**12), max_wait=st.floats(0, 1e5))
def test_retry_after_delta_seconds_is_clamped(seconds: int, max_wait: float) -> None:
    assert parse_retry_after(str(seconds), NOW, max_wait) == min(float(seconds), max_wait)
    assert parse_retry_after(f"  {seconds}\t", NOW, max_wait) == min(float(seconds), max_wait)


@given(offset=st.integers(-10**6, 10**6), max_wait=st.floats(1, 1e7))
def test_retry_after_http_date_is_relative_to_the_injected_now(offset: int,
                                                               max_wait: float) -> None:
    when = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=offset)
    got = parse_retry_after(format_datetime(when, usegmt=True), NOW, max_wait)
    assert got == min(max(float(offset), 0.0), max_wait)


@pytest.mark.parametrize("text", [
    "Sun, 06 Nov 1994 08:49:37 GMT",  # IMF-fixdate, in the past: wait 0
    "Sunday, 06-Nov-94 08:49:37 GMT",  # RFC 850
    "Sun Nov  6 08:49:37 1994",  # asctime
])
def test_retry_after_obsolete_date_forms_are_accepted(text: str) -> None:
    assert parse_retry_after(text, NOW, 300.0) == 0.0


@pytest.mark.parametrize("text", ["", " ", "-5", "1e3", "soon", "0x10", "٣", "12 s",
                                  "Mon, 99 Foo 2026 99:99:99 GMT", "9" * 80, None])
def test_retry_after_garbage_is_none(text: str | None) -> None:
    assert parse_retry_after(text, NOW, 300.0) is None


@given(text=st.text(max_size=80), max_wait=st.floats(0, 1e6))
def test_retry_after_never_raises_and_stays_bounded(text: str, max_wait: float) -> None:
    got = parse_retry_after(text, NOW, max_wait)
    assert got is None or 0.0 <= got <= max_wait


def test_seconds_until_reset_is_never_negative() -> None:
    assert seconds_until(NOW + 30, NOW) == 30
    assert seconds_until(NOW - 30, NOW) == 0
    assert seconds_until(None, NOW) is None


@pytest.mark.parametrize(("method", "key", "sent", "ok"), [
    ("GET", False, True, True), ("PUT", False, True, True), ("DELETE", False, True, True),
    ("POST", False, True, False), ("POST", True, True, True), ("PATCH", False, True, False),
    ("POST", False, False, True), ("PATCH", False, False, True), ("get", False, True, True),
])
def test_only_idempotent_or_unsent_requests_are_resent(method: str, key: bool, sent: bool,
                                                       ok: bool) -> None:
    assert may_resend(method, idempotency_key=key, sent=sent) is ok


@given(method=st.sampled_from(["GET", "PUT", "POST", "PATCH", "DELETE", "delete"]),
       status=st.integers(400, 599), lost=st.booleans())
def test_only_a_resent_delete_may_read_404_as_done(method: str, status: int,
                                                   lost: bool) -> None:
    assert resent_delete_is_done(method, status, answer_lost=lost) is (
        lost and method.upper() == "DELETE" and status == 404)


# --- rate-limit headers ----------------------------------------------------------------------


@given(limit=st.integers(0, 10**9), remaining=st.integers(0, 10**9),
       reset=st.integers(0, 10**10), upper=st.booleans())
def test_rate_limit_headers_round_trip(limit: int, remaining: int, reset: int,
                                       upper: bool) -> None:
    names = [n.upper() if upper else n.lower() for n in contract.RATE_LIMIT_HEADERS]
    rl = parse_rate_limit(dict(zip(names, (str(limit), str(remaining), str(reset)),
                                   strict=True)))
    assert rl == RateLimit(limit, remaining, float(reset))
    assert rl.seconds_until_reset(float(reset) - 5) == 5
    assert rl.exhausted is (remaining == 0)


@given(values=st.lists(st.one_of(st.none(), st.text(max_size=30)), min_size=3, max_size=3))
def test_rate_limit_garbage_spoils_only_its_own_field(values: list[str | None]) -> None:
    headers = {n: v for n, v in zip(contract.RATE_LIMIT_HEADERS, values, strict=True)
               if v is not None}
    rl = parse_rate_limit(headers)
    if not headers:
        assert rl is None
        return
    assert rl is not None
    for got, raw in zip((rl.limit, rl.remaining, rl.reset_at), values, strict=True):
        if got is not None:
            assert raw is not None
            assert int(got) == int(raw.strip().split(".")[0])
            assert got >= 0


def test_rate_limit_partial_and_bad_values() -> None:
    rl = parse_rate_limit({"X-RateLimit-Remaining": "-1", "X-RateLimit-Reset": "1790000000"})
    assert rl == RateLimit(None, None, 1_790_000_000.0)
    assert parse_rate_limit({"Content-Type": "application/json"}) is None
    assert parse_rate_limit({"X-RateLimit-Reset": "9" * 30}) == RateLimit(None, None, None)


# --- error bodies -------------------------------------------------------------------------------
codes = st.sampled_from(sorted(contract.ERROR_CODES))
texts = st.text(min_size=1, max_size=400)


@given(code=codes, message=texts, hint=texts, retryable=st.booleans(),
       rid=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=20),
       nested=st.booleans())
def test_nested_and_flat_error_bodies_parse(code: str, message: str, hint: str,
                                            retryable: bool, rid: str, nested: bool) -> None:
    inner = {"code": code, "message": message, "hint": hint, "retryable": retryable,
             "fields": {"name": ["too long"]}}
    doc = {"error": inner, "requestId": rid} if nested else {**inner, "requestId": rid}
    body = parse_error_body(json.dumps(doc).encode())
    assert body.code == code
    assert body.message == clean_text(message)
    assert body.hint == clean_text(hint)
    assert body.retryable is retryable
    assert body.request_id == rid
    assert body.fields == {"name": ("too long",)}
    for text in (body.message, body.hint):
        assert text is None or (len(text) <= MAX_TEXT and "\n" not in text)


@given(raw=st.binary(max_size=600))
def test_garbage_error_bodies_never_raise(raw: bytes) -> None:
    body = parse_error_body(raw)
    assert body.snippet is None or len(body.snippet) <= MAX_TEXT
    err = build_error(503, body)
    assert isinstance(err, errors.PlatformError)
    assert err.status == 503
    assert "\n" not in err.diagnostics()


@given(doc=json_values, status=st.integers(400, 599))
def test_any_json_error_body_builds_a_typed_error(doc: Any, status: int) -> None:
    err = build_error(status, parse_error_body(json.dumps(doc).encode()))
    assert isinstance(err, errors.PlatformError)
    assert err.code
    assert len(err.message) <= 2 * MAX_TEXT


def test_every_contract_code_maps_to_its_typed_error() -> None:
    for row in contract.ERROR_CODES.values():
        cls, retryable = error_class(row.code, row.status)
        assert cls is row.error
        assert retryable is row.retryable
        body = parse_error_body(json.dumps({"error": {"code": row.code}}).encode())
        err = build_error(row.status, body, method="GET", url="/x")
        assert type(err) is row.error
        assert err.code == row.code
        assert err.exit_code == row.error.exit_code


@pytest.mark.parametrize(("status", "cls"), [
    (401, errors.AuthError), (403, errors.AuthError), (404, errors.NotFoundError),
    (400, errors.ValidationFailed), (429, errors.RateLimited), (502, errors.ServerError),
    (418, errors.PlatformError),
])
def test_unknown_codes_fall_back_to_the_status_class(status: int,
                                                     cls: type[errors.PlatformError]) -> None:
    err = build_error(status, parse_error_body(b'{"code": "SOMETHING_NEW"}'))
    assert type(err) is cls
    assert err.code == "SOMETHING_NEW"


def test_rate_003_waits_for_the_reset_not_retry_after() -> None:
    body = parse_error_body(b'{"error": {"code": "RATE_003", "message": "daily"}}')
    err = build_error(429, body, retry_after=1.0, reset_wait=3600.0)
    assert isinstance(err, errors.RateLimited)
    assert err.daily and err.retry_after == 3600.0 and not err.retryable
    burst = build_error(429, parse_error_body(b'{"code": "RATE_001"}'), retry_after=2.0,
                        reset_wait=3600.0)
    assert isinstance(burst, errors.RateLimited)
    assert not burst.daily and burst.retry_after == 2.0 and burst.retryable


def test_error_text_is_redacted_and_single_line() -> None:
    key = "impr_sk_" + "A" * 40
    body = parse_error_body(json.dumps(
        {"error": {"code": "UNAUTHORIZED", "message": f"bad key {key}\nline2"}}).encode())
    err = build_error(401, body)
    assert key not in err.diagnostics()
    assert "\n" not in err.diagnostics()
    html = parse_error_body(b"<html>\n<body>Bad gateway " + b"x" * 5000 + b"</body></html>")
    assert html.snippet is not None and len(html.snippet) <= MAX_TEXT
    assert "HTTP 502" in build_error(502, html).message


# --- tolerant result parsers ------------------------------------------------------------------
PARSERS = [results.parse_health, results.parse_heartbeat, results.parse_notifications,
           results.parse_wallet_sync, results.parse_recommendations, results.parse_budget,
           results.parse_balance, results.parse_profile, results.parse_security_status,
           results.parse_prompt, results.parse_reprompt, results.parse_credentials,
           results.parse_key_list, results.parse_new_key, results.parse_earnings,
           results.parse_referrals]


@settings(max_examples=60)
@given(doc=json_values)
def test_result_parsers_never_raise(doc: Any) -> None:
    for parse in PARSERS:
        got = parse(results.wrap_secrets(doc))
        assert isinstance(got.problems, tuple)
        if not isinstance(doc, dict):
            assert got.problems[0].endswith("not an object")


def test_heartbeat_parses_and_records_nulls() -> None:
    doc = {"agentId": "agt_1", "name": "a", "tier": "REGISTERED", "reputation": 3,
           "tokenBalance": "1000000000000000000000", "budgetBalance": 90,
           "unreadNotifications": 2, "_fieldMappings": {"message": "prompt"}}
    hb = results.parse_heartbeat(doc)
    assert hb.problems == ()
    assert hb.token_balance == 10**21 and hb.unread_notifications == 2
    assert hb.field_mappings == {"message": "prompt"}
    nulls = results.parse_heartbeat(dict.fromkeys(doc))
    assert "heartbeat.agentId: null" in nulls.problems
    assert nulls.agent_id is None
    missing = results.parse_heartbeat({})
    assert "heartbeat.tokenBalance: missing" in missing.problems


@given(amount=st.integers(-(2**255), 2**256))
def test_amounts_are_exact_integers(amount: int) -> None:
    w = results.parse_wallet_sync({"web3Address": "0x1", "balance": {
        "total": str(amount), "available": amount, "locked": "0"}})
    assert w.total == amount and w.available == amount and w.problems == ()


@pytest.mark.parametrize("bad", [1.5, "1.5", "1e18", "", "0x10", True, [1]])
def test_amounts_refuse_floats_and_garbage(bad: Any) -> None:
    bal = results.parse_balance({"token": "IMPRMPT", "decimals": 18, "balance": bad})
    assert bal.balance is None
    assert bal.problems == ("balance.balance: not an amount in base units",)


def test_secrets_in_answers_are_wrapped() -> None:
    key = "impr_sk_" + "b" * 40
    doc = results.wrap_secrets({"agentId": "a", "apiKey": key,
                                "quickStart": {"walletPrivateKey": "0x" + "1" * 64}})
    assert isinstance(doc["apiKey"], Secret) and doc["apiKey"].reveal() == key
    assert isinstance(doc["quickStart"]["walletPrivateKey"], Secret)
    assert key not in repr(doc)
    new = results.parse_new_key({"id": "key_1", "apiKey": key, "expiresAt": "2027-01-01"})
    assert new.api_key is None  # not wrapped: the client always wraps before parsing
    new = results.parse_new_key(results.wrap_secrets({"id": "key_1", "apiKey": key}))
    assert new.api_key is not None and new.api_key.reveal() == key and new.problems == ()


# --- _fieldMappings are followed ---------------------------------------------------------------

HB_DOC = {"agentId": "agt_1", "name": "a", "tier": "REGISTERED", "reputation": 3,
          "tokenBalance": "7", "budgetBalance": 90, "unreadNotifications": 2}


@given(canonical=st.sampled_from(sorted(HB_DOC)),
       alias=st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=16))
def test_a_member_sent_under_a_declared_alias_is_read(canonical: str, alias: str) -> None:
    if alias in HB_DOC or alias == "_fieldMappings":
        return
    doc: dict[str, Any] = {k: v for k, v in HB_DOC.items() if k != canonical}
    doc[alias] = HB_DOC[canonical]
    undeclared = results.parse_heartbeat(doc)
    assert f"heartbeat.{canonical}: missing" in undeclared.problems
    followed = results.parse_heartbeat({**doc, "_fieldMappings": {alias: canonical}})
    assert followed.problems == () and followed.field_mappings == {alias: canonical}
    assert (followed.agent_id, followed.token_balance, followed.unread_notifications) == (
        "agt_1", 7, 2)


def test_the_canonical_member_wins_and_nested_objects_follow_too() -> None:
    both = results.parse_reprompt({"nodeId": "real", "promptId": "alias",
                                   "_fieldMappings": {"promptId": "nodeId"}})
    assert both.node_id == "real" and both.problems == ()
    notes = results.parse_notifications({
        "unreadCount": 1, "_fieldMappings": {"when": "createdAt", "kind": "type"},
        "notifications": [{"id": "n1", "kind": "mention", "when": "2026-11-24T00:00:00Z"}]})
    assert notes.problems == ()
    assert (notes.notifications[0].type, notes.notifications[0].created_at) == (
        "mention", "2026-11-24T00:00:00Z")
    odd = results.parse_reprompt({"promptId": "p", "_fieldMappings": {"promptId": 5}})
    assert odd.node_id is None and "reprompt.nodeId: missing" in odd.problems
