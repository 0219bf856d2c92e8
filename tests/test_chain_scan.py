"""The adaptive log scanner: provider error shapes, and exact coverage under any limits."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.chain.rpc import JsonRpcClient, RpcError, RpcRateLimited
from impromptu_ops.chain.scan import LimitHint, LogScanner, classify_limit_error
from impromptu_ops.errors import ChainError


def err(message: str, code: int = -32602, data: Any = None) -> RpcError:
    return RpcError("eth_getLogs", code, message, data)


@pytest.mark.parametrize(("message", "code", "hint"), [
    # Alchemy: results cap with a suggested range
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block "
     "range and no limit on the response size, or you can request any block range with a cap "
     "of 10K logs in the response. Based on your parameters, this block range should work: "
     "[0x10, 0x1f]", -32602, LimitHint("results", 16)),
    # Infura: results cap, with and without a suggestion
    ("query returned more than 10000 results", -32005, LimitHint("results")),
    ("query returned more than 10000 results. Try with this block range [0x100, 0x1ff].",
     -32005, LimitHint("results", 256)),
    # QuickNode-style and others: block-range caps
    ("eth_getLogs is limited to a 10,000 range", -32602, LimitHint("range", 10_000)),
    ("eth_getLogs is limited to 1024 block range. Please check the parameter requirements",
     -32602, LimitHint("range", 1024)),
    ("eth_getLogs range is too large, max is 1k blocks", -32603, LimitHint("range", 1000)),
    ("query exceeds max block range 100000", -32602, LimitHint("range", 100_000)),
    ("ranges over 10000 blocks are not supported on freetier", 35, LimitHint("range", 10_000)),
    ("block range is too wide", -32600, LimitHint("range")),
    ("block range too large", -32000, LimitHint("range")),
    ("query exceeds max results 20000, retry with the range 23879634-23879696", -32602,
     LimitHint("results", 63)),
    ("please limit the query to at most 1000 blocks", -32000, LimitHint("range", 1000)),
    ("limit exceeded", -32005, LimitHint("results")),
])
def test_provider_shapes_are_classified(message: str, code: int, hint: LimitHint) -> None:
    assert classify_limit_error(err(message, code)) == hint


def test_non_limit_errors_do_not_split() -> None:
    assert classify_limit_error(err("invalid argument 0: hex string without 0x prefix",
                                    -32602)) is None
    assert classify_limit_error(err("execution reverted", 3)) is None
    limited = RpcRateLimited("eth_getLogs", 429, "Too Many Requests")
    assert classify_limit_error(limited) is None


def test_hint_in_error_data_is_read() -> None:
    hint = classify_limit_error(err("Limit exceeded", -32005,
                                    data={"from": "0x1", "to": "0x2",
                                          "msg": "this block range should work: [0x1, 0x5]"}))
    assert hint == LimitHint("results", 5)


class FakeProvider:
    """An in-memory chain behind a limit-enforcing eth_getLogs (httpx mock transport)."""

    def __init__(self, blocks_with_logs: list[int], max_blocks: int, max_results: int,
                 style: str) -> None:
        self.logs = sorted(blocks_with_logs)
        self.max_blocks = max_blocks
        self.max_results = max_results
        self.style = style
        self.calls: list[tuple[int, int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        flt = body["params"][0]
        lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        self.calls.append((lo, hi))

        def error(code: int, message: str) -> httpx.Response:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                             "error": {"code": code, "message": message}})
        if hi - lo + 1 > self.max_blocks:
            if self.style == "wide":
                return error(-32600, "block range is too wide")
            return error(-32602, f"eth_getLogs is limited to a {self.max_blocks} block range")
        hits = [b for b in self.logs if lo <= b <= hi]
        if len(hits) > self.max_results:
            if self.style == "alchemy":
                end = max(lo, hits[self.max_results] - 1)
                return error(-32602, "Log response size exceeded. this block range should "
                             f"work: [{hex(lo)}, {hex(end)}]")
            return error(-32005, f"query returned more than {self.max_results} results")
        result = [{"blockNumber": hex(b), "i": i} for i, b in enumerate(hits)]
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 3000), max_size=120), st.integers(1, 400), st.integers(1, 30),
       st.sampled_from(["alchemy", "infura", "wide", "quicknode"]), st.integers(1, 5000),
       st.integers(0, 3000), st.integers(0, 3000))
def test_scan_covers_the_range_exactly_once_under_any_limits(
        blocks: list[int], max_blocks: int, max_results: int, style: str, max_span: int,
        a: int, b: int) -> None:
    first, last = min(a, b), max(a, b)
    # a single block with more logs than the cap can never be served: keep that case apart
    blocks = [x for x in blocks if blocks.count(x) <= max_results]
    provider = FakeProvider(blocks, max_blocks, max_results, style)
    rpc = JsonRpcClient("http://127.0.0.1:1", transport=httpx.MockTransport(provider))
    chunks = list(LogScanner(rpc, max_span).scan(first, last))
    # contiguous, ordered, no gap, no overlap
    assert chunks[0].first == first and chunks[-1].last == last
    for x, y in itertools.pairwise(chunks):
        assert y.first == x.last + 1
    found = sorted(int(log["blockNumber"], 16) for c in chunks for log in c.logs)
    assert found == sorted(x for x in blocks if first <= x <= last)
    for c in chunks:
        assert c.last - c.first + 1 <= min(max_blocks, max_span)


def test_single_block_over_the_cap_fails_clearly() -> None:
    provider = FakeProvider([5] * 10, 100, 3, "infura")
    rpc = JsonRpcClient("http://127.0.0.1:1", transport=httpx.MockTransport(provider))
    with pytest.raises(ChainError, match=r"single block \(5\)"):
        list(LogScanner(rpc, 100).scan(0, 50))


def test_learned_range_limit_is_kept_and_suggestions_are_honoured() -> None:
    provider = FakeProvider([], 250, 10, "quicknode")
    rpc = JsonRpcClient("http://127.0.0.1:1", transport=httpx.MockTransport(provider))
    scanner = LogScanner(rpc, 10_000)
    list(scanner.scan(0, 999))
    # one refusal teaches 250; then exactly 4 calls of 250 blocks
    assert provider.calls == [(0, 999), (0, 249), (250, 499), (500, 749), (750, 999)]
    assert scanner.learned_span == 250 and scanner.splits == 1


def test_rate_limits_back_off_instead_of_splitting() -> None:
    state = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] <= 2:
            return httpx.Response(429, headers={"Retry-After": "0"})
        body = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": []})
    slept: list[float] = []
    rpc = JsonRpcClient("http://127.0.0.1:1", transport=httpx.MockTransport(handler),
                        sleeper=slept.append)
    scanner = LogScanner(rpc, 1000)
    chunks = list(scanner.scan(0, 999))
    assert [(c.first, c.last) for c in chunks] == [(0, 999)]
    assert scanner.splits == 0 and slept == [0.0, 0.0]


@pytest.mark.parametrize(("message", "code"), [
    ("project ID request rate exceeded", -32005),  # Infura: -32005 also means "too many logs"
    ("daily request count exceeded, request rate limited", -32005),
    ("15/second request limit reached - reduce calls per second or upgrade your account",
     -32007),  # QuickNode
    ("Your app has exceeded its compute units per second capacity.", 429),  # Alchemy
    ("Too Many Requests", -32000),
])
def test_rate_limit_shapes_back_off_and_never_split(message: str, code: int) -> None:
    state = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        body = json.loads(request.content)
        if state["n"] == 1:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"],
                                             "error": {"code": code, "message": message}})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": []})
    slept: list[float] = []
    rpc = JsonRpcClient("http://127.0.0.1:1", transport=httpx.MockTransport(handler),
                        sleeper=slept.append)
    scanner = LogScanner(rpc, 1000)
    assert [(c.first, c.last) for c in scanner.scan(0, 999)] == [(0, 999)]
    assert scanner.splits == 0 and len(slept) == 1  # waited once, asked again for the same


def test_a_smaller_suggested_range_is_asked_for_exactly() -> None:
    provider = FakeProvider(list(range(100, 140)), 10_000, 10, "alchemy")
    rpc = JsonRpcClient("http://127.0.0.1:1", transport=httpx.MockTransport(provider))
    list(LogScanner(rpc, 1000).scan(0, 999))
    # refused [0, 999] with "this block range should work: [0x0, 0x6d]" (the logs of blocks
    # 100..109 fit): the next call asks for exactly that range, not a half
    assert provider.calls[:2] == [(0, 999), (0, 109)]


def test_a_suggestion_larger_than_asked_is_not_followed() -> None:
    hint = classify_limit_error(err("Log response size exceeded. this block range should "
                                    "work: [0x0, 0x3e7]"))
    assert hint == LimitHint("results", 1000)

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        flt = body["params"][0]
        lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        if hi - lo + 1 > 50:  # always suggests a range wider than what it refused
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": {
                "code": -32602, "message": "Log response size exceeded. this block range "
                f"should work: [{hex(lo)}, {hex(lo + 4999)}]"}})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": []})
    scanner = LogScanner(JsonRpcClient("http://127.0.0.1:1",
                                       transport=httpx.MockTransport(handler)), 200)
    chunks = list(scanner.scan(0, 199))
    assert chunks[0].first == 0 and chunks[-1].last == 199
    assert all(c.last - c.first + 1 <= 50 for c in chunks)  # it halved instead
