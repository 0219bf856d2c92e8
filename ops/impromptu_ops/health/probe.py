"""Private: One HTTP GET for a health check: no retries, one deadline, no heavy imports.

Why not :class:`~impromptu_ops.platform.client.PlatformClient`: a check reports the state
*now*, within its own timeout, so the client's retries and backoff are exactly what it must
not do; and importing httpx costs ~100 ms, more than half of the whole budget of
``health --format nagios``. Why not :mod:`http.client` either: it imports the ``email``
parser and :mod:`ssl` up front (~17 ms, measured), for one GET. So this module speaks the
small subset of HTTP/1.1 a GET needs — ``Connection: close``, ``Content-Length`` or
chunked bodies — over :mod:`socket`, importing :mod:`ssl` only for https. The response
parser (:func:`parse_response`) is pure and tested with hypothesis.

The check still speaks the contract through the client's pure parts:
:mod:`impromptu_ops.platform.errorbody` turns error answers into the same typed errors.

Failure mapping: connection refused, reset, timeout, a body shorter than announced ->
:class:`~impromptu_ops.errors.TransportError`; a body or header over the size cap, or
something that is not HTTP -> :class:`~impromptu_ops.errors.MalformedResponse`; HTTP >= 400
-> the typed :class:`~impromptu_ops.errors.PlatformError`.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from impromptu_ops.errors import MalformedResponse, TransportError
from impromptu_ops.secret import Secret

MAX_HEADER_BYTES = 64 * 1024


class ProbeResponse:
    __slots__ = ("body", "elapsed", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, elapsed: float
                 ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def json(self, what: str) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedResponse(f"{what}: the answer is not JSON") from None


def _dechunk(data: bytes, max_bytes: int, where: str) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise TransportError(f"{where}: truncated answer (chunk size)")
        size_text = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise MalformedResponse(f"{where}: bad chunk size") from None
        if size < 0:
            raise MalformedResponse(f"{where}: bad chunk size")
        if size == 0:
            return bytes(out)
        start, end = eol + 2, eol + 2 + size
        if len(out) + size > max_bytes:
            raise MalformedResponse(f"{where}: answer larger than {max_bytes} bytes")
        if len(data) < end + 2:
            raise TransportError(f"{where}: truncated answer (chunk)")
        if data[end:end + 2] != b"\r\n":
            raise MalformedResponse(f"{where}: bad chunk framing")
        out += data[start:end]
        pos = end + 2


def parse_response(raw: bytes, max_bytes: int, where: str
                   ) -> tuple[int, dict[str, str], bytes]:
    """``(status, lower-cased headers, body)`` from everything the server sent.

    Raises:
        TransportError: the answer stops early (no blank line, short body, short chunk).
        MalformedResponse: not HTTP/1.x, a bad status or framing, a body over ``max_bytes``.
    """
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        if len(raw) > MAX_HEADER_BYTES:
            raise MalformedResponse(f"{where}: header larger than {MAX_HEADER_BYTES} bytes")
        raise TransportError(f"{where}: truncated answer (no complete header)")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not (
            len(parts[1]) == 3 and parts[1].isdigit()):
        raise MalformedResponse(f"{where}: not an HTTP/1.x answer")
    status = int(parts[1])
    if status < 100:
        raise MalformedResponse(f"{where}: not an HTTP status")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MalformedResponse(f"{where}: bad header line")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return status, headers, _dechunk(rest, max_bytes, where)
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedResponse(f"{where}: bad Content-Length")
        size = int(declared)
        if size > max_bytes:
            raise MalformedResponse(f"{where}: answer larger than {max_bytes} bytes")
        if len(rest) < size:
            raise TransportError(f"{where}: truncated answer ({len(rest)} of {size} bytes)")
        return status, headers, rest[:size]
    if len(rest) > max_bytes:
        raise MalformedResponse(f"{where}: answer larger than {max_bytes} bytes")
    return status, headers, rest


def get(url: str, *, timeout: float, max_bytes: int, user_agent: str,
        bearer: Secret | None = None) -> ProbeResponse:
    """GET ``url`` within ``timeout`` seconds in all; raise the typed error on failure.

    Args:
        url: an http(s) URL whose query carries no secret.
        timeout: the deadline for the whole exchange (connect, send, every read).
        max_bytes: the largest body accepted.
        user_agent: sent as ``User-Agent``.
        bearer: sent as ``Authorization: Bearer`` (revealed only into the request).
    """
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise TransportError(f"cannot check {parts.scheme}://{host}: not an http(s) URL")
    where = f"GET {parts.scheme}://{parts.netloc}{parts.path}"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", f"User-Agent: {user_agent}",
             "Accept: application/json", "Connection: close"]
    if bearer is not None:
        lines.append(f"Authorization: Bearer {bearer.reveal()}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    started = time.monotonic()
    deadline = started + timeout
    chunks: list[bytes] = []
    total = 0
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if parts.scheme == "https":
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            sock.sendall(request)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
                total += len(data)
                if total > max_bytes + MAX_HEADER_BYTES:
                    raise MalformedResponse(f"{where}: answer larger than {max_bytes} bytes")
        finally:
            sock.close()
    except TimeoutError:
        raise TransportError(f"{where}: no answer within {timeout:g}s") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TransportError(f"{where}: {reason}") from None
    elapsed = time.monotonic() - started
    status, headers, body = parse_response(b"".join(chunks), max_bytes, where)
    if status >= 400:
        from impromptu_ops.platform.errorbody import build_error, parse_error_body

        retry_after = headers.get("retry-after", "")
        raise build_error(status, parse_error_body(body, headers.get("x-request-id")),
                          method="GET", url=f"{parts.scheme}://{parts.netloc}{parts.path}",
                          retry_after=float(retry_after) if retry_after.isdigit() else None)
    return ProbeResponse(status, headers, body, elapsed)
