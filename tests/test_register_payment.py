"""The upfront fee: the receipt is checked on a real chain (anvil) before anything is sent,
and the pure receipt/payment-request checks refuse hostile input cleanly."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops import contract
from impromptu_ops.errors import MalformedResponse
from impromptu_ops.registration.payment import (
    PaymentRequest,
    parse_payment_request,
    receipt_problems,
)
from tests.fixtures_chain import Chain
from tests.fixtures_register import Registrar
from tests.fixtures_sandbox import SandboxFactory

FEE = 10**18
RECIPIENT = "0x000000000000000000000000000000000000fEe0"


@pytest.fixture
def paid_registrar(sandbox_factory: SandboxFactory, chain: Chain,
                   monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> Registrar:
    sandbox = sandbox_factory(payment_mode="upfront", chain_rpc=chain.url,
                              payment_token=chain.token, registration_fee=FEE,
                              payment_recipient=RECIPIENT)
    registrar = Registrar(sandbox, monkeypatch, capsys)
    registrar.setenv(IMPROMPTU_CHAIN_RPC=chain.url)
    return registrar


def test_receipt_is_checked_before_submitting(paid_registrar: Registrar, chain: Chain) -> None:
    wrong_recipient = chain.pay(chain.accounts[3], FEE).tx_hash
    res = paid_registrar.run("register", "--name", "payer", "--accept-tos",
                             "--payment-tx", wrong_recipient)
    assert res.code == 65
    assert "does not pay the fee" in res.error and f"no Transfer of token {chain.token}" \
        in res.error and "nothing was submitted" in res.error
    assert paid_registrar.sandbox.state.data["payments"]["used"] == {}

    too_little = chain.pay(RECIPIENT, FEE - 1).tx_hash
    res = paid_registrar.run("register", "--name", "payer", "--accept-tos",
                             "--payment-tx", too_little)
    assert res.code == 65 and f"transfers {FEE - 1} base units" in res.error

    good = chain.pay(RECIPIENT, FEE).tx_hash
    res = paid_registrar.run("register", "--name", "payer", "--accept-tos", "--payment-tx", good)
    assert res.code == 0, res.err
    assert "checked on chain 8453" in res.err and "reusing the proof of work" in res.err
    assert paid_registrar.sandbox.state.data["payments"]["used"] == {good.lower(): res.out
                                                                     .split("agentId: ")[1]
                                                                     .split()[0]}


def test_unreachable_chain_rpc_keeps_the_proof_and_submits_nothing(
        paid_registrar: Registrar, chain: Chain) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    good = chain.pay(RECIPIENT, FEE).tx_hash
    paid_registrar.setenv(IMPROMPTU_CHAIN_RPC=dead)
    res = paid_registrar.run("register", "--name", "rpc-down", "--accept-tos",
                             "--payment-tx", good)
    assert res.code == 69 and "nothing was submitted" in res.error
    assert "the accepted proof is kept" in res.error
    assert paid_registrar.journal_step() == "payment"
    assert paid_registrar.sandbox.state.data["payments"]["used"] == {}
    paid_registrar.setenv(IMPROMPTU_CHAIN_RPC=chain.url)
    res = paid_registrar.run("register", "--name", "rpc-down", "--accept-tos",
                             "--payment-tx", good)
    assert res.code == 0, res.err
    assert "reusing the proof of work" in res.err and "PoW:" not in res.err


def request(amount: int = 100) -> PaymentRequest:
    return PaymentRequest(8453, "0x" + "11" * 20, amount, "0x" + "22" * 20, "ref")


def transfer_log(token: str, to: str, amount: int) -> dict[str, Any]:
    return {"address": token, "data": hex(amount),
            "topics": [contract.ERC20_TRANSFER_TOPIC, "0x" + "00" * 12 + "33" * 20,
                       "0x" + "00" * 12 + to[2:]]}


def test_receipt_problems() -> None:
    req = request()
    ok = {"status": "0x1", "logs": [transfer_log(req.token, req.recipient, 100)]}
    assert receipt_problems(ok, req) == []
    assert receipt_problems({**ok, "status": "0x0"}, req) == [
        "the transaction failed (receipt status is not 1)"]
    assert "not found" in receipt_problems(None, req)[0]
    other_token = {"status": "0x1", "logs": [transfer_log("0x" + "44" * 20, req.recipient, 999)]}
    assert "no Transfer" in receipt_problems(other_token, req)[0]
    short = {"status": "0x1", "logs": [transfer_log(req.token, req.recipient, 99)]}
    assert receipt_problems(short, req) == [
        "it transfers 99 base units to the recipient; the fee is 100"]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=70),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["status", "logs", "address", "topics",
                                                       "data", "x"]), inner, max_size=5),
                    max_leaves=25))
def test_hostile_receipts_never_raise(receipt: Any) -> None:
    problems = receipt_problems(receipt, request())
    assert problems  # nothing random proves a payment


def test_payment_request_parsing() -> None:
    good = {"chainId": 8453, "token": "0x" + "11" * 20, "amount": "1000",
            "recipient": "0x" + "22" * 20, "reference": "ref_1"}
    assert parse_payment_request(good).amount == 1000
    for key, value in (("chainId", "8453"), ("token", "0x12"), ("amount", "-1"),
                       ("amount", 1.5), ("recipient", None), ("reference", 5)):
        with pytest.raises(MalformedResponse):
            parse_payment_request({**good, key: value})
    with pytest.raises(MalformedResponse, match="without a payment object"):
        parse_payment_request(None)
