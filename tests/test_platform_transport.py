"""Transport-seam unit tests (httpx.MockTransport): retry decisions, deadline, size cap,
secrets in headers, typed results. The same behaviours run against the real sandbox in
``test_platform_sandbox.py``; these cover what a server cannot easily be made to do."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops import errors
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.openrouter import OpenRouterClient
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings

KEY = Secret("impr_sk_" + "k" * 40, "impromptu-api-key")
WALL = 1_790_000_000.0


@dataclass
class FakeTime:
    """A monotonic clock that only moves when the client sleeps (or a request 'takes time')."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make(fake: FakeTime) -> Iterator[Callable[..., PlatformClient]]:
    made: list[PlatformClient] = []

    def build(handler: Handler, key: Secret | None = KEY, **over: Any) -> PlatformClient:
        s = PlatformSettings(**{"api_url": "http://platform.test/api", "deadline": 60.0,
                                "max_retries": 5, "backoff_base": 0.5, "backoff_cap": 30.0,
                                **over})
        c = PlatformClient(s, key, transport=httpx.MockTransport(handler), sleep=fake.sleep,
                           clock=fake.clock, wall=fake.wall, rand=lambda: 0.5)
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()


def err(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": code},
                                        "requestId": "req_1"}, headers=headers)


def sequence(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


HB = {"agentId": "agt_1", "name": "n", "tier": "REGISTERED", "reputation": 0,
      "tokenBalance": "5", "budgetBalance": 100, "unreadNotifications": 0}


def test_bearer_key_sent_per_request_and_never_logged(make: Callable[..., PlatformClient],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    handler, seen = sequence(err(503, "INTERNAL"), httpx.Response(200, json=HB))
    caplog.set_level(logging.DEBUG)
    with make(handler) as c:
        hb = c.heartbeat()
    assert hb.agent_id == "agt_1" and hb.token_balance == 5 and hb.problems == ()
    assert all(r.headers["Authorization"] == f"Bearer {KEY.reveal()}" for r in seen)
    assert seen[0].url.path == "/api/v1/agent/heartbeat"
    assert KEY.reveal() not in caplog.text
    assert "retry 1" in caplog.text


def test_legacy_prefix_and_health_without_auth(make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(httpx.Response(200, json={"status": "ok"}),
                             httpx.Response(200, json=HB))
    with make(handler, path_prefix="legacy") as c:
        assert c.health().ok
        c.heartbeat()
    assert seen[0].url.path == "/api/health" and "Authorization" not in seen[0].headers
    assert seen[1].url.path == "/api/agent/heartbeat"


def test_429_retry_after_seconds_then_success(make: Callable[..., PlatformClient],
                                              fake: FakeTime) -> None:
    handler, seen = sequence(err(429, "RATE_001", {"Retry-After": "7"}),
                             httpx.Response(200, json=HB))
    with make(handler) as c:
        c.heartbeat()
    assert len(seen) == 2
    assert fake.sleeps == [7 + 0.5 * 0.5]  # Retry-After plus jitter over one base window


def test_429_retry_after_http_date(make: Callable[..., PlatformClient], fake: FakeTime) -> None:
    handler, _ = sequence(err(429, "RATE_001", {"Retry-After": formatdate(WALL + 12,
                                                                           usegmt=True)}),
                          httpx.Response(200, json=HB))
    with make(handler) as c:
        c.heartbeat()
    assert fake.sleeps == [12 + 0.25]


def test_retry_after_is_clamped_then_the_deadline_surfaces_rate_limited(
        make: Callable[..., PlatformClient], fake: FakeTime) -> None:
    handler, seen = sequence(err(429, "RATE_001", {"Retry-After": "100000"}))
    with make(handler, max_retry_after=20.0, deadline=15.0) as c,\
            pytest.raises(errors.RateLimited) as info:
        c.heartbeat()
    assert info.value.retry_after == 20.0
    assert fake.sleeps == [] and len(seen) == 1


def test_rate_003_is_not_retried_and_waits_for_reset(make: Callable[..., PlatformClient],
                                                     fake: FakeTime) -> None:
    headers = {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": str(int(WALL + 3600))}
    handler, seen = sequence(err(429, "RATE_003", headers))
    with make(handler) as c:
        with pytest.raises(errors.RateLimited) as info:
            c.budget()
        assert c.last_rate_limit is not None and c.last_rate_limit.remaining == 0
    assert info.value.daily and info.value.retry_after == 3600.0
    assert len(seen) == 1 and fake.sleeps == []
    assert info.value.exit_code == 75


def test_503_backoff_is_stopped_by_the_deadline(make: Callable[..., PlatformClient],
                                                fake: FakeTime) -> None:
    handler, seen = sequence(err(503, "INTERNAL"))
    with make(handler, deadline=10.0, max_retries=100, backoff_base=1.0) as c,\
            pytest.raises(errors.DeadlineExceeded) as info:
        c.profile()
    assert isinstance(info.value.__cause__, errors.ServerError)
    assert fake.now <= 10.0
    assert len(seen) == len(fake.sleeps) + 1 >= 3
    # full jitter with rand=0.5: half of each doubling window
    assert fake.sleeps[:3] == [0.5, 1.0, 2.0]
    assert "INTERNAL" in info.value.diagnostics() and info.value.exit_code == 69


def test_max_retries_raises_the_last_error(make: Callable[..., PlatformClient],
                                           fake: FakeTime) -> None:
    handler, seen = sequence(err(502, "INTERNAL"))
    with make(handler, max_retries=2) as c, pytest.raises(errors.ServerError):
        c.balance()
    assert len(seen) == 3 and len(fake.sleeps) == 2


def test_plain_post_is_not_resent_but_keyed_post_is(make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(err(503, "INTERNAL"), httpx.Response(200, json={"promptId": "p"}))
    with make(handler) as c, pytest.raises(errors.ServerError):
        c.prompt("sys", "hello")
    assert len(seen) == 1
    handler, seen = sequence(err(503, "INTERNAL"),
                             httpx.Response(201, json={"id": "key_2",
                                                       "apiKey": "impr_sk_" + "n" * 40}))
    with make(handler) as c:
        new = c.keys_create("idem-123")
    assert len(seen) == 2
    assert {r.headers["Idempotency-Key"] for r in seen} == {"idem-123"}
    assert new.api_key is not None and new.api_key.reveal().endswith("n" * 40)
    assert "n" * 40 not in repr(new)


def test_connect_error_is_resent_even_for_registration(
        make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(httpx.ConnectError("refused"),
                             httpx.Response(201, json={"agentId": "a",
                                                       "apiKey": "impr_sk_" + "r" * 40}))
    with make(handler, key=None) as c:
        ans = c.register_attempt({"name": "a"})
    assert ans.registered and isinstance(ans.body["apiKey"], Secret)
    assert len(seen) == 2


def test_registration_is_not_resent_after_a_read_failure(
        make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(httpx.ReadError("reset"), httpx.Response(201, json={}))
    with make(handler, key=None) as c, pytest.raises(errors.TransportError):
        c.register_attempt({"name": "a"})
    assert len(seen) == 1


@pytest.mark.parametrize(("status", "code"), [(428, "POW_REQUIRED"), (402, "PAYMENT_REQUIRED"),
                                              (410, "POW_EXPIRED"), (409, "POW_REPLAYED"),
                                              (400, "PAYMENT_INVALID")])
def test_registration_answers_are_returned(make: Callable[..., PlatformClient], status: int,
                                           code: str) -> None:
    body = {"error": {"code": code, "message": "m"}, "payment": {"amount": "10"}}
    handler, _ = sequence(httpx.Response(status, json=body))
    with make(handler, key=None) as c:
        ans = c.register_attempt({"name": "a"})
    assert (ans.status, ans.code, ans.registered) == (status, code, False)
    assert ans.body["payment"] == {"amount": "10"}


def test_registration_other_refusals_raise(make: Callable[..., PlatformClient]) -> None:
    handler, _ = sequence(err(400, "VALIDATION_ERROR"))
    with make(handler, key=None) as c, pytest.raises(errors.ValidationFailed):
        c.register_attempt({})


def test_size_cap_declared_and_streamed(make: Callable[..., PlatformClient]) -> None:
    big = json.dumps({"x": "y" * 5000}).encode()
    handler, seen = sequence(httpx.Response(200, content=big))
    with make(handler, max_response_bytes=1000) as c, pytest.raises(errors.MalformedResponse):
        c.heartbeat()
    assert len(seen) == 1  # integrity errors are never retried

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 100

    handler, _ = sequence(httpx.Response(200, content=chunks()))  # no Content-Length
    with make(handler, max_response_bytes=1000) as c, \
            pytest.raises(errors.MalformedResponse, match="1000 byte cap"):
        c.heartbeat()


def test_a_slow_drip_cannot_outlast_the_deadline(make: Callable[..., PlatformClient],
                                                 fake: FakeTime) -> None:
    def drip() -> Iterator[bytes]:
        for _ in range(1000):
            fake.now += 1.0  # each chunk arrives just inside the read timeout
            yield b" "

    handler, _ = sequence(httpx.Response(200, content=drip()))
    with make(handler, deadline=10.0) as c, pytest.raises(errors.TransportError,
                                                          match="too slowly"):
        c.heartbeat()
    assert fake.now <= 12.0


def test_invalid_json_is_one_clear_line(make: Callable[..., PlatformClient]) -> None:
    handler, _ = sequence(httpx.Response(200, content=b'{"agentId": "a", \x00<<not json'))
    with make(handler) as c, pytest.raises(errors.MalformedResponse) as info:
        c.heartbeat()
    line = info.value.diagnostics()
    assert "not valid JSON" in line and "\n" not in line and "agentId" not in line


def test_redirects_are_not_followed(make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(httpx.Response(307, headers={"Location": "http://evil.test/"}))
    with make(handler) as c, pytest.raises(errors.MalformedResponse, match="redirect"):
        c.heartbeat()
    assert all(r.url.host == "platform.test" for r in seen)


def test_field_mappings_are_surfaced(make: Callable[..., PlatformClient],
                                     caplog: pytest.LogCaptureFixture) -> None:
    handler, seen = sequence(httpx.Response(200, json={"promptId": "p1", "url": "u",
                                                       "_fieldMappings": {"systemPrompt":
                                                                          "content"}}))
    caplog.set_level(logging.INFO)
    with make(handler) as c:
        got = c.send_raw("POST", "/prompt", {"systemPrompt": "s", "initialPrompt": "i"})
    assert got.field_mappings == {"systemPrompt": "content"}
    assert "systemPrompt" in caplog.text
    assert json.loads(seen[0].content) == {"systemPrompt": "s", "initialPrompt": "i"}


def test_ids_cannot_change_the_path(make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(httpx.Response(200, json={}))
    with make(handler) as c:
        c.thread("../../keys")
        c.keys_revoke("a/b?c")
    assert seen[0].url.raw_path == b"/api/v1/agent/content/..%2F..%2Fkeys/thread"
    assert seen[1].url.raw_path == b"/api/v1/agent/keys/a%2Fb%3Fc"


def test_openrouter_create_and_check(fake: FakeTime) -> None:
    or_key = "sk-or-v1-" + "c" * 64
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            return httpx.Response(200, json={"key": or_key, "data": {"hash": "h1", "name": "x"}})
        if request.url.path.endswith("/key"):
            return httpx.Response(401, json={"error": {"code": 401, "message": "No auth"}})
        if request.url.params.get("offset") != "0":  # pages of 100 from offset: one key
            return httpx.Response(200, json={"data": []})
        return httpx.Response(200, json={"data": [{"hash": "h1", "name": "x",
                                                   "disabled": False}]})

    prov = Secret("sk-or-v1-" + "p" * 64)
    with OpenRouterClient("http://or.test/api/v1", prov, transport=httpx.MockTransport(handler),
                          sleep=fake.sleep, clock=fake.clock) as orc:
        key, key_hash = orc.create_key("agent-1", limit=5)
        assert key.reveal() == or_key and key_hash == "h1"
        assert [k.hash for k in orc.list_keys()] == ["h1"]
        with pytest.raises(errors.AuthError) as info:
            orc.key_info()
    assert info.value.code == "HTTP_401" and "No auth" in info.value.message
    assert seen[0].headers["Authorization"] == f"Bearer {prov.reveal()}"
    assert json.loads(seen[0].content) == {"name": "agent-1", "limit": 5}


def test_empty_answers_to_delete_are_fine(make: Callable[..., PlatformClient]) -> None:
    handler, _ = sequence(httpx.Response(204), httpx.Response(200, content=b""))
    with make(handler) as c:
        assert c.keys_revoke("key_1").problems == ()
        assert c.credentials_delete("cred_1").raw == {}
    handler, _ = sequence(httpx.Response(200, content=b""))
    with make(handler) as c, pytest.raises(errors.MalformedResponse):
        c.heartbeat()  # an empty answer where data was expected is not fine


LEDGER = [
    {"entries": [{"id": "e1", "type": "ENGAGEMENT", "amount": "1000", "token": "T",
                  "createdAt": "2026-01-01T00:00:00Z", "nodeId": "n1", "vestsAt": "x"},
                 {"id": "e2", "type": "REGISTRATION_FEE", "amount": "-10",
                  "createdAt": "2026-01-01T00:00:00Z"}],
     "nextCursor": "c2"},
    {"entries": [{"id": "e3", "type": "PAYOUT", "amount": 1.5, "createdAt": None}],
     "nextCursor": None},
]


def test_earnings_follow_the_cursor_contract(make: Callable[..., PlatformClient]) -> None:
    handler, seen = sequence(httpx.Response(200, json=LEDGER[0]),
                             httpx.Response(200, json=LEDGER[1]),
                             httpx.Response(200, json={"referrals": [
                                 {"agentId": "agt_2", "registeredAt": "2026-02-01T00:00:00Z"},
                                 {"agentId": None}]}))
    with make(handler) as c:
        first = c.earnings(limit=2)
        second = c.earnings(after=first.next_cursor, limit=2)
        refs = c.referrals()
    assert [e.amount for e in first.entries] == [1000, -10] and first.next_cursor == "c2"
    assert first.entries[0].raw["nodeId"] == "n1" and first.problems == ()
    assert second.next_cursor is None and second.entries[0].amount is None
    assert "earnings.entries[0].amount: not an amount in base units" in second.problems
    assert "earnings.entries[0].createdAt: null" in second.problems
    assert [(r.agent_id, r.registered_at) for r in refs.referrals] == [
        ("agt_2", "2026-02-01T00:00:00Z"), (None, None)]
    assert len(refs.problems) == 2
    assert seen[0].url.path == "/api/v1/agent/earnings"
    assert dict(seen[0].url.params) == {"limit": "2"}
    assert dict(seen[1].url.params) == {"after": "c2", "limit": "2"}
    assert seen[2].url.path == "/api/v1/agent/referrals"


OUTCOMES = st.sampled_from(["ok", "500", "503", "429", "429-date", "429-daily", "connect",
                            "reset", "400"])


@settings(max_examples=150, deadline=None)
@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=12),
       method=st.sampled_from(["GET", "POST", "POST+key", "DELETE"]),
       deadline=st.floats(0.5, 120), max_retries=st.integers(0, 8),
       rand=st.floats(0, 1, exclude_max=True), retry_after=st.integers(0, 400))
def test_retry_loop_invariants(outcomes: list[str], method: str, deadline: float,
                               max_retries: int, rand: float, retry_after: int) -> None:
    """Whatever the server does: the waits fit the deadline, retries are capped, and a
    request that may have reached the server is resent only if it is idempotent."""
    fake = FakeTime()
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        kind = outcomes[min(len(sent), len(outcomes) - 1)]
        sent.append(kind)
        if kind == "connect":
            raise httpx.ConnectError("refused")
        if kind == "reset":
            raise httpx.ReadError("reset")
        if kind == "ok":
            return httpx.Response(200, json={})
        if kind.startswith("429"):
            code = "RATE_003" if kind == "429-daily" else "RATE_001"
            ra = (str(retry_after) if kind != "429-date"
                  else formatdate(WALL + fake.now + retry_after, usegmt=True))
            return err(429, code, {"Retry-After": ra,
                                   "X-RateLimit-Reset": str(int(WALL + 86_400))})
        return err(int(kind), "INTERNAL" if kind.startswith("5") else "VALIDATION_ERROR")

    s = PlatformSettings(api_url="http://platform.test/api", deadline=deadline,
                         max_retries=max_retries, backoff_base=0.5, backoff_cap=30.0,
                         max_retry_after=300.0)
    verb, _, keyed = method.partition("+")
    with PlatformClient(s, KEY, transport=httpx.MockTransport(handler), sleep=fake.sleep,
                        clock=fake.clock, wall=fake.wall, rand=lambda: rand) as c:
        try:
            if verb == "GET":
                c.heartbeat()
            elif verb == "DELETE":
                c.keys_revoke("k")
            elif keyed:
                c.keys_create("idem")
            else:
                c.prompt("s", "p")
            outcome = "ok"
        except errors.OpsError as exc:
            outcome = type(exc).__name__
            assert "\n" not in exc.diagnostics()
    assert fake.now <= deadline
    assert len(sent) <= max_retries + 1
    assert len(fake.sleeps) == len(sent) - 1
    if outcome == "ok":
        assert sent[-1] == "ok"
    if verb == "POST" and not keyed:
        # every resend of a plain POST follows a failure that never left the process
        assert all(k == "connect" for k in sent[:-1])
    for kind in sent[:-1]:
        assert kind not in ("ok", "400", "429-daily")  # never retried


def test_a_reply_that_names_a_member_by_its_alias_is_followed(
        make: Callable[..., PlatformClient]) -> None:
    # an older generation answering with promptId, and saying so in _fieldMappings
    handler, _ = sequence(httpx.Response(201, json={
        "promptId": "node_9", "url": "u", "status": "completed", "llmResponse": "hi",
        "budgetSpent": 10, "_fieldMappings": {"promptId": "nodeId"}}))
    with make(handler) as c:
        got = c.reprompt("node_1", "and then?")
    assert got.node_id == "node_9" and got.problems == ()
    assert got.field_mappings == {"promptId": "nodeId"}
