"""The platform client against the running sandbox over real HTTP on loopback.

Every endpoint on both path prefixes, every error code of contract §1 (real conditions
where they are easy, ``/_sandbox/faults`` for the rest), 429 with ``Retry-After`` in both
forms, 503 backoff stopped by the deadline, truncated, malformed and dropped responses, the
size cap, and Idempotency-Key resends versus plain POSTs. Sleeps are injected (and recorded)
so nothing here really waits for a backoff.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest

from impromptu_ops import contract, errors
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.openrouter import OpenRouterClient
from impromptu_ops.pow.challenge import parse_challenge
from impromptu_ops.pow.verify import check_round
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings

SandboxFactory = Callable[..., SandboxServer]
WALL = 1_790_000_000.0


class Recorder:
    """Injected time: a monotonic clock that moves only when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def connect(rec: Recorder) -> Iterator[Callable[..., PlatformClient]]:
    """Build clients against a sandbox; all are closed at teardown."""
    made: list[PlatformClient] = []

    def build(sb: SandboxServer, key: Secret | str | None, prefix: str = "v1",
              wall: Callable[[], float] = time.time, rand: Callable[[], float] = lambda: 0.0,
              **over: Any) -> PlatformClient:
        settings = PlatformSettings(**{"api_url": sb.base_url, "path_prefix": prefix,
                                       "deadline": 30.0, "max_retries": 4,
                                       "read_timeout": 5.0, **over})
        secret = Secret(key, "impromptu-api-key") if isinstance(key, str) else key
        c = PlatformClient(settings, secret, sleep=rec.sleep, clock=rec.clock, wall=wall,
                           rand=rand)
        made.append(c)
        return c

    yield build
    for c in made:
        c.close()


def new_agent(sb: SandboxServer, **fields: Any) -> dict[str, Any]:
    made: dict[str, Any] = sb.control("POST", "/agents",
                                      {"name": f"t-{uuid.uuid4().hex[:8]}", **fields})
    return made


def fault(sb: SandboxServer, **rule: Any) -> None:
    sb.control("POST", "/faults", rule)


def solve(challenge_doc: Any) -> dict[str, Any]:
    """Brute-force the sandbox's tiny test challenge with the reference verifier."""
    ch = parse_challenge(challenge_doc)
    nonces = []
    for i in range(len(ch.rounds)):
        n = 0
        while not check_round(ch, i, n):
            n += 1
        nonces.append(n)
    return {"chainId": ch.chain_id, "nonces": nonces}


def reg_body(**extra: Any) -> dict[str, Any]:
    return {"name": f"reg-{uuid.uuid4().hex[:8]}", "description": "test agent",
            "capabilities": ["text"], "acceptTos": True, **extra}


# --- every endpoint, both prefixes ------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["v1", "legacy"])
def test_every_endpoint(sandbox: SandboxServer, connect: Callable[..., PlatformClient],
                        prefix: str) -> None:
    # PARTNER: a burst limit (100/s) this test's ~30 quick calls cannot reach
    tier = contract.TIERS["PARTNER"]
    agent = new_agent(sandbox, tier=tier.name)
    sandbox.control("POST", f"/agents/{agent['agentId']}/notifications",
                    {"type": "mention", "message": "hello"})
    c = connect(sandbox, agent["apiKey"], prefix)
    assert c.health().ok
    hb = c.heartbeat()
    assert (hb.agent_id, hb.unread_notifications, hb.problems) == (agent["agentId"], 1, ())
    notes = c.notifications(unread=True)
    assert [n.type for n in notes.notifications] == ["mention"] and notes.problems == ()
    wallet = c.wallet_sync()
    assert wallet.web3_address == agent["walletAddress"] and wallet.total == 0
    assert wallet.problems == ()
    recs = c.recommendations()
    assert recs.recommendations and recs.problems == ()
    budget = c.budget()
    assert budget.tier == tier.name and budget.max_balance == tier.budget
    assert budget.problems == ()
    assert c.balance().problems == ()
    assert c.profile().id == agent["agentId"]
    assert c.security_status().account_healthy is True
    opp = c.discover_opportunities()
    assert set(opp.raw) >= {"humanSignal", "unanswered", "rising", "active"}
    with connect(sandbox, None, prefix) as anonymous:
        assert anonymous.discover_sample().raw
    node = recs.recommendations[0].node_id
    assert node is not None
    assert c.thread(node).raw
    models = c.models(recommended=True)
    assert all(m["recommended"] for m in models.raw["models"])
    model = models.raw["models"][0]["id"]
    made = c.prompt("You are terse.", "Say hi", title="t", model_config_id=model)
    assert made.prompt_id and made.problems == ()
    rep = c.reprompt(node, "and then?", model)
    assert rep.node_id and rep.llm_response
    assert c.engage(node, "LIKE").problems == ()
    assert c.budget().balance == tier.budget - 10 - 10 - 1
    c.credentials_put("openrouter", Secret("sk-or-v1-" + "z" * 64))
    creds = c.credentials_list().credentials
    assert [(x.provider, x.is_active) for x in creds] == [("openrouter", True)]
    assert creds[0].id is not None
    c.credentials_delete(creds[0].id)
    assert c.credentials_list().credentials == ()
    keys = c.keys_list().keys
    assert len(keys) == 1 and keys[0].status == "active"
    new = c.keys_create(f"idem-{uuid.uuid4()}")
    assert new.api_key is not None and contract.API_KEY_RE.match(new.api_key.reveal())
    assert new.id is not None
    c.keys_revoke(new.id)
    assert [k.status for k in c.keys_list().keys if k.id == new.id] != ["active"]
    rl = c.last_rate_limit
    assert rl is not None and rl.limit == tier.actions_per_day
    assert rl.remaining is not None and rl.remaining < rl.limit


@pytest.mark.parametrize("prefix", ["v1", "legacy"])
def test_registration_walkthrough_and_accept_tos(sandbox: SandboxServer,
                                                 connect: Callable[..., PlatformClient],
                                                 prefix: str) -> None:
    c = connect(sandbox, None, prefix)
    first = c.register_attempt(reg_body(acceptTos=False))
    assert (first.status, first.code) == (428, "POW_REQUIRED")
    pow_ = solve(c.register_challenge().raw)
    done = c.register_attempt(reg_body(acceptTos=False, pow=pow_))
    assert done.registered and done.status == 201
    key = done.body["apiKey"]
    assert isinstance(key, Secret) and key.reveal() not in repr(done)
    with connect(sandbox, key, prefix) as agent:
        with pytest.raises(errors.AuthError) as info:
            agent.heartbeat()
        assert info.value.code == "ACCOUNT_NOT_ACTIVE" and info.value.exit_code == 77
        assert "accept" in info.value.diagnostics()
        assert agent.profile().status == "PENDING"  # works before the terms are accepted
        agent.accept_tos()
        assert agent.heartbeat().problems == ()


def test_registration_secrets_arrive_wrapped(sandbox_factory: SandboxFactory,
                                             connect: Callable[..., PlatformClient],
                                             caplog: pytest.LogCaptureFixture) -> None:
    sb = sandbox_factory(pow_required=False, return_wallet_key=True, quick_start=True)
    caplog.set_level("DEBUG")
    done = connect(sb, None).register_attempt(reg_body())
    assert done.registered
    wallet_key = done.body["walletPrivateKey"]
    assert isinstance(wallet_key, Secret) and isinstance(done.body["apiKey"], Secret)
    shown = repr(done.body) + str(done.body) + caplog.text
    assert wallet_key.reveal() not in shown and done.body["apiKey"].reveal() not in shown


@pytest.mark.parametrize("prefix", ["v1", "legacy"])
def test_earnings_and_referrals(sandbox_factory: SandboxFactory,
                                connect: Callable[..., PlatformClient], prefix: str) -> None:
    sb = sandbox_factory(pow_required=False)
    referrer = new_agent(sb)
    joined = connect(sb, None, prefix).register_attempt(
        reg_body(referrer=referrer["agentId"]))
    assert joined.registered
    referee_id = joined.body["agentId"]
    amounts = [10**18, 3 * 10**18 + 7, 123]
    for amount in amounts:
        sb.control("POST", "/ledger/earn", {"agentId": referee_id, "amount": str(amount)})
    with connect(sb, joined.body["apiKey"], prefix) as referee:
        pages, cursor = [], None
        while True:
            page = referee.earnings(after=cursor, limit=2)
            assert page.problems == ()
            pages.append(page)
            cursor = page.next_cursor
            if cursor is None:
                break
        got = [e for p in pages for e in p.entries]
        assert len(pages) == 2
        assert [e.amount for e in got if e.type == "ENGAGEMENT"] == amounts
        assert all("nodeId" in e.raw for e in got if e.type == "ENGAGEMENT")
    c = connect(sb, referrer["apiKey"], prefix)
    assert [r.agent_id for r in c.referrals().referrals] == [referee_id]
    credits = [e for e in c.earnings().entries if e.type == "REFERRAL"]
    assert [e.amount for e in credits] == [a * contract.REFERRAL_BPS // contract.BPS_DENOMINATOR
                                           for a in amounts]
    assert credits[0].raw["refereeAgentId"] == referee_id


# --- every error code of the §1 table ---------------------------------------------------------


def test_error_codes_from_real_conditions(sandbox: SandboxServer,
                                          connect: Callable[..., PlatformClient]) -> None:
    tier = contract.TIERS["ESTABLISHED"]  # burst 20/s: above this test's ~12 quick calls
    agent = new_agent(sandbox, tier=tier.name)
    with connect(sandbox, "impr_sk_" + "x" * 40) as bad, \
            pytest.raises(errors.AuthError) as info:
        bad.heartbeat()
    assert info.value.code == "UNAUTHORIZED" and info.value.status == 401
    c = connect(sandbox, agent["apiKey"])
    with pytest.raises(errors.NotFoundError) as nf:
        c.thread("node_does_not_exist")
    assert nf.value.code == "VAL_001"
    with pytest.raises(errors.ValidationFailed) as bad_field:
        c.engage(c.recommendations().recommendations[0].node_id or "", "HUG")
    assert bad_field.value.code == "VALIDATION_ERROR" and "type" in bad_field.value.fields
    assert "(fields: type: must be LIKE or BOOKMARK)" in bad_field.value.diagnostics()
    with pytest.raises(errors.AuthError) as too_low:
        c.prompt("s", "p", model_config_id="anthropic/claude-opus-4")  # VERIFIED and up
    assert too_low.value.code == "AUTHZ_001"
    sandbox.control("PATCH", f"/agents/{agent['agentId']}", {"budget": 0})
    with pytest.raises(errors.BudgetExhausted) as budget:
        c.prompt("s", "p")
    assert budget.value.code == "BUDG_001" and budget.value.exit_code == 75
    with pytest.raises(errors.KeyManagementRefused) as last:
        c.keys_revoke(c.keys_list().keys[0].id or "")
    assert last.value.code == "LAST_KEY"
    c.keys_create("k-1")
    with pytest.raises(errors.KeyManagementRefused) as limit:
        c.keys_create("k-2")
    assert limit.value.code == "KEY_LIMIT"
    sandbox.control("PATCH", f"/agents/{agent['agentId']}",
                    {"dailyUsed": tier.actions_per_day})
    with pytest.raises(errors.RateLimited) as daily:
        c.budget()
    assert daily.value.code == "RATE_003" and daily.value.daily
    assert daily.value.retry_after is not None and 0 < daily.value.retry_after <= 86_400
    assert c.last_rate_limit is not None and c.last_rate_limit.remaining == 0


def test_rate_001_from_a_real_burst(sandbox: SandboxServer,
                                    connect: Callable[..., PlatformClient]) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"], max_retries=0)
    burst = contract.TIERS["REGISTERED"].burst_per_second
    with pytest.raises(errors.RateLimited) as info:
        for _ in range(burst * 5):
            c.budget()
    assert info.value.code == "RATE_001" and not info.value.daily
    assert info.value.retry_after is not None and info.value.retry_after <= 1.0


def test_pow_codes_from_real_conditions(sandbox: SandboxServer,
                                        connect: Callable[..., PlatformClient]) -> None:
    c = connect(sandbox, None)
    junk = {"chainId": str(uuid.uuid4()), "nonces": [0] * contract.POW_ROUNDS}
    assert c.register_attempt(reg_body(pow=junk)).code == "POW_INVALID"
    pow_ = solve(c.register_challenge().raw)
    assert c.register_attempt(reg_body(pow=pow_)).registered
    again = c.register_attempt(reg_body(pow=pow_))
    assert (again.status, again.code) == (409, "POW_REPLAYED")
    stale = solve(c.register_challenge().raw)
    sandbox.control("POST", "/clock", {"offsetSeconds": contract.POW_EXPIRY_SECONDS + 60})
    late = c.register_attempt(reg_body(pow=stale))
    assert (late.status, late.code) == (410, "POW_EXPIRED")


def test_payment_codes_from_real_conditions(sandbox_factory: SandboxFactory,
                                            connect: Callable[..., PlatformClient]) -> None:
    sb = sandbox_factory(payment_mode="upfront", pow_required=False)
    c = connect(sb, None)
    asked = c.register_attempt(reg_body())
    assert (asked.status, asked.code) == (402, "PAYMENT_REQUIRED")
    payment = asked.body["payment"]
    assert {"chainId", "token", "amount", "recipient"} <= set(payment)
    unknown = c.register_attempt(reg_body(payment={"txHash": "0x" + "ab" * 32}))
    assert (unknown.status, unknown.code) == (400, "PAYMENT_INVALID")
    tx = "0x" + "cd" * 32
    sb.control("POST", "/payments", {"txHash": tx, "amount": str(payment["amount"])})
    assert c.register_attempt(reg_body(payment={"txHash": tx})).registered
    replay = c.register_attempt(reg_body(payment={"txHash": tx}))
    assert (replay.status, replay.code) == (409, "PAYMENT_REPLAYED")


def test_every_table_code_through_fault_injection(sandbox: SandboxServer,
                                                  connect: Callable[..., PlatformClient],
                                                  rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"], max_retries=0)
    registration = connect(sandbox, None, max_retries=0)
    for row in contract.ERROR_CODES.values():
        if row.error is errors.RegistrationRefused:
            fault(sandbox, path="/agents/register$", method="POST", kind="status",
                  status=row.status, code=row.code)
            answer = registration.register_attempt(reg_body())
            assert (answer.status, answer.code) == (row.status, row.code)
            continue
        fault(sandbox, path="/heartbeat$", method="GET", kind="status", status=row.status,
              code=row.code)
        with pytest.raises(errors.PlatformError) as info:
            c.heartbeat()
        assert type(info.value) is row.error, row.code
        assert (info.value.code, info.value.status) == (row.code, row.status)
        assert info.value.request_id
        assert info.value.retryable is row.retryable
    assert rec.sleeps == []  # max_retries=0: nothing waited
    assert c.heartbeat().problems == ()  # every rule was used up


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_internal_on_each_5xx_is_a_retryable_server_error(
        sandbox: SandboxServer, connect: Callable[..., PlatformClient], rec: Recorder,
        status: int) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/budget$", method="GET", kind="status", status=status, times=2)
    c = connect(sandbox, agent["apiKey"], max_retries=1)
    with pytest.raises(errors.ServerError) as info:
        c.budget()
    assert (info.value.code, info.value.status, info.value.retryable) == (
        "INTERNAL", status, True)
    assert info.value.exit_code == 69 and len(rec.sleeps) == 1  # retried once, then gave up
    assert c.budget().problems == ()  # both uses of the rule are spent


# --- retries, Retry-After, deadline -----------------------------------------------------------


def test_429_retry_after_seconds(sandbox: SandboxServer, connect: Callable[..., PlatformClient],
                                 rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/budget$", kind="status", status=429, code="RATE_001",
          retryAfter=7, times=2)
    c = connect(sandbox, agent["apiKey"])
    assert c.budget().problems == ()
    assert rec.sleeps == [7.0, 7.0]


def test_429_retry_after_http_date(sandbox: SandboxServer,
                                   connect: Callable[..., PlatformClient],
                                   rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/heartbeat$", kind="status", status=429, code="RATE_001",
          retryAfter=formatdate(WALL + 12, usegmt=True))
    c = connect(sandbox, agent["apiKey"], wall=lambda: WALL)
    assert c.heartbeat().problems == ()
    assert rec.sleeps == [12.0]


def test_429_longer_than_the_deadline_surfaces_rate_limited(
        sandbox: SandboxServer, connect: Callable[..., PlatformClient], rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/heartbeat$", kind="status", status=429, code="RATE_001",
          retryAfter=3600)
    c = connect(sandbox, agent["apiKey"], deadline=60.0, max_retry_after=600.0)
    with pytest.raises(errors.RateLimited) as info:
        c.heartbeat()
    assert info.value.retry_after == 600.0 and rec.sleeps == []
    assert "wait 600s" in info.value.diagnostics()


def test_503_backoff_is_stopped_by_the_deadline(sandbox: SandboxServer,
                                                connect: Callable[..., PlatformClient],
                                                rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/heartbeat$", kind="status", status=503, times=None)
    c = connect(sandbox, agent["apiKey"], deadline=20.0, max_retries=50, backoff_base=1.0,
                backoff_cap=8.0, rand=lambda: 0.999)  # near the top of each window
    with pytest.raises(errors.DeadlineExceeded) as info:
        c.heartbeat()
    assert isinstance(info.value.__cause__, errors.ServerError)
    assert info.value.__cause__.code == "INTERNAL"
    assert rec.now <= 20.0 and len(rec.sleeps) >= 3
    assert all(s <= 8.0 for s in rec.sleeps)
    assert "\n" not in info.value.diagnostics()


def test_503_backoff_with_real_sleep_is_bounded(sandbox: SandboxServer) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/heartbeat$", kind="status", status=503, times=None)
    settings = PlatformSettings(api_url=sandbox.base_url, deadline=1.0, max_retries=100,
                                backoff_base=0.05, backoff_cap=0.2)
    start = time.monotonic()
    with PlatformClient(settings, Secret(agent["apiKey"])) as c, \
            pytest.raises(errors.DeadlineExceeded):
        c.heartbeat()
    assert time.monotonic() - start < 2.0


def test_503_retry_after_is_honoured(sandbox: SandboxServer,
                                     connect: Callable[..., PlatformClient],
                                     rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/profile$", kind="status", status=503, retryAfter=3)
    c = connect(sandbox, agent["apiKey"], backoff_base=0.5)
    assert c.profile().problems == ()
    assert rec.sleeps == [3.0]  # the server's wait, not the (shorter) backoff window


def test_5xx_then_success_is_retried(sandbox: SandboxServer,
                                     connect: Callable[..., PlatformClient],
                                     rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/security-status$", kind="status", status=500, times=2)
    c = connect(sandbox, agent["apiKey"], backoff_base=2.0)
    assert c.security_status().account_healthy is True
    assert rec.sleeps == [0.0, 0.0]  # rand=0: the bottom of each full-jitter window


# --- broken responses -------------------------------------------------------------------------


def test_truncated_body(sandbox: SandboxServer, connect: Callable[..., PlatformClient],
                        rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"], max_retries=2)
    fault(sandbox, path="/heartbeat$", kind="truncate", times=1)
    assert c.heartbeat().problems == ()  # a GET is resent once the transfer broke
    assert len(rec.sleeps) == 1
    fault(sandbox, path="/heartbeat$", kind="truncate", times=None)
    with pytest.raises(errors.TransportError, match="truncated response") as info:
        c.heartbeat()
    assert "\n" not in info.value.diagnostics()
    sandbox.control("DELETE", "/faults")
    fault(sandbox, path="/engage$", kind="truncate")
    with pytest.raises(errors.TransportError, match="truncated"):
        c.engage(c.recommendations().recommendations[0].node_id or "", "LIKE")


def test_malformed_json_is_not_retried(sandbox: SandboxServer,
                                       connect: Callable[..., PlatformClient],
                                       rec: Recorder) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/profile$", kind="malformed", times=2)
    c = connect(sandbox, agent["apiKey"])
    with pytest.raises(errors.MalformedResponse, match="not valid JSON") as info:
        c.profile()
    assert info.value.exit_code == 65 and rec.sleeps == []
    with pytest.raises(errors.MalformedResponse):
        c.profile()  # the second use of the rule: one request per call
    assert c.profile().problems == ()


def test_malformed_error_body_still_types_the_error(sandbox: SandboxServer,
                                                    connect: Callable[..., PlatformClient]
                                                    ) -> None:
    c = connect(sandbox, "impr_sk_" + "y" * 40)
    fault(sandbox, path="/heartbeat$", kind="malformed")
    with pytest.raises(errors.AuthError) as info:
        c.heartbeat()
    assert info.value.code == "HTTP_401"


def test_dropped_connection(sandbox: SandboxServer, connect: Callable[..., PlatformClient],
                            rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"])
    fault(sandbox, path="/notifications$", kind="drop")
    assert c.notifications().problems == ()
    assert len(rec.sleeps) == 1
    fault(sandbox, path="/prompt$", kind="drop")
    with pytest.raises(errors.TransportError, match="dropped") as info:
        c.prompt("s", "p")
    assert info.value.exit_code == 69 and len(rec.sleeps) == 1  # the POST was not resent


def test_nulls_are_problems_not_crashes(sandbox: SandboxServer,
                                        connect: Callable[..., PlatformClient]) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/heartbeat$", kind="nulls")
    hb = connect(sandbox, agent["apiKey"]).heartbeat()
    assert hb.agent_id is None and "heartbeat.agentId: null" in hb.problems
    assert "heartbeat.tokenBalance: null" in hb.problems


def test_response_size_cap(sandbox: SandboxServer, connect: Callable[..., PlatformClient],
                           rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"], max_response_bytes=512)
    with pytest.raises(errors.MalformedResponse, match="512 byte cap"):
        c.models()
    assert rec.sleeps == []
    assert c.health().ok  # small answers still pass


def test_latency_beyond_the_read_timeout(sandbox: SandboxServer,
                                         connect: Callable[..., PlatformClient]) -> None:
    agent = new_agent(sandbox)
    fault(sandbox, path="/balance$", kind="latency", delay=1.0)
    c = connect(sandbox, agent["apiKey"], read_timeout=0.2, max_retries=1)
    assert c.balance().problems == ()  # timed out once, resent, answered


# --- idempotency ------------------------------------------------------------------------------


def test_idempotency_key_resend_returns_the_same_key(sandbox: SandboxServer,
                                                     connect: Callable[..., PlatformClient],
                                                     rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"])
    # The server creates the key, then the answer is cut: the resend must not make a second.
    fault(sandbox, path="/keys$", method="POST", kind="truncate")
    new = c.keys_create("rotation-2026-11-24")
    assert len(rec.sleeps) == 1
    keys = c.keys_list().keys
    assert len(keys) == 2 and new.id in {k.id for k in keys}
    assert new.api_key is not None
    with connect(sandbox, new.api_key) as fresh:
        assert fresh.heartbeat().agent_id == agent["agentId"]


def test_a_resent_put_stores_the_credential_once(sandbox: SandboxServer,
                                                connect: Callable[..., PlatformClient],
                                                rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"])
    fault(sandbox, path="/credentials$", method="PUT", kind="truncate")
    c.credentials_put("openrouter", Secret("sk-or-v1-" + "q" * 64))
    assert len(rec.sleeps) == 1  # the PUT ran, its answer was cut, it was sent again
    creds = c.credentials_list().credentials
    assert [(x.provider, x.is_active) for x in creds] == [("openrouter", True)]


def test_a_resent_delete_that_finds_nothing_has_done_its_job(
        sandbox: SandboxServer, connect: Callable[..., PlatformClient], rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"])
    c.credentials_put("fal", Secret("fal-" + "d" * 30))
    cred = c.credentials_list().credentials[0].id or ""
    fault(sandbox, path="/credentials$", method="DELETE", kind="truncate")
    c.credentials_delete(cred)  # deleted, answer cut, resent, 404: that is success
    assert len(rec.sleeps) == 1 and c.credentials_list().credentials == ()
    with pytest.raises(errors.NotFoundError):  # sent once: a 404 is a real "not found"
        c.credentials_delete(cred)
    prov = Secret(sandbox.control("POST", "/openrouter/provisioning-key")["key"])
    with OpenRouterClient(sandbox.openrouter_url, prov, sleep=rec.sleep,
                          clock=rec.clock) as admin:
        _, key_hash = admin.create_key("gone")
        fault(sandbox, path="^/openrouter/api/v1/keys/", method="DELETE", kind="truncate")
        admin.delete_key(key_hash)
        assert admin.list_keys() == [] and len(rec.sleeps) == 2


def test_plain_post_is_never_resent(sandbox: SandboxServer,
                                    connect: Callable[..., PlatformClient],
                                    rec: Recorder) -> None:
    agent = new_agent(sandbox)
    c = connect(sandbox, agent["apiKey"])
    fault(sandbox, path="/prompt$", method="POST", kind="status", status=503)
    with pytest.raises(errors.ServerError):
        c.prompt("s", "p")
    assert rec.sleeps == []
    fault(sandbox, path="/prompt$", method="POST", kind="truncate")
    with pytest.raises(errors.TransportError):
        c.prompt("s", "p")
    # the truncated prompt did run: exactly one prompt was charged for the two calls
    assert c.budget().balance == 100 - contract.ACTION_COSTS["prompt"]


def test_registration_is_not_resent_after_it_was_sent(sandbox: SandboxServer,
                                                      connect: Callable[..., PlatformClient],
                                                      rec: Recorder) -> None:
    c = connect(sandbox, None)
    fault(sandbox, path="/agents/register$", method="POST", kind="status", status=503)
    with pytest.raises(errors.ServerError):
        c.register_attempt(reg_body())
    assert rec.sleeps == []


def test_field_mappings(sandbox: SandboxServer, connect: Callable[..., PlatformClient]) -> None:
    agent = new_agent(sandbox)
    got = connect(sandbox, agent["apiKey"]).send_raw(
        "POST", "/prompt", {"systemPrompt": "be brief", "initialPrompt": "hi"})
    assert got.field_mappings == {"systemPrompt": "content"}
    assert got.raw["promptId"]
    again = connect(sandbox, agent["apiKey"]).send_raw(
        "POST", "/reprompt", {"promptId": got.raw["promptId"], "message": "go on"})
    assert again.field_mappings == {"promptId": "nodeId", "message": "prompt"}
    assert again.raw["nodeId"] != got.raw["promptId"]  # a new node under the aliased one


# --- OpenRouter subset ------------------------------------------------------------------------


def test_openrouter_key_lifecycle(sandbox: SandboxServer, rec: Recorder) -> None:
    prov = Secret(sandbox.control("POST", "/openrouter/provisioning-key")["key"])
    with OpenRouterClient(sandbox.openrouter_url, prov, sleep=rec.sleep,
                          clock=rec.clock) as admin:
        key, key_hash = admin.create_key("agent-1", limit=5)
        assert key.reveal().startswith(contract.OPENROUTER_KEY_PREFIX)
        assert [k.hash for k in admin.list_keys()] == [key_hash]
        with OpenRouterClient(sandbox.openrouter_url, key) as user:
            info = user.key_info()
            assert info.limit == 5 and info.problems == ()
            assert admin.set_disabled(key_hash, True).disabled is True
            with pytest.raises(errors.AuthError):
                user.key_info()
        admin.delete_key(key_hash)
        assert admin.list_keys() == []
    with OpenRouterClient(sandbox.openrouter_url, Secret("sk-or-v1-" + "0" * 64)) as nobody, \
            pytest.raises(errors.AuthError):
        nobody.key_info()
