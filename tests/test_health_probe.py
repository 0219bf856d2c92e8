"""The health probe's HTTP/1.1 response parser: framing round-trips, truncation is a
transport error, garbage is refused, nothing else ever escapes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.errors import MalformedResponse, TransportError
from impromptu_ops.health.probe import parse_response

W = "GET test"


def _chunked(body: bytes, cuts: list[int]) -> bytes:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    out = b""
    for a, b in itertools.pairwise(points):
        if b > a:
            out += f"{b - a:x};ext=1\r\n".encode() + body[a:b] + b"\r\n"
    return out + b"0\r\n\r\n"


@given(st.binary(max_size=300), st.sampled_from(["length", "chunked", "close"]),
       st.lists(st.integers(0, 400), max_size=6), st.integers(100, 599))
def test_framings_roundtrip(body: bytes, framing: str, cuts: list[int], status: int) -> None:
    head = f"HTTP/1.1 {status} Whatever\r\nX-Request-Id: r1\r\n"
    if framing == "length":
        raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    elif framing == "chunked":
        raw = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + _chunked(body, cuts)
    else:
        raw = (head + "\r\n").encode() + body
    got_status, headers, got = parse_response(raw, 1000, W)
    assert (got_status, got) == (status, body)
    assert headers["x-request-id"] == "r1"


@given(st.binary(min_size=1, max_size=200), st.sampled_from(["length", "chunked"]),
       st.data())
def test_truncation_is_a_transport_error(body: bytes, framing: str, data: st.DataObject) -> None:
    if framing == "length":
        raw = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    else:
        raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(body, [])
    cut = data.draw(st.integers(0, len(raw) - 1 - (4 if framing == "chunked" else 0)))
    with pytest.raises((TransportError, MalformedResponse)):
        parse_response(raw[:cut], 1000, W)


def test_size_cap_and_garbage() -> None:
    with pytest.raises(MalformedResponse):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", 1000, W)
    with pytest.raises(MalformedResponse):
        parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + _chunked(b"x" * 1200, [500]), 1000, W)
    for bad in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 099 X\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"):
        with pytest.raises(MalformedResponse):
            parse_response(bad, 1000, W)
    with pytest.raises(TransportError):
        parse_response(b"HTTP/1.1 200 OK\r\nContent-", 1000, W)


@given(st.binary(max_size=400))
def test_hostile_bytes_only_raise_our_errors(raw: bytes) -> None:
    try:
        status, _headers, body = parse_response(raw, 100, W)
    except (TransportError, MalformedResponse):
        return
    assert 100 <= status <= 999 and len(body) <= 100
