"""ERC-20 encoding/decoding by hand and the JSON-RPC client's wire handling (no chain)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops import contract
from impromptu_ops.chain import erc20
from impromptu_ops.chain.rpc import JsonRpcClient, RpcError, RpcRateLimited, safe_endpoint
from impromptu_ops.errors import ChainError, InputError, MalformedResponse

ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
words = st.integers(0, 2**256 - 1)


def test_transfer_calldata_layout() -> None:
    data = erc20.transfer_calldata(ADDR, 10**18)
    assert data == ("0xa9059cbb" + "0" * 24 + ADDR[2:].lower()
                    + f"{10**18:064x}")
    assert len(data) == 2 + 8 + 128
    assert erc20.balance_of_calldata(ADDR) == "0x70a08231" + "0" * 24 + ADDR[2:].lower()
    assert erc20.address_topic(ADDR) == "0x" + "0" * 24 + ADDR[2:].lower()


def test_bad_inputs_are_refused() -> None:
    for bad in ("0x123", ADDR + "00", "70997970C51812dc3A010C7d01b50e0d17dc79C8", ""):
        with pytest.raises(InputError):
            erc20.normalize_address(bad)
    with pytest.raises(InputError):
        erc20.encode_uint256(2**256)
    with pytest.raises(InputError):
        erc20.encode_uint256(-1)


def log_of(token: str, sender: str, to: str, amount: int, *, block: int = 7,
           index: int = 3) -> dict[str, Any]:
    return {"address": token, "topics": [contract.ERC20_TRANSFER_TOPIC,
                                         erc20.address_topic(sender), erc20.address_topic(to)],
            "data": "0x" + erc20.encode_uint256(amount), "blockNumber": hex(block),
            "logIndex": hex(index), "transactionHash": "0x" + "ab" * 32,
            "blockHash": "0x" + "cd" * 32, "removed": False}


@settings(max_examples=200, deadline=None)
@given(addresses, addresses, addresses, words, st.integers(0, 2**40), st.integers(0, 5000))
def test_transfer_log_round_trip_is_exact(token: str, sender: str, to: str, amount: int,
                                          block: int, index: int) -> None:
    t = erc20.decode_transfer_log(log_of(token, sender, to, amount, block=block, index=index))
    assert t is not None
    assert (t.token, t.sender, t.recipient, t.amount) == (token, sender, to, amount)
    assert (t.block_number, t.log_index) == (block, index)


def test_other_events_and_nft_transfers_are_not_erc20_transfers() -> None:
    good = log_of(ADDR, ADDR, ADDR, 5)
    assert erc20.decode_transfer_log({**good, "topics": ["0x" + "11" * 32]}) is None
    nft = {**good, "topics": [*good["topics"], "0x" + "00" * 31 + "01"], "data": "0x"}
    assert erc20.decode_transfer_log(nft) is None


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["address", "topics", "data", "blockNumber",
                                        "logIndex", "transactionHash", "blockHash"]),
                       st.none() | st.text(max_size=80) | st.integers()
                       | st.lists(st.text(max_size=70), max_size=4)))
def test_hostile_logs_decode_or_refuse_cleanly(raw: dict[str, Any]) -> None:
    base = log_of(ADDR, ADDR, ADDR, 5)
    with contextlib.suppress(MalformedResponse):
        erc20.decode_transfer_log({**base, **raw})


def test_high_topic_bits_are_refused() -> None:
    bad = log_of(ADDR, ADDR, ADDR, 5)
    bad["topics"][1] = "0x" + "ff" * 32
    with pytest.raises(MalformedResponse):
        erc20.decode_transfer_log(bad)


@given(st.integers(-(10**40), 10**40), st.integers(0, 30))
def test_format_units_is_exact(amount: int, decimals: int) -> None:
    text = erc20.format_units(amount, decimals)
    whole, _, frac = text.lstrip("-").partition(".")
    back = int(whole) * 10**decimals + (int(frac.ljust(decimals, "0")) if frac else 0)
    assert back == abs(amount) and text.startswith("-") == (amount < 0)


# --- the RPC client on a mock transport ---------------------------------------------------
def client(handler: Any, **kw: Any) -> tuple[JsonRpcClient, list[float]]:
    slept: list[float] = []
    rpc = JsonRpcClient("http://127.0.0.1:1/v2/SECRETKEY", transport=httpx.MockTransport(handler),
                        sleeper=slept.append, **kw)
    return rpc, slept


def test_rate_limit_backs_off_then_succeeds() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}),
                    httpx.Response(200, json={"jsonrpc": "2.0", "id": 1,
                                              "error": {"code": -32005,
                                                        "message": "request rate limited"}}),
                    httpx.Response(200, json={"jsonrpc": "2.0", "id": 3, "result": "0x2105"})])
    rpc, slept = client(lambda req: next(answers))
    assert rpc.chain_id() == 8453
    assert slept[0] == 2.0 and len(slept) == 2 and rpc.calls == 3


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.sampled_from(["1e9", "-5", "nan", "inf", "0x10", "5 s", "", "   ",
                                  "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999"]),
                 st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)))
def test_rate_limit_wait_follows_the_shared_retry_after_rules(value: str) -> None:
    """RFC 9110 §10.2.3 (Retry-After: HTTP-date / delay-seconds, a non-negative integer):
    the chain client reads the header with the platform's parser (:mod:`impromptu_ops.retry`),
    so a hostile value ("1e9", "-5", "inf") falls back to the jittered backoff window
    (<= backoff_base on the first retry) instead of being trusted, and any wait is
    clamped to max_retry_after."""
    import random
    import time

    from impromptu_ops.retry import parse_retry_after

    answers = iter([httpx.Response(429, headers={"Retry-After": value}),
                    httpx.Response(200, json={"jsonrpc": "2.0", "id": 2, "result": "0x1"})])
    rpc, slept = client(lambda req: next(answers), backoff_base=0.5, backoff_cap=30.0,
                        max_retry_after=60.0, rng=random.Random(7))
    assert rpc.block_number() == 1
    (waited,) = slept
    honoured = parse_retry_after(value, time.time(), 60.0)
    if honoured is None:
        assert 0.0 <= waited <= 0.5, (value, waited)  # the first jitter window
    else:
        assert 0.0 <= waited <= 60.0 and abs(waited - honoured) < 2.0, (value, waited)
    if value.strip() in ("1e9", "-5", "inf", "nan", "99999999999999999999"):
        assert waited <= 0.5 or value.strip() == "99999999999999999999"


def test_rate_limit_gives_up_after_retries() -> None:
    rpc, slept = client(lambda req: httpx.Response(429), rate_limit_retries=2)
    with pytest.raises(RpcRateLimited):
        rpc.block_number()
    assert len(slept) == 2


def test_errors_never_show_the_url_path() -> None:
    def boom(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")
    rpc, _ = client(boom)
    with pytest.raises(ChainError) as info:
        rpc.block_number()
    assert "SECRETKEY" not in info.value.diagnostics()
    assert safe_endpoint("https://base.example/v2/KEY?x=1") == "https://base.example"


def test_rpc_errors_carry_code_and_message() -> None:
    rpc, _ = client(lambda req: httpx.Response(200, json={
        "jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "bad", "data": "x"}}))
    with pytest.raises(RpcError) as info:
        rpc.get_logs(from_block=1, to_block=2)
    assert (info.value.code, info.value.rpc_message, info.value.data) == (-32602, "bad", "x")


def test_oversize_and_malformed_answers_are_refused() -> None:
    rpc, _ = client(lambda req: httpx.Response(200, content=b"x" * 5000), max_response_bytes=1000)
    with pytest.raises(ChainError, match="larger than"):
        rpc.block_number()
    rpc, _ = client(lambda req: httpx.Response(200, content=b"not json"))
    with pytest.raises(ChainError, match="not a JSON-RPC answer"):
        rpc.block_number()
    rpc, _ = client(lambda req: httpx.Response(200, json={"jsonrpc": "2.0", "id": 1,
                                                          "result": "12"}))
    with pytest.raises(ChainError, match="not a hex quantity"):
        rpc.block_number()


def test_batch_results_follow_call_order() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        calls = json.loads(req.content)
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": c["id"],
                                          "result": c["params"][0]} for c in reversed(calls)])
    rpc, _ = client(handler)
    assert rpc.batch([("echo", ["a"]), ("echo", ["b"]), ("echo", ["c"])]) == ["a", "b", "c"]
    assert rpc.calls == 1


def _ok(req: httpx.Request, result: Any) -> httpx.Response:
    body = json.loads(req.content)
    if isinstance(body, list):
        return httpx.Response(200, json=[{"jsonrpc": "2.0", "id": b["id"], "result": result}
                                         for b in body])
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


def test_gateway_errors_are_retried_for_reads_only() -> None:
    seen: list[str] = []

    def flaky(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content)["method"])
        return httpx.Response(503) if len(seen) == 1 else _ok(req, "0x10")
    rpc, slept = client(flaky)
    assert rpc.block_number() == 16 and len(slept) == 1  # read: backed off, asked again
    seen.clear()
    def gateway(req: httpx.Request) -> httpx.Response:
        seen.append("x")
        return httpx.Response(502)
    rpc, slept = client(gateway)
    with pytest.raises(RpcError, match="HTTP 502"):
        rpc.send_transaction({"from": "0x" + "11" * 20})
    assert seen == ["x"] and slept == []  # a write may have landed: never resent


def test_a_dropped_connection_mid_scan_is_retried_but_a_dead_url_fails_at_once() -> None:
    calls = {"n": 0}

    def blip(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 2:
            raise httpx.ReadTimeout("slow", request=req)
        return _ok(req, "0x2105")
    rpc, slept = client(blip)
    assert rpc.chain_id() == 8453  # answered once: the node is real
    assert rpc.chain_id() == 8453 and len(slept) == 1  # then a blip: retried
    from impromptu_ops.chain.rpc import RpcUnreachable

    def dead(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)
    rpc, slept = client(dead)
    with pytest.raises(RpcUnreachable):
        rpc.chain_id()
    assert slept == [] and rpc.calls == 1  # never answered: a wrong URL, said at once


def test_rate_limited_batch_members_retry_the_batch() -> None:
    attempts = {"n": 0}

    def handler(req: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        body = json.loads(req.content)
        if attempts["n"] == 1:
            return httpx.Response(200, json=[
                {"jsonrpc": "2.0", "id": b["id"],
                 "error": {"code": 429, "message": "Too Many Requests"}} for b in body])
        return _ok(req, None)
    rpc, slept = client(handler)
    assert rpc.batch([("eth_getTransactionReceipt", ["0x" + "ab" * 32])] * 3) == [None] * 3
    assert attempts["n"] == 2 and len(slept) == 1


# --- symbol(): ABI string or bytes32, hostile answers ---------------------------------------
def _abi_string(text: bytes) -> str:
    padded = text.hex().ljust(-(-len(text) // 32) * 64 or 64, "0")
    return "0x" + erc20.encode_uint256(32) + erc20.encode_uint256(len(text)) + padded


def test_symbol_shapes() -> None:
    assert erc20.decode_abi_string(_abi_string(b"IMPRMPT")) == "IMPRMPT"
    assert erc20.decode_abi_string("0x" + b"MKR".hex().ljust(64, "0")) == "MKR"  # bytes32
    for bad in ("0x", "0x12", _abi_string(b"A\x1b[2J"), _abi_string(b"x" * 33),
                _abi_string(b"\xff\xfe"), "0x" + "00" * 32,
                "0x" + erc20.encode_uint256(2**200) + "00" * 32):
        with pytest.raises(MalformedResponse):
            erc20.decode_abi_string(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_symbol_decoding_refuses_garbage_cleanly(raw: bytes) -> None:
    with contextlib.suppress(MalformedResponse):
        symbol = erc20.decode_abi_string("0x" + raw.hex())
        assert 0 < len(symbol) <= erc20.MAX_SYMBOL and symbol.isprintable()


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1,
               max_size=erc20.MAX_SYMBOL).filter(lambda t: len(t.encode()) <= erc20.MAX_SYMBOL))
def test_symbol_round_trip(text: str) -> None:
    if text.isprintable():
        assert erc20.decode_abi_string(_abi_string(text.encode())) == text
