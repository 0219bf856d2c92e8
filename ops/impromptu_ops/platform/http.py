"""Private: The one HTTP core both clients share: timeouts, size cap, typed errors, safe retries.

:class:`HttpCore` owns every byte that crosses the network for the platform and OpenRouter
clients. One call to :meth:`HttpCore.request` is one *logical* request: it may be sent
several times, but only when that is safe (:func:`.retry.may_resend`), with full-jitter
backoff or the server's ``Retry-After``, and never past an overall deadline.

Failure mapping (the error tree is in :mod:`impromptu_ops.errors`)::

    connect refused / DNS / connect timeout   TransportError   (nothing was sent)
    read timeout / reset / dropped            TransportError   (may have been sent)
    body shorter than its Content-Length      TransportError   ("truncated response")
    body larger than max_response_bytes       MalformedResponse (never retried)
    body that is not JSON (when JSON wanted)  MalformedResponse
    HTTP >= 400 not listed in ``answers``     PlatformError subclass (see .errorbody)
                                              (except a 404 to a DELETE resent after a
                                              lost answer: done, returned as a 204)
    the next wait would pass the deadline     DeadlineExceeded, ``__cause__`` = last error
                                              (a 429 is raised as RateLimited instead: its
                                              ``retry_after`` tells the caller when)

The bearer key is a :class:`~impromptu_ops.secret.Secret`, revealed only into the
``Authorization`` header of each request, never logged, never stored on the client. This
module knows no endpoint; it does not parse successful bodies beyond JSON.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

import httpx

from impromptu_ops import contract
from impromptu_ops.errors import (
    ConfigError,
    ConnectFailed,
    DeadlineExceeded,
    MalformedResponse,
    OpsError,
    PlatformError,
    RateLimited,
    TransportError,
)
from impromptu_ops.platform import retry
from impromptu_ops.platform.errorbody import build_error, clean_text, parse_error_body
from impromptu_ops.platform.ratelimit import RateLimit, parse_rate_limit
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class HttpResponse:
    """One complete response, body already read (and capped).

    Attributes:
        status: the HTTP status.
        headers: the response headers (case-insensitive).
        body: the raw body.
        method, path: the request that produced it (path without query).
        rate_limit: the rate-limit headers, if any.
    """

    status: int
    headers: httpx.Headers
    body: bytes
    method: str
    path: str
    rate_limit: RateLimit | None = None

    def json(self) -> Any:
        """The body as JSON (``{}`` for 204, and for an empty answer to a DELETE).

        Raises:
            MalformedResponse: the body is empty or not JSON (one line, no body echoed).
        """
        if self.status == 204 or (self.method == "DELETE" and not self.body.strip()):
            return {}  # nothing to say, and nothing was expected
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedResponse(
                f"{self.method} {self.path}: the server answered HTTP {self.status} with a"
                f" body that is not valid JSON ({len(self.body)} bytes)",
                hint="the server or a proxy is misbehaving; try again later",
            ) from None


@dataclass(frozen=True)
class Limits:
    """The transport's limits (all from settings, none hard-coded)."""

    connect_timeout: float
    read_timeout: float
    deadline: float
    max_retries: int
    backoff_base: float
    backoff_cap: float
    max_retry_after: float
    max_response_bytes: int
    user_agent: str

    @classmethod
    def from_settings(cls, s: PlatformSettings) -> Limits:
        return cls(s.connect_timeout, s.read_timeout, s.deadline, s.max_retries,
                   s.backoff_base, s.backoff_cap, s.max_retry_after, s.max_response_bytes,
                   s.user_agent)


class _Attempt(Exception):
    """Internal: one send failed; carries the typed error and whether it may be resent."""

    def __init__(self, error: OpsError, sent: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.sent = sent


class HttpCore:
    """A sync httpx client plus the retry loop. Use as a context manager, or call close().

    Args:
        base_url: prefix of every request path (``http://host/api``).
        limits: timeouts, caps and retry settings.
        transport: an httpx transport (tests use ``httpx.MockTransport``); default: real.
        sleep: how to wait between attempts (tests inject a recorder).
        clock: a monotonic clock for the deadline.
        wall: the wall clock (unix seconds) for ``Retry-After`` dates and rate-limit resets.
        rand: uniform ``[0, 1)`` source for the jitter.
    """

    def __init__(
        self,
        base_url: str,
        limits: Limits,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"not an http(s) URL: {base_url[:100]!r}")
        self.base_url = base_url.rstrip("/")
        self.limits = limits
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self.last_rate_limit: RateLimit | None = None
        self._client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(limits.read_timeout, connect=limits.connect_timeout),
            headers={"User-Agent": limits.user_agent, "Accept": "application/json"},
            follow_redirects=False,  # a redirect could carry the bearer key elsewhere
            trust_env=False,  # no proxy from the environment sees the key by surprise
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one attempt ----------------------------------------------------------------------
    def _send(self, method: str, path: str, *, params: Mapping[str, str] | None,
              json_body: Any, headers: dict[str, str], timeout: httpx.Timeout,
              give_up_at: float) -> HttpResponse:
        url = self.base_url + path
        cap = self.limits.max_response_bytes
        try:
            with self._client.stream(method, url, params=params, json=json_body,
                                     headers=headers, timeout=timeout) as resp:
                declared = resp.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise _Attempt(self._too_big(method, path, int(declared)), sent=True)
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():  # decoded: the cap also stops gzip bombs
                    size += len(chunk)
                    if size > cap:
                        raise _Attempt(self._too_big(method, path, size), sent=True)
                    if self._clock() > give_up_at:  # a slow drip resets the read timeout
                        raise _Attempt(TransportError(
                            f"{method} {path}: the response is arriving too slowly to finish"
                            f" within the {self.limits.deadline:g}s deadline"), sent=True)
                    chunks.append(chunk)
                body = b"".join(chunks)
                return HttpResponse(resp.status_code, resp.headers, body, method, path,
                                    parse_rate_limit(resp.headers))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise _Attempt(ConnectFailed(
                f"{method} {path}: cannot connect to {self._host()}: {_why(exc)}",
                hint="check the URL and the network; the platform may be down"), sent=False
            ) from None
        except httpx.RemoteProtocolError as exc:
            text = str(exc)
            what = ("truncated response: the connection closed before the whole body"
                    " arrived" if "incomplete" in text or "complete message" in text
                    else f"the connection was dropped ({_why(exc)})")
            raise _Attempt(TransportError(f"{method} {path}: {what}"), sent=True) from None
        except httpx.TimeoutException as exc:
            raise _Attempt(TransportError(f"{method} {path}: timed out ({_why(exc)})"),
                           sent=True) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise ConfigError(f"bad platform URL {self.base_url[:100]!r}: {_why(exc)}") from None
        except httpx.DecodingError as exc:
            raise _Attempt(MalformedResponse(
                f"{method} {path}: the response could not be decoded ({_why(exc)})"), sent=True
            ) from None
        except httpx.TransportError as exc:  # read/write errors, resets
            raise _Attempt(TransportError(f"{method} {path}: network error ({_why(exc)})"),
                           sent=True) from None

    def _too_big(self, method: str, path: str, size: int) -> MalformedResponse:
        return MalformedResponse(
            f"{method} {path}: the response is larger than the"
            f" {self.limits.max_response_bytes} byte cap (at least {size} bytes)",
            hint="raise platform.max_response_bytes only if you trust the server")

    def _host(self) -> str:
        return httpx.URL(self.base_url).host or self.base_url[:60]

    def _error_for(self, resp: HttpResponse) -> tuple[PlatformError, float | None]:
        """The typed error of an error response, and its ``Retry-After`` in seconds."""
        now = self._wall()
        retry_after = retry.parse_retry_after(resp.headers.get("Retry-After"), now,
                                              self.limits.max_retry_after)
        reset_wait = (resp.rate_limit.seconds_until_reset(now)
                      if resp.rate_limit is not None else None)
        body = parse_error_body(resp.body, resp.headers.get("X-Request-Id"))
        return build_error(resp.status, body, method=resp.method, url=resp.path,
                           retry_after=retry_after, reset_wait=reset_wait), retry_after

    # --- the logical request -------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        auth: Secret | None = None,
        idempotency_key: str | None = None,
        answers: frozenset[int] = frozenset(),
        extra_headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one logical request, retrying only what is safe, under the deadline.

        Args:
            method: HTTP method.
            path: path below the base URL, starting with ``/``.
            params: query parameters (never secrets).
            json_body: a JSON-serialisable body, or None.
            auth: the bearer key, or None for unauthenticated endpoints.
            idempotency_key: sent as ``Idempotency-Key``; makes a POST safe to resend.
            answers: error statuses that are answers for this call (registration's 428,
                402): returned as a response instead of raised.
            extra_headers: more request headers (never secrets).

        Returns:
            The response (status < 400 or listed in ``answers``).

        Raises:
            PlatformError: the server answered an error (typed by code).
            TransportError: the network failed and resending was unsafe or exhausted.
            DeadlineExceeded: the next wait would pass ``limits.deadline``.
            MalformedResponse: the response exceeded the size cap.
        """
        method = method.upper()
        headers = dict(extra_headers or {})
        if auth is not None:
            headers["Authorization"] = f"Bearer {auth.reveal()}"
        if idempotency_key is not None:
            headers[contract.IDEMPOTENCY_HEADER] = idempotency_key
        start = self._clock()
        attempt = 0
        answer_lost = False  # an earlier attempt may have done its work, its answer was lost
        while True:
            remaining = self.limits.deadline - (self._clock() - start)
            timeout = httpx.Timeout(max(min(self.limits.read_timeout, remaining), 0.001),
                                    connect=max(min(self.limits.connect_timeout, remaining),
                                                0.001))
            server_wait: float | None = None
            try:
                resp = self._send(method, path, params=params, json_body=json_body,
                                  headers=headers, timeout=timeout,
                                  give_up_at=start + self.limits.deadline)
            except _Attempt as failed:
                error: OpsError = failed.error
                resend = not isinstance(error, MalformedResponse) and retry.may_resend(
                    method, idempotency_key=idempotency_key is not None, sent=failed.sent)
                answer_lost = answer_lost or failed.sent
            else:
                if resp.rate_limit is not None:
                    self.last_rate_limit = resp.rate_limit
                if 300 <= resp.status < 400 and resp.status not in answers:
                    raise MalformedResponse(
                        f"{method} {path}: the server answered a redirect (HTTP"
                        f" {resp.status}); redirects are not followed, so the key stays here",
                        hint="check platform.api_url (scheme, host, trailing path)")
                if resp.status < 400 or resp.status in answers:
                    return resp
                if retry.resent_delete_is_done(method, resp.status, answer_lost=answer_lost):
                    log.info("%s %s: answered 404 after a resend: the first attempt deleted it",
                             method, path)
                    return HttpResponse(204, resp.headers, b"", method, path, resp.rate_limit)
                error, server_wait = self._error_for(resp)
                resend = (isinstance(error, PlatformError) and error.retryable
                          and retry.may_resend(method,
                                               idempotency_key=idempotency_key is not None,
                                               sent=True))
            if not resend or attempt >= self.limits.max_retries:
                raise error
            wait = self._wait_for(attempt, server_wait)
            if self._clock() - start + wait > self.limits.deadline:
                if isinstance(error, RateLimited):
                    raise error
                raise DeadlineExceeded(
                    f"{method} {path}: gave up after {attempt + 1} attempt(s) within the"
                    f" {self.limits.deadline:g}s deadline; last error: {error.diagnostics()}",
                    hint="the platform or the network is struggling; try again later",
                ) from error
            log.info("%s %s: %s; retry %d in %.2fs", method, path,
                     clean_text(error.diagnostics()), attempt + 1, wait)
            self._sleep(wait)
            attempt += 1

    def _wait_for(self, attempt: int, server_wait: float | None) -> float:
        """How long to wait before the next attempt.

        A ``Retry-After`` (on a 429 or a 5xx) is honoured, plus full jitter over one base
        window so that clients told the same wait do not all return in the same instant;
        otherwise full-jitter exponential backoff.
        """
        if server_wait is not None:
            return server_wait + self.limits.backoff_base * _unit(self._rand())
        return retry.backoff_delay(attempt, self.limits.backoff_base, self.limits.backoff_cap,
                                   self._rand)


def _unit(r: float) -> float:
    return r if 0.0 <= r < 1.0 else 0.0


def _why(exc: BaseException) -> str:
    """A short reason from an httpx exception (its text names no header or body)."""
    return clean_text(str(exc) or type(exc).__name__, 120) or type(exc).__name__


class HttpClientBase:
    """What every client built on :class:`HttpCore` shares: closing it, use as a context
    manager, and the rate-limit headers of its most recent response."""

    _http: HttpCore

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def last_rate_limit(self) -> RateLimit | None:
        """The rate-limit headers of the most recent response that had them."""
        return self._http.last_rate_limit
