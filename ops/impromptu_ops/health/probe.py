"""One HTTP GET for a health check, on the standard library, with no retries.

Why not :class:`~impromptu_ops.platform.client.PlatformClient`: a check reports the state
*now*, within its own timeout, so the client's retries and backoff are exactly what it must
not do; and importing httpx costs ~100 ms, more than half of the whole budget of
``health --format nagios``. The check still speaks the contract through the client's pure
parts: :mod:`impromptu_ops.platform.results` reads bodies and
:mod:`impromptu_ops.platform.errorbody` turns error answers into the same typed errors.

Failure mapping: connection refused, reset, timeout, a body shorter than its
Content-Length -> :class:`~impromptu_ops.errors.TransportError`; a body over the size cap
-> :class:`~impromptu_ops.errors.MalformedResponse`; HTTP >= 400 ->
the typed :class:`~impromptu_ops.errors.PlatformError`.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from impromptu_ops.errors import MalformedResponse, PlatformError, TransportError
from impromptu_ops.secret import Secret


@dataclass(frozen=True)
class ProbeResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    def json(self, what: str) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedResponse(f"{what}: the answer is not JSON") from None


def get(url: str, *, timeout: float, max_bytes: int, user_agent: str,
        bearer: Secret | None = None) -> ProbeResponse:
    """GET ``url``; raise the typed error for a network failure or an error status.

    Args:
        url: an http(s) URL whose query carries no secret.
        timeout: seconds for connect and for each read.
        max_bytes: the largest body accepted.
        user_agent: sent as ``User-Agent``.
        bearer: sent as ``Authorization: Bearer`` (revealed only into the header).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"cannot check {parts.scheme}://{parts.hostname}: not an http(s) URL")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        import ssl

        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": user_agent, "Accept": "application/json"}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer.reveal()}"
    where = f"GET {parts.scheme}://{parts.netloc}{parts.path}"
    started = time.monotonic()
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read(max_bytes + 1)
        got_headers = {k.lower(): v for k, v in resp.getheaders()}
    except TimeoutError:
        raise TransportError(f"{where}: no answer within {timeout:g}s") from None
    except http.client.IncompleteRead:
        raise TransportError(f"{where}: truncated answer") from None
    except (OSError, http.client.HTTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise TransportError(f"{where}: {reason}") from None
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    if len(body) > max_bytes:
        raise MalformedResponse(f"{where}: answer larger than {max_bytes} bytes")
    declared = got_headers.get("content-length", "")
    if declared.isdigit() and len(body) < int(declared):
        # http.client returns short reads quietly when the peer closes early.
        raise TransportError(f"{where}: truncated answer ({len(body)} of {declared} bytes)")
    if resp.status >= 400:
        from impromptu_ops.platform.errorbody import build_error, parse_error_body

        retry_after = got_headers.get("retry-after")
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise build_error(resp.status, parse_error_body(body, got_headers.get("x-request-id")),
                          method="GET", url=f"{parts.scheme}://{parts.netloc}{parts.path}",
                          retry_after=wait)
    return ProbeResponse(resp.status, got_headers, body, elapsed)


__all__ = ["PlatformError", "ProbeResponse", "get"]
