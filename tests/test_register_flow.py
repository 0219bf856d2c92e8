"""Registration end to end against the sandbox over real HTTP: every payment mode, both
terms paths, wallet keys, and that nothing secret is ever printed."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from impromptu_ops import contract
from impromptu_ops.errors import AuthError
from tests.fixtures_register import Registrar
from tests.fixtures_sandbox import SandboxFactory


@pytest.fixture
def registrar(sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest) -> Registrar:
    config = getattr(request, "param", {})
    return Registrar(sandbox_factory(**config), monkeypatch, capsys)


def no_secret_in(text: str, *secrets: str) -> None:
    for value in secrets:
        assert value not in text
    assert not contract.KEY_SHAPES.search(text), text


@pytest.mark.parametrize("registrar", [{"payment_mode": "none"}], indirect=True)
def test_register_with_terms_accepted(registrar: Registrar) -> None:
    res = registrar.run("register", "--name", "alpha", "--description", "a test agent",
                        "--capabilities", "text,code", "--accept-tos", "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["status"] == "ACTIVE" and summary["termsAccepted"] is True
    assert summary["tier"] == "REGISTERED" and summary["agentId"].startswith("agt")
    assert summary["walletAddress"].startswith("0x")
    assert summary["secrets"] == ["impromptu-api-key"]
    assert summary["secretsStoredIn"].startswith("local ")
    assert "PoW: 10 rounds" in res.err and "99% within" in res.err
    key = registrar.stored()
    assert contract.API_KEY_RE.match(key.reveal())
    no_secret_in(res.out + res.err, key.reveal())
    with registrar.client(key) as client:  # the stored key is the one the server issued
        beat = client.heartbeat()
    assert beat.raw["agentId"] == summary["agentId"]
    assert registrar.journal_step() is None  # finished: no record left behind


@pytest.mark.parametrize("registrar", [{"payment_mode": "none"}], indirect=True)
def test_register_without_terms_stays_pending_until_accept_tos(registrar: Registrar) -> None:
    res = registrar.run("register", "--name", "beta")
    assert res.code == 0, res.err
    assert "status: PENDING" in res.out and "termsAccepted: False" in res.out
    assert "register accept-tos" in res.err
    assert registrar.journal_step() == "stored"
    with registrar.client() as client, pytest.raises(AuthError) as refused:
        client.heartbeat()
    assert refused.value.code == "ACCOUNT_NOT_ACTIVE"
    # A second register run tells the operator what is left to do instead of registering.
    again = registrar.run("register", "--name", "beta-2")
    assert again.code == 1 and "already registered" in again.err
    assert "register accept-tos" in again.err
    elsewhere = registrar.settings().paths.data_dir / "empty.store"
    registrar.monkeypatch.setenv("IMPROMPTU_STORE_LOCAL_PATH", str(elsewhere))
    no_key = registrar.run("register", "accept-tos")
    assert no_key.code == 1 and "no secret named impromptu-api-key" in no_key.error
    assert "register the agent first" in no_key.error
    registrar.monkeypatch.delenv("IMPROMPTU_STORE_LOCAL_PATH")
    accepted = registrar.run("register", "accept-tos")
    assert accepted.code == 0 and "status: ACTIVE" in accepted.out
    with registrar.client() as client:
        assert client.heartbeat().raw["name"] == "beta"
    assert registrar.journal_step() is None


@pytest.mark.parametrize("registrar", [{"payment_mode": "withheld"}], indirect=True)
def test_withheld_mode_has_nothing_to_pay(registrar: Registrar) -> None:
    res = registrar.run("register", "--name", "gamma", "--accept-tos",
                        "--payment-tx", "0x" + "12" * 32)
    assert res.code == 0, res.err
    assert "nothing to pay now" in res.err and "first earnings" in res.err
    assert "was not used: the platform asked no fee up front" in res.err
    # The sandbox recorded the fee to take from the first earnings; nothing was paid.
    intents = registrar.sandbox.state.data["ledgerIntents"]
    assert [i["type"] for i in intents] == ["REGISTRATION_FEE"]
    assert not registrar.sandbox.state.data["payments"]["used"]


@pytest.mark.parametrize("registrar", [{"payment_mode": "upfront"}], indirect=True)
def test_upfront_payment_asks_then_registers_with_a_paid_tx(registrar: Registrar) -> None:
    first = registrar.run("register", "--name", "delta", "--accept-tos")
    assert first.code == 1
    assert "registration needs a fee" in first.error and "nothing was registered" in first.error
    assert "--payment-tx" in first.err and "0x000000000000000000000000000000000000fEe0" in first.err
    assert registrar.journal_step() == "payment"
    tx = "0x" + "ab" * 32
    registrar.sandbox.control("POST", "/_sandbox/payments", json={
        "txHash": tx, "amount": str(10 * 10**18)})
    second = registrar.run("register", "--name", "delta", "--accept-tos", "--payment-tx", tx)
    assert second.code == 0, second.err
    assert "status: ACTIVE" in second.out
    assert "no chain RPC configured" in second.err
    assert "reusing the proof of work" in second.err and "PoW:" not in second.err
    assert registrar.journal_step() is None
    with registrar.client() as client:
        assert client.heartbeat().raw["name"] == "delta"


@pytest.mark.parametrize("registrar", [{"payment_mode": "upfront"}], indirect=True)
def test_upfront_payment_refused_by_the_server(registrar: Registrar) -> None:
    tx = "0x" + "cd" * 32  # never registered with the sandbox: not a real transfer
    res = registrar.run("register", "--name", "eps", "--accept-tos", "--payment-tx", tx)
    assert res.code == 1
    assert "PAYMENT_INVALID" in res.error and "nothing was registered" in res.error
    assert registrar.journal_step() == "started"
    bad = registrar.run("register", "--name", "eps", "--payment-tx", "0x1234")
    assert bad.code == 65 and "64 hex digits" in bad.error


@pytest.mark.parametrize("registrar", [{"return_wallet_key": True}], indirect=True)
def test_wallet_private_key_is_stored_too(registrar: Registrar) -> None:
    res = registrar.run("register", "--name", "zeta", "--accept-tos")
    assert res.code == 0, res.err
    assert "secrets: impromptu-api-key, wallet-private-key" in res.out
    wallet_key = registrar.stored("wallet-private-key").reveal()
    assert wallet_key.startswith("0x") or len(wallet_key) == 64
    no_secret_in(res.out + res.err, wallet_key, registrar.stored().reveal())


@pytest.mark.parametrize("registrar", [{"payment_mode": "none"}], indirect=True)
def test_store_slot_already_holding_a_key_is_refused_before_any_work(
        registrar: Registrar) -> None:
    assert registrar.run("register", "--name", "eta", "--accept-tos").code == 0
    hashes_before = registrar.sandbox.state.data["challenges"].copy()
    res = registrar.run("register", "--name", "theta", "--accept-tos")
    assert res.code == 1 and "already holds impromptu-api-key" in res.error
    assert registrar.sandbox.state.data["challenges"] == hashes_before  # no challenge fetched


@pytest.mark.parametrize("registrar", [{"payment_mode": "none"}], indirect=True)
def test_register_over_the_legacy_paths(registrar: Registrar) -> None:
    registrar.setenv(IMPROMPTU_PLATFORM_PATH_PREFIX="legacy")
    res = registrar.run("register", "--name", "old-school", "--accept-tos")
    assert res.code == 0, res.err
    with registrar.client() as client:
        assert client.heartbeat().raw["name"] == "old-school"


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("registrar", "answer", "status"),
                         [({}, "y", "ACTIVE"), ({}, "n", "PENDING")],
                         indirect=["registrar"])
def test_terms_prompt_on_a_tty(registrar: Registrar, monkeypatch: pytest.MonkeyPatch,
                               answer: str, status: str) -> None:
    monkeypatch.setattr(sys, "stdin", FakeTty(answer + "\n"))
    res = registrar.run("register", "--name", f"tty-{answer}")
    assert res.code == 0, res.err
    assert "Accept the Impromptu terms of service" in res.err
    assert f"status: {status}" in res.out


@pytest.mark.parametrize("registrar", [{}], indirect=True)
def test_referrer_is_passed_and_checked(registrar: Registrar, tmp_path: Path) -> None:
    first = registrar.run("register", "--name", "referrer", "--accept-tos", "--json")
    referrer_id = json.loads(first.out)["agentId"]
    registrar.setenv(IMPROMPTU_STORE_LOCAL_PATH=str(tmp_path / "b.store"))
    bad = registrar.run("register", "--name", "referred", "--accept-tos",
                        "--referrer", "agt_nobody")
    assert bad.code == 1 and "VALIDATION_ERROR" in bad.error
    res = registrar.run("register", "--name", "referred", "--accept-tos", "--json",
                        "--referrer", referrer_id)
    assert res.code == 0, res.err
    agent = registrar.sandbox.state.data["agents"][json.loads(res.out)["agentId"]]
    assert agent["referrer"] == referrer_id


@pytest.mark.parametrize("registrar", [{"payment_mode": "upfront"}], indirect=True)
def test_a_kept_proof_the_server_no_longer_takes_is_replaced_by_a_fresh_one(
        registrar: Registrar) -> None:
    first = registrar.run("register", "--name", "late-payer", "--accept-tos")
    assert first.code == 1 and registrar.journal_step() == "payment"
    tx = "0x" + "cd" * 32
    registrar.sandbox.control("POST", "/_sandbox/payments", json={
        "txHash": tx, "amount": str(10 * 10**18)})
    # Meanwhile the platform forgot the accepted chain: it refuses the kept proof once.
    registrar.sandbox.control("POST", "/_sandbox/faults", json={
        "path": "/agents/register$", "method": "POST", "kind": "status", "status": 409,
        "code": "POW_REPLAYED", "times": 1})
    second = registrar.run("register", "--name", "late-payer", "--accept-tos",
                           "--payment-tx", tx)
    assert second.code == 0, second.err
    assert "the earlier proof was refused (POW_REPLAYED); solving a fresh challenge" in second.err
    assert "PoW: 10 rounds" in second.err and "status: ACTIVE" in second.out
    assert registrar.journal_step() is None
