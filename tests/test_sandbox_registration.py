"""Registration against the sandbox: the PoW loop, each PoW and payment refusal, the answer."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import httpx
import pytest

from impromptu_ops import contract
from impromptu_ops.pow.challenge import parse_challenge
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.sandbox.wallet import address_of
from tests.fixtures_chain import Chain
from tests.fixtures_sandbox import SandboxFactory, register, solve


def post(sb: SandboxServer, body: dict[str, Any], prefix: str = "/v1") -> httpx.Response:
    return httpx.post(f"{sb.base_url}{prefix}/agents/register", json=body, timeout=30)


def challenge(sb: SandboxServer) -> dict[str, Any]:
    resp = httpx.post(sb.base_url + "/v1/agents/register/challenge")
    assert resp.status_code == 201
    body: dict[str, Any] = resp.json()
    return body


def code(resp: httpx.Response) -> str:
    err = resp.json()["error"]
    assert resp.status_code == contract.ERROR_CODES[err["code"]].status
    return str(err["code"])


BODY = {"name": "Ada", "description": "d", "capabilities": ["chat"], "acceptTos": True}


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_happy_path_on_both_generations(sandbox: SandboxServer, prefix: str) -> None:
    first = post(sandbox, BODY, prefix)
    assert code(first) == "POW_REQUIRED"
    assert "register/challenge" in first.json()["error"]["hint"]
    chal = challenge(sandbox)
    parsed = parse_challenge(chal)  # the client's own parser accepts it
    assert parsed.params.memory_kib == 64 and len(parsed.rounds) == contract.POW_ROUNDS
    assert all(len(r.salt) == contract.POW_SALT_BYTES for r in parsed.rounds)
    assert set(chal) == {"chainId", "algorithm", "params", "rounds", "expiresAt"}
    done = post(sandbox, {**BODY, "pow": {"chainId": chal["chainId"], "nonces": solve(chal)}},
                prefix)
    assert done.status_code == 201, done.text
    body = done.json()
    assert contract.API_KEY_RE.match(body["apiKey"])
    assert body["status"] == "ACTIVE" and body["tier"] == "REGISTERED"
    assert body["budget"]["balance"] == 100 and body["quickStart"]
    assert "walletPrivateKey" not in body
    state = (sandbox.state_dir / "state.json").read_text()
    assert body["apiKey"] not in state
    assert hashlib.sha256(body["apiKey"].encode()).hexdigest() in state
    auth = {"Authorization": f"Bearer {body['apiKey']}"}
    beat = httpx.get(f"{sandbox.base_url}{prefix}/agent/heartbeat", headers=auth)
    assert beat.json()["agentId"] == body["agentId"]


def test_without_terms_the_account_is_pending(sandbox: SandboxServer) -> None:
    body = register(sandbox, acceptTos=False)
    assert body["status"] == "PENDING"
    auth = {"Authorization": f"Bearer {body['apiKey']}"}
    assert code(httpx.get(sandbox.base_url + "/v1/agent/budget", headers=auth)) == \
        "ACCOUNT_NOT_ACTIVE"


def test_wallet_key_matches_the_address(sandbox_factory: SandboxFactory) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    sb = sandbox_factory(return_wallet_key=True)
    body = register(sb)
    key = ec.derive_private_key(int(body["walletPrivateKey"], 16), ec.SECP256K1())
    assert address_of(key) == body["walletAddress"]


def test_validation_errors_name_each_field(sandbox: SandboxServer) -> None:
    resp = post(sandbox, {"name": "", "capabilities": "chat", "acceptTos": "yes",
                          "referrer": "agt_nobody"})
    assert code(resp) == "VALIDATION_ERROR"
    assert set(resp.json()["error"]["fields"]) == {"name", "capabilities", "acceptTos",
                                                   "referrer"}
    register(sandbox, name="Taken")
    again = post(sandbox, {**BODY, "name": "taken"})
    assert code(again) == "VALIDATION_ERROR" and again.json()["error"]["fields"]["name"]


def test_wrong_nonces_are_invalid_and_spend_the_chain(sandbox: SandboxServer) -> None:
    chal = challenge(sandbox)
    nonces = solve(chal)
    bad = list(nonces)
    parsed = parse_challenge(chal)
    from impromptu_ops.pow.verify import check_round

    wrong = 0
    while check_round(parsed, 0, wrong):
        wrong += 1
    bad[0] = wrong
    resp = post(sandbox, {**BODY, "pow": {"chainId": chal["chainId"], "nonces": bad}})
    assert code(resp) == "POW_INVALID" and "[0]" in resp.json()["error"]["message"]
    # single use even after a failed submission: the right answer is now a replay
    again = post(sandbox, {**BODY, "pow": {"chainId": chal["chainId"], "nonces": nonces}})
    assert code(again) == "POW_REPLAYED"


@pytest.mark.parametrize("pow_obj", [
    {"chainId": "not-a-chain", "nonces": [0] * 10},
    {"chainId": None, "nonces": [0] * 10},
])
def test_unknown_chain_is_invalid(sandbox: SandboxServer, pow_obj: dict[str, Any]) -> None:
    assert code(post(sandbox, {**BODY, "pow": pow_obj})) == "POW_INVALID"


def test_malformed_nonces_are_invalid(sandbox: SandboxServer) -> None:
    chal = challenge(sandbox)
    for nonces in ([1, 2], ["x"] * 10, [-1] * 10):
        fresh = challenge(sandbox) if nonces != [1, 2] else chal
        resp = post(sandbox, {**BODY, "pow": {"chainId": fresh["chainId"], "nonces": nonces}})
        assert code(resp) == "POW_INVALID"


def test_replayed_after_success(sandbox: SandboxServer) -> None:
    chal = challenge(sandbox)
    proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
    assert post(sandbox, {**BODY, "pow": proof}).status_code == 201
    assert code(post(sandbox, {**BODY, "name": "Other", "pow": proof})) == "POW_REPLAYED"


def test_expired_on_the_simulated_clock(sandbox: SandboxServer) -> None:
    chal = challenge(sandbox)
    proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
    sandbox.control("POST", "clock", {"offsetSeconds": contract.POW_EXPIRY_SECONDS + 1})
    assert code(post(sandbox, {**BODY, "pow": proof})) == "POW_EXPIRED"
    sandbox.control("POST", "clock", {"offsetSeconds": 0})
    assert code(post(sandbox, {**BODY, "pow": proof})) == "POW_REPLAYED"


def test_challenge_params_follow_the_config(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(pow_memory_kib=256, pow_iterations=2, pow_difficulty=3, pow_rounds=4)
    chal = challenge(sb)
    assert chal["params"] == {"memoryKiB": 256, "iterations": 2, "parallelism": 1,
                              "hashLength": 32}
    assert [r["difficulty"] for r in chal["rounds"]] == [3] * 4
    assert register(sb)["apiKey"]


def test_no_pow_mode(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(pow_required=False)
    assert post(sb, BODY).status_code == 201


def test_withheld_fee_records_a_negative_ledger_intent(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(payment_mode="withheld", registration_fee=1234)
    body = register(sb)
    intents = sb.control("GET", "state")["ledgerIntents"]
    assert [(i["agentId"], i["type"], i["amount"]) for i in intents] == [
        (body["agentId"], "REGISTRATION_FEE", "-1234")]


def tx() -> str:
    return "0x" + secrets.token_hex(32)


def test_upfront_payment_flow_and_failures(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(payment_mode="upfront", registration_fee=500)
    chal = challenge(sb)
    proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
    need = post(sb, {**BODY, "pow": proof})
    assert code(need) == "PAYMENT_REQUIRED"
    terms = need.json()["payment"]
    assert terms["amount"] == "500" and terms["chainId"] == contract.BASE_CHAIN_ID
    assert set(terms) == {"chainId", "token", "amount", "recipient", "reference"}
    # the same verified proof may come back with the payment; the reference is stable
    again = post(sb, {**BODY, "pow": proof})
    assert again.json()["payment"]["reference"] == terms["reference"]

    def pay(txh: str) -> httpx.Response:
        return post(sb, {**BODY, "pow": proof, "payment": {"txHash": txh}})

    assert code(pay("0x1234")) == "PAYMENT_INVALID"
    assert code(pay(tx())) == "PAYMENT_INVALID"  # unknown transfer
    small = tx()
    sb.control("POST", "payments", {"txHash": small, "amount": "499"})
    assert code(pay(small)) == "PAYMENT_INVALID"
    elsewhere = tx()
    sb.control("POST", "payments", {"txHash": elsewhere, "amount": "500",
                                    "recipient": "0x" + "1" * 40})
    assert code(pay(elsewhere)) == "PAYMENT_INVALID"
    good = tx()
    sb.control("POST", "payments", {"txHash": good, "amount": "500"})
    done = pay(good)
    assert done.status_code == 201, done.text
    # a paid hash cannot pay twice, even with a fresh proof
    chal2 = challenge(sb)
    proof2 = {"chainId": chal2["chainId"], "nonces": solve(chal2)}
    replay = post(sb, {**BODY, "name": "Bob", "pow": proof2, "payment": {"txHash": good}})
    assert code(replay) == "PAYMENT_REPLAYED"


def test_different_nonces_on_a_verified_chain_are_a_replay(
        sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(payment_mode="upfront")
    chal = challenge(sb)
    nonces = solve(chal)
    assert code(post(sb, {**BODY, "pow": {"chainId": chal["chainId"], "nonces": nonces}})) == \
        "PAYMENT_REQUIRED"
    other = [n + 2**40 for n in nonces]
    assert code(post(sb, {**BODY, "pow": {"chainId": chal["chainId"], "nonces": other}})) == \
        "POW_REPLAYED"


def test_upfront_payment_verified_on_a_real_chain(sandbox_factory: SandboxFactory,
                                                  chain: Chain) -> None:
    recipient = chain.accounts[5]
    sb = sandbox_factory(payment_mode="upfront", chain_rpc=chain.url, payment_token=chain.token,
                         payment_recipient=recipient, registration_fee=10**18)
    chal = challenge(sb)
    proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
    terms = post(sb, {**BODY, "pow": proof}).json()["payment"]
    assert terms["chainId"] == int(chain.rpc.request("eth_chainId"), 16)
    assert terms["token"] == chain.token and terms["recipient"] == recipient

    def pay(txh: str) -> httpx.Response:
        return post(sb, {**BODY, "pow": proof, "payment": {"txHash": txh}})

    too_small = chain.pay(recipient, 10**18 - 1).tx_hash
    assert code(pay(too_small)) == "PAYMENT_INVALID"
    wrong_to = chain.pay(chain.accounts[6], 10**18).tx_hash
    assert code(pay(wrong_to)) == "PAYMENT_INVALID"
    assert code(pay("0x" + "ab" * 32)) == "PAYMENT_INVALID"  # never mined
    good = chain.pay(recipient, 2 * 10**18).tx_hash
    done = pay(good)
    assert done.status_code == 201, done.text
    chal2 = challenge(sb)
    proof2 = {"chainId": chal2["chainId"], "nonces": solve(chal2)}
    assert code(post(sb, {**BODY, "name": "Eve", "pow": proof2,
                          "payment": {"txHash": good}})) == "PAYMENT_REPLAYED"


def _argon2_zero_bits(chal: dict[str, Any], index: int, nonce: int, memory_kib: int,
                      iterations: int) -> bool:
    """The §3 rule computed here with argon2-cffi directly (not the project's verifier)."""
    import base64

    from argon2.low_level import Type, hash_secret_raw

    rnd = chal["rounds"][index]
    digest = hash_secret_raw(f"{chal['chainId']}:{index}:{nonce}".encode(),
                             base64.b64decode(rnd["salt"]), time_cost=iterations,
                             memory_cost=memory_kib, parallelism=1, hash_len=32, type=Type.ID)
    bits = int(rnd["difficulty"])
    return int.from_bytes(digest, "big") >> (256 - bits) == 0


def test_pow_is_verified_with_the_parameters_handed_out(sandbox_factory: SandboxFactory) -> None:
    sb = sandbox_factory(pow_memory_kib=128, pow_iterations=2, pow_difficulty=3, pow_rounds=3)

    def find(chal: dict[str, Any], index: int, memory: int, iterations: int,
             also_fails_handed_out: bool = False) -> int:
        nonce = 0
        while not (_argon2_zero_bits(chal, index, nonce, memory, iterations)
                   and not (also_fails_handed_out
                            and _argon2_zero_bits(chal, index, nonce, 128, 2))):
            nonce += 1
        return nonce

    chal = challenge(sb)
    assert chal["params"]["memoryKiB"] == 128 and chal["params"]["iterations"] == 2
    right = [find(chal, i, 128, 2) for i in range(3)]
    done = post(sb, {**BODY, "pow": {"chainId": chal["chainId"], "nonces": right}})
    assert done.status_code == 201, done.text
    # a proof made with other parameters (the fixture's 64 KiB x 1) is refused
    chal = challenge(sb)
    wrong = [find(chal, 0, 64, 1, also_fails_handed_out=True)] + [
        find(chal, i, 128, 2) for i in (1, 2)]
    refused = post(sb, {**BODY, "name": "Other", "pow": {"chainId": chal["chainId"],
                                                          "nonces": wrong}})
    assert code(refused) == "POW_INVALID" and "[0]" in refused.json()["error"]["message"]
