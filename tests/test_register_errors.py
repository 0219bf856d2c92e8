"""Every bad input gives one clear line, a non-zero exit, and no silent half-registration:
expired, replayed and invalid proofs, malformed challenges, server and network failures."""

from __future__ import annotations

import base64
import copy
import dataclasses
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.api import Agent as OpsAgent
from impromptu_ops.errors import (
    Interrupted,
    MalformedResponse,
    OpsError,
    RegistrationRefused,
    TransportError,
)
from impromptu_ops.pow.solver import Plan
from impromptu_ops.registration.api import Answer
from impromptu_ops.registration.flow import Hooks, RegistrationRequest, register_agent
from impromptu_ops.secret import Secret
from impromptu_ops.store.factory import open_store
from tests.fixtures_register import Registrar
from tests.fixtures_sandbox import SandboxFactory


@pytest.fixture
def registrar(sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> Registrar:
    return Registrar(sandbox_factory(pow_difficulty=6, pow_memory_kib=16), monkeypatch, capsys)


class Tamper:
    """The real API with a hook on the challenge and on the registration body."""

    def __init__(self, registrar: Registrar,
                 challenge: Callable[[Any], Any] = lambda c: c,
                 body: Callable[[dict[str, Any]], dict[str, Any]] = lambda b: b,
                 answer: Callable[[Answer], Answer] = lambda a: a) -> None:
        self.api = OpsAgent.from_settings(registrar.settings()).registration_api()
        self._challenge, self._body, self._answer = challenge, body, answer
        self.challenges: list[Any] = []

    def register(self, body: Mapping[str, Any]) -> Answer:
        return self._answer(self.api.register(self._body(copy.deepcopy(dict(body)))))

    def challenge(self) -> Any:
        raw = self.api.challenge()
        self.challenges.append(copy.deepcopy(raw))
        return self._challenge(raw)

    def accept_tos(self, api_key: Secret) -> Mapping[str, Any]:
        return self.api.accept_tos(api_key)

    def close(self) -> None:
        self.api.close()


def attempt(registrar: Registrar, api: Tamper, name: str = "agent-x",
            hooks: Hooks | None = None, **req: Any) -> OpsError:
    settings = registrar.settings()
    with pytest.raises(OpsError) as info:
        try:
            register_agent(settings, RegistrationRequest(name=name, accept_tos=True, **req),
                           api=api, open_store=lambda: open_store(settings), hooks=hooks)
        finally:
            api.close()
    diag = info.value.diagnostics()
    assert "\n" not in diag and info.value.exit_code != 0
    return info.value


def no_agent_created(registrar: Registrar) -> None:
    assert registrar.sandbox.state.data["agents"] == {}
    assert registrar.journal_step() == "started"  # nothing sent that registered anything


def test_server_side_expired_challenge(registrar: Registrar) -> None:
    def age_the_challenge(plan: Plan) -> None:  # 20 minutes pass while we solve
        registrar.sandbox.control("POST", "/_sandbox/clock", json={"offsetSeconds": 1200})

    exc = attempt(registrar, Tamper(registrar), hooks=Hooks(on_plan=age_the_challenge))
    assert isinstance(exc, RegistrationRefused) and exc.code == "POW_EXPIRED"
    assert "nothing was registered" in exc.diagnostics()
    assert "run register again" in exc.diagnostics()
    no_agent_created(registrar)


def test_challenge_already_expired_is_refused_before_solving(registrar: Registrar) -> None:
    registrar.sandbox.control("POST", "/_sandbox/clock", json={"offsetSeconds": -3600})
    res = registrar.run("register", "--name", "late", "--accept-tos")
    assert res.code == 1
    assert "the challenge expired at" in res.error and "nothing was registered" in res.error
    assert "PoW:" not in res.err  # refused before any hashing
    no_agent_created(registrar)


def test_replayed_chain(registrar: Registrar, tmp_path: Path) -> None:
    first = Tamper(registrar)
    settings = registrar.settings()
    register_agent(settings, RegistrationRequest(name="first", accept_tos=True), api=first,
                   open_store=lambda: open_store(settings))
    first.close()
    spent = first.challenges[0]
    registrar.setenv(IMPROMPTU_STORE_LOCAL_PATH=str(tmp_path / "second.store"))
    registrar.sandbox.state.data["agents"].clear()
    exc = attempt(registrar, Tamper(registrar, challenge=lambda _: spent), name="second")
    assert isinstance(exc, RegistrationRefused) and exc.code == "POW_REPLAYED"
    assert "already used" in exc.diagnostics() and "nothing was registered" in exc.diagnostics()
    no_agent_created(registrar)


def test_invalid_solution(registrar: Registrar) -> None:
    def corrupt(body: dict[str, Any]) -> dict[str, Any]:
        if "pow" in body:
            body["pow"]["nonces"] = [n + 1 for n in body["pow"]["nonces"]]
        return body

    exc = attempt(registrar, Tamper(registrar, body=corrupt))
    assert isinstance(exc, RegistrationRefused) and exc.code == "POW_INVALID"
    assert "rejected the proof" in exc.diagnostics()
    no_agent_created(registrar)


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("missing rounds", lambda c: c.pop("rounds"), "rounds must be a non-empty list"),
    ("bad base64", lambda c: c["rounds"][2].update(salt="***"), "rounds[2].salt is not valid"),
    ("difficulty 0", lambda c: c["rounds"][0].update(difficulty=0), "difficulty=0 is outside"),
    ("difficulty 300", lambda c: c["rounds"][0].update(difficulty=300),
     "difficulty=300 is outside"),
    ("memory 0", lambda c: c["params"].update(memoryKiB=0), "memoryKiB=0 is outside"),
    ("memory 64 GiB", lambda c: c["params"].update(memoryKiB=64 * 1024 * 1024),
     "memoryKiB=67108864 is outside"),
    ("salt of 3 bytes", lambda c: c["rounds"][0].update(salt=base64.b64encode(b"abc").decode()),
     "has 3 bytes"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_challenge(registrar: Registrar, case: str,
                             mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    def bad(raw: Any) -> Any:
        doc = copy.deepcopy(dict(raw))
        mutate(doc)
        return doc

    exc = attempt(registrar, Tamper(registrar, challenge=bad))
    assert isinstance(exc, MalformedResponse) and exc.exit_code == 65
    assert message in exc.diagnostics()
    no_agent_created(registrar)


def test_malformed_challenge_through_the_cli(registrar: Registrar) -> None:
    registrar.sandbox.control("POST", "/_sandbox/faults", json={
        "path": "/register/challenge$", "method": "POST", "kind": "nulls"})
    res = registrar.run("register", "--name", "nully", "--accept-tos")
    assert res.code == 65 and "malformed PoW challenge" in res.error
    no_agent_created(registrar)


def test_difficulty_above_the_cap_is_refused_with_the_flag_named(registrar: Registrar) -> None:
    res = registrar.run("register", "--name", "capped", "--accept-tos", "--max-difficulty", "4")
    assert res.code == 1
    assert "6 bits of difficulty, above the cap of 4" in res.error
    assert "--max-difficulty" in res.error
    no_agent_created(registrar)
    res = registrar.run("register", "--name", "capped", "--accept-tos", "--max-memory-mib", "0")
    assert res.code == 78 and "pow.max_memory_mib" in res.error


def test_server_error_before_anything_was_sent(registrar: Registrar) -> None:
    registrar.sandbox.control("POST", "/_sandbox/faults", json={
        "path": "/agents/register$", "method": "POST", "kind": "status", "status": 500,
        "times": None})
    registrar.setenv(IMPROMPTU_PLATFORM_MAX_RETRIES="1", IMPROMPTU_PLATFORM_BACKOFF_BASE="0.01")
    res = registrar.run("register", "--name", "srv", "--accept-tos")
    assert res.code == 69 and "INTERNAL" in res.error
    no_agent_created(registrar)


def test_server_error_on_the_proof_submission_says_nothing_was_registered(
        registrar: Registrar) -> None:
    def fail_next(plan: Plan) -> None:
        registrar.sandbox.control("POST", "/_sandbox/faults", json={
            "path": "/agents/register$", "method": "POST", "kind": "status", "status": 503,
            "times": None})

    exc = attempt(registrar, Tamper(registrar), hooks=Hooks(on_plan=fail_next))
    assert exc.exit_code == 69 and "INTERNAL" in exc.diagnostics()
    no_agent_created(registrar)


def test_lost_answer_is_recorded_and_blocks_a_blind_retry(registrar: Registrar) -> None:
    def lose_the_answer(plan: Plan) -> None:  # the server registers, the answer is cut off
        registrar.sandbox.control("POST", "/_sandbox/faults", json={
            "path": "/agents/register$", "method": "POST", "kind": "truncate"})

    exc = attempt(registrar, Tamper(registrar), hooks=Hooks(on_plan=lose_the_answer))
    assert isinstance(exc, TransportError)
    assert "answer was lost" in exc.diagnostics() and "--force-new" in exc.diagnostics()
    assert registrar.journal_step() == "submitted"
    assert len(registrar.sandbox.state.data["agents"]) == 1  # it did register
    again = registrar.run("register", "--name", "agent-x", "--accept-tos")
    assert again.code == 1 and "never recorded" in again.error and "--force-new" in again.error
    forced = registrar.run("register", "--name", "agent-y", "--accept-tos", "--force-new")
    assert forced.code == 0, forced.err


def test_interrupt_while_solving(registrar: Registrar) -> None:
    stop = threading.Event()
    exc = attempt(registrar, Tamper(registrar),
                  hooks=Hooks(on_plan=lambda _: stop.set(), stop=stop))
    assert isinstance(exc, Interrupted) and exc.exit_code == 130
    assert "nothing was registered" in exc.diagnostics()
    no_agent_created(registrar)


def test_name_taken_is_a_validation_error(registrar: Registrar, tmp_path: Path) -> None:
    assert registrar.run("register", "--name", "taken", "--accept-tos").code == 0
    registrar.setenv(IMPROMPTU_STORE_LOCAL_PATH=str(tmp_path / "other.store"))
    res = registrar.run("register", "--name", "TAKEN", "--accept-tos")
    assert res.code == 1 and "VALIDATION_ERROR" in res.error
    assert registrar.journal_step() == "started"


def test_a_second_concurrent_registration_is_turned_away(registrar: Registrar) -> None:
    from impromptu_ops.locks import ProcessLock

    lock = registrar.settings().paths.state_dir / "registration.lock"
    with ProcessLock(lock, "registration"):
        res = registrar.run("register", "--name", "twin", "--accept-tos")
    assert res.code == 75 and "another registration run holds" in res.error
    assert registrar.sandbox.state.data["agents"] == {}


def test_registration_answer_without_a_key_is_flagged_not_hidden(registrar: Registrar) -> None:
    def drop_key(answer: Answer) -> Answer:
        if answer.status == 201:
            return Answer(201, None, {k: v for k, v in answer.body.items() if k != "apiKey"})
        return answer

    exc = attempt(registrar, Tamper(registrar, answer=drop_key))
    assert isinstance(exc, MalformedResponse)
    assert "without an agentId and apiKey" in exc.diagnostics()
    assert "key may be lost" in exc.diagnostics()
    assert registrar.journal_step() == "submitted"
    again = registrar.run("register", "--name", "agent-x2", "--accept-tos")
    assert again.code == 1 and "never recorded" in again.error


class UnreachableOnProof(Tamper):
    """The platform stops answering (connection refused) once a proof or payment is ready."""

    def __init__(self, registrar: Registrar) -> None:
        super().__init__(registrar)
        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        settings = registrar.settings()
        platform = dataclasses.replace(settings.platform, max_retries=1, backoff_base=0.01,
                                       api_url=f"http://127.0.0.1:{port}/api")
        self.dead = OpsAgent.from_settings(
            dataclasses.replace(settings, platform=platform)).registration_api()

    def register(self, body: Mapping[str, Any]) -> Answer:
        if "pow" in body or "payment" in body:
            return self.dead.register(body)
        return super().register(body)

    def close(self) -> None:
        self.dead.close()
        super().close()


def test_unreachable_on_the_proof_submission_is_not_a_lost_answer(
        sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Connection refused: nothing left the process, so no agent can exist; the record goes
    back to the step before (here: payment, with the accepted proof) instead of 'submitted'
    (which would demand --force-new and a check with the platform)."""
    registrar = Registrar(sandbox_factory(pow_difficulty=4, pow_memory_kib=16,
                                          payment_mode="upfront"), monkeypatch, capsys)
    first = registrar.run("register", "--name", "payer", "--accept-tos")
    assert first.code == 1 and "needs a fee" in first.error
    assert registrar.journal_step() == "payment"
    tx = "0x" + "ef" * 32
    registrar.sandbox.control("POST", "/_sandbox/payments", json={
        "txHash": tx, "amount": str(10 * 10**18)})
    exc = attempt(registrar, UnreachableOnProof(registrar), name="payer", payment_tx=tx)
    assert isinstance(exc, TransportError) and "cannot connect" in exc.diagnostics()
    assert "nothing was sent, so nothing was registered" in exc.diagnostics()
    assert "answer was lost" not in exc.diagnostics()
    assert registrar.journal_step() == "payment"
    assert registrar.sandbox.state.data["agents"] == {}
    again = registrar.run("register", "--name", "payer", "--accept-tos", "--payment-tx", tx)
    assert again.code == 0, again.err
    assert "reusing the proof of work" in again.err and "PoW:" not in again.err
