"""A lean, typed Ethereum JSON-RPC client over httpx.

This module owns the wire: one POST per call (or per batch), response size cap, JSON-RPC
error decoding into :class:`RpcError`, and back-off on rate limiting (HTTP 429, or a
JSON-RPC error that says "rate limit"): it sleeps (``Retry-After`` when given, else full
jitter) and retries instead of letting the caller split a log query. It does not know what
a log range limit is (see :mod:`.scan`) nor what a Transfer is (see :mod:`.erc20`).

Why not web3.py: we need eight methods, exact integers and errors we can classify; web3.py
brings ~30 MB of dependencies (eth-account, pycryptodome, websockets...) for that.

Numbers on the wire are ``0x`` hex quantities; this module converts them to ``int`` at the
edge so nothing above it handles hex strings for amounts or block numbers.

Errors (all :class:`~impromptu_ops.errors.ChainError`, exit 69)::

    ChainError
    ├── RpcUnreachable      connect/read failure (timeout, reset) still failing after retries
    └── RpcError            the node answered with a JSON-RPC error (.code, .message, .data)
        └── RpcRateLimited  429 / rate-limit errors still failing after the retries

Retries (``rate_limit_retries`` of them, full jitter or ``Retry-After``): a rate limit is
retried for any method (the call was not processed); a transport failure (once the node has
answered at least once: before that it is a wrong URL) or an HTTP 502/503/504 only for
read-only methods (``eth_get*``, ``eth_call``...), never for
``eth_sendTransaction``, which a timeout may have delivered already.

The RPC URL may carry a provider key in its path (``.../v2/<key>``): messages name only
the scheme and host (:func:`safe_endpoint`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from impromptu_ops import retry
from impromptu_ops.errors import ChainError
from impromptu_ops.secret import clip

Params = Sequence[Any]


class RpcError(ChainError):
    """A JSON-RPC error answer (or an HTTP error status with a JSON-RPC body).

    Attributes:
        code: the JSON-RPC error code (or the HTTP status when the body had none).
        rpc_message: the node's message, verbatim (providers put range hints in it).
        data: the error's ``data`` member, if any.
        method: the RPC method that failed.
        http_status: the HTTP status of the answer.
    """

    def __init__(self, method: str, code: int, rpc_message: str, data: Any = None,
                 http_status: int = 200, endpoint: str = "") -> None:
        where = f" at {endpoint}" if endpoint else ""
        super().__init__(f"{method}{where}: RPC error {code}: {clip(rpc_message, 300)}")
        self.method = method
        self.code = code
        self.rpc_message = rpc_message
        self.data = data
        self.http_status = http_status


class RpcRateLimited(RpcError):
    """The provider kept rate limiting after every retry."""


class RpcUnreachable(ChainError):
    """The request did not complete (connect error, timeout, reset)."""


TRANSIENT_STATUS = frozenset({502, 503, 504})  # a gateway or an overloaded node: try again
READ_ONLY = ("eth_get", "eth_call", "eth_chainId", "eth_blockNumber", "net_version")


def is_read_only(method: str) -> bool:
    """Whether resending ``method`` after a lost answer is harmless."""
    return method.startswith(READ_ONLY)


def safe_endpoint(url: str) -> str:
    """``scheme://host[:port]`` only: provider keys live in URL paths and queries."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}"


def to_int(value: Any, what: str = "quantity") -> int:
    """A ``0x`` hex quantity -> int.

    Raises:
        ChainError: not a hex quantity.
    """
    if isinstance(value, str) and value.startswith(("0x", "0X")) and len(value) <= 80:
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ChainError(f"the node sent {what} {str(value)[:80]!r}, not a hex quantity")


def to_hex(value: int) -> str:
    return hex(value)


def is_rate_limit(status: int, code: int | None, message: str) -> bool:
    """Whether an answer means "slow down" (back off) rather than "ask for less" (split)."""
    text = message.lower()
    return status == 429 or code == 429 or any(w in text for w in _RATE_WORDS)


# How providers say "slow down" (some with codes that otherwise mean "ask for less": Infura's
# -32005 "project ID request rate exceeded", QuickNode's "request limit reached", Alchemy's
# "exceeded its compute units per second capacity").
_RATE_WORDS = ("rate limit", "rate-limit", "too many requests", "exceeded daily", "throughput",
               "request rate", "requests per second", "per second", "compute units",
               "request limit reached", "reduce calls")


@dataclass(frozen=True)
class Block:
    """The few block fields the reconciliation needs."""

    number: int
    hash: str
    timestamp: int


class JsonRpcClient:
    """Typed calls to one Ethereum JSON-RPC endpoint.

    Args:
        url: the endpoint (http or https).
        timeout: per-request timeout in seconds.
        max_response_bytes: larger answers are refused (a hostile or broken node).
        rate_limit_retries: how many times to back off and retry a rate-limited call.
        backoff_base, backoff_cap: full-jitter back-off bounds in seconds.
        max_retry_after: never sleep longer than this on one ``Retry-After``.
        transport: an httpx transport (tests); ``sleeper`` and ``rng`` are injected too.
        keepalive: False for a long-lived client that must hold no idle socket (the
            sandbox keeps one for its whole life).

    Attributes:
        calls: HTTP requests made so far (a batch counts once): the benchmark reads it.
        elements: JSON-RPC calls made so far, each element of a batch counted once (what
            a provider bills and rate limits).
        answered: HTTP exchanges that completed (any status).
    """

    def __init__(self, url: str, *, timeout: float = 20.0, max_response_bytes: int = 32 << 20,
                 rate_limit_retries: int = 5, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, max_retry_after: float = 60.0,
                 transport: httpx.BaseTransport | None = None,
                 sleeper: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, keepalive: bool = True) -> None:
        if not url.startswith(("http://", "https://")):
            raise ChainError(f"chain RPC URL {safe_endpoint(url) or '(empty)'} is not http(s)",
                             hint="set chain.rpc_url (env IMPROMPTU_CHAIN_RPC)")
        self.url = url
        self.endpoint = safe_endpoint(url)
        self.max_response_bytes = max_response_bytes
        self.rate_limit_retries = rate_limit_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._sleep = sleeper
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        limits = httpx.Limits() if keepalive else httpx.Limits(max_keepalive_connections=0)
        self._http = httpx.Client(timeout=timeout, transport=transport, limits=limits,
                                  headers={"Content-Type": "application/json"})
        self._next_id = 0
        self.calls = 0
        self.elements = 0
        self.answered = 0
        self._by_method: dict[str, int] = {}  # single requests sent, per method

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JsonRpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- wire ---------------------------------------------------------------------------
    def _post(self, payload: Any, method: str) -> tuple[int, Mapping[str, str], Any]:
        body = json.dumps(payload).encode()
        self.calls += 1
        try:
            with self._http.stream("POST", self.url, content=body) as resp:
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > self.max_response_bytes:
                        raise ChainError(f"{method} at {self.endpoint}: answer larger than "
                                         f"{self.max_response_bytes} bytes",
                                         hint="raise chain.max_response_bytes or scan less")
                    chunks.append(chunk)
                status, headers = resp.status_code, dict(resp.headers)
            self.answered += 1
        except httpx.HTTPError as exc:
            raise RpcUnreachable(f"{method} at {self.endpoint}: {type(exc).__name__}",
                                 hint="is the chain RPC reachable? (chain.rpc_url)") from None
        raw = b"".join(chunks)
        try:
            decoded = json.loads(raw) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            decoded = None
        return status, headers, decoded

    def _backoff(self, attempt: int, retry_after: float | None) -> None:
        # The package's one retry arithmetic (:mod:`impromptu_ops.retry`), as the platform's.
        if retry_after is None:
            retry_after = retry.backoff_delay(attempt, self.backoff_base, self.backoff_cap,
                                              self._rng.random)
        self._sleep(retry_after)

    def _retry(self, error: ChainError | None, read_only: bool, attempt: int,
               headers: Mapping[str, str]) -> bool:
        """Back off and return True when ``error`` deserves another attempt."""
        if error is None or attempt >= self.rate_limit_retries:
            return False
        # A node that never answered is a configuration problem (wrong URL, nothing
        # listening): say so at once. One that answered before and then dropped is a blip.
        transient = (isinstance(error, RpcUnreachable) and self.answered > 0) or (
            isinstance(error, RpcError) and error.http_status in TRANSIENT_STATUS)
        if not isinstance(error, RpcRateLimited) and not (read_only and transient):
            return False
        self._backoff(attempt, retry.parse_retry_after(headers.get("retry-after"), time.time(),
                                                       self.max_retry_after))
        return True

    def _error_of(self, method: str, status: int, answer: Any) -> RpcError | None:
        err = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(err, dict):
            code = err.get("code")
            msg = str(err.get("message", ""))
            code_i = code if isinstance(code, int) and not isinstance(code, bool) else status
            cls = RpcRateLimited if is_rate_limit(status, code_i, msg) else RpcError
            return cls(method, code_i, msg, err.get("data"), status, self.endpoint)
        if status == 429:
            return RpcRateLimited(method, 429, "rate limited", None, status, self.endpoint)
        if status >= 400:
            return RpcError(method, status, f"HTTP {status}", None, status, self.endpoint)
        return None

    def request(self, method: str, params: Params = ()) -> Any:
        """One JSON-RPC call; returns ``result``.

        Raises:
            RpcRateLimited: still rate limited after ``rate_limit_retries`` back-offs.
            RpcUnreachable: the transport kept failing (read-only methods are retried).
            RpcError: the node answered with an error.
            ChainError: oversize or malformed answer.
        """
        attempt = 0
        read_only = is_read_only(method)
        while True:
            self._next_id += 1
            payload = {"jsonrpc": "2.0", "id": self._next_id, "method": method,
                       "params": list(params)}
            headers: Mapping[str, str] = {}
            error: ChainError | None
            self.elements += 1
            self._by_method[method] = self._by_method.get(method, 0) + 1
            try:
                status, headers, answer = self._post(payload, method)
                error = self._error_of(method, status, answer)
            except RpcUnreachable as exc:
                error = exc
            if self._retry(error, read_only, attempt, headers):
                attempt += 1
                continue
            if error is not None:
                raise error
            if not isinstance(answer, dict) or "result" not in answer:
                raise ChainError(f"{method} at {self.endpoint}: not a JSON-RPC answer")
            return answer["result"]

    def method_calls(self, method: str) -> int:
        """How many single requests of ``method`` were sent (retries included)."""
        return self._by_method.get(method, 0)

    def batch(self, calls: Sequence[tuple[str, Params]]) -> list[Any]:
        """Several calls in one HTTP request (JSON-RPC batch); results in call order.

        Raises:
            RpcError: any member failed (the first error is raised).
        """
        if not calls:
            return []
        attempt = 0
        read_only = all(is_read_only(m) for m, _ in calls)
        while True:
            base = self._next_id
            payload = [{"jsonrpc": "2.0", "id": base + i + 1, "method": m, "params": list(p)}
                       for i, (m, p) in enumerate(calls)]
            self._next_id += len(calls)
            self.elements += len(calls)
            headers: Mapping[str, str] = {}
            try:
                status, headers, answer = self._post(payload, "batch")
            except RpcUnreachable as exc:
                if self._retry(exc, read_only, attempt, headers):
                    attempt += 1
                    continue
                raise
            if not isinstance(answer, list):
                error = self._error_of("batch", status, answer) or ChainError(
                    f"batch at {self.endpoint}: not a JSON-RPC batch answer")
                if self._retry(error, read_only, attempt, headers):
                    attempt += 1
                    continue
                raise error
            by_id = {a.get("id"): a for a in answer if isinstance(a, dict)}
            results: list[Any] = []
            item_errors: list[RpcError] = []
            for i, (method, _) in enumerate(calls):
                item = by_id.get(base + i + 1)
                if item is None:
                    raise ChainError(f"batch at {self.endpoint}: no answer for {method}")
                item_error = self._error_of(method, status, item)
                if item_error is not None:
                    item_errors.append(item_error)
                results.append(item.get("result"))
            if item_errors:
                # some providers rate limit members of a batch: retry the whole batch
                limited = next((e for e in item_errors if isinstance(e, RpcRateLimited)), None)
                if self._retry(limited, read_only, attempt, headers):
                    attempt += 1
                    continue
                raise item_errors[0]
            return results

    # --- typed calls ----------------------------------------------------------------------
    def chain_id(self) -> int:
        return to_int(self.request("eth_chainId"), "chain id")

    def block_number(self) -> int:
        return to_int(self.request("eth_blockNumber"), "block number")

    def get_block(self, which: int | str) -> Block | None:
        """A block by number or tag (``latest``, ``safe``, ``finalized``); None if unknown."""
        tag = to_hex(which) if isinstance(which, int) else which
        return parse_block(self.request("eth_getBlockByNumber", [tag, False]))

    def get_blocks(self, numbers: Sequence[int]) -> list[Block | None]:
        """Many blocks in one batch request."""
        answers = self.batch([("eth_getBlockByNumber", [to_hex(n), False]) for n in numbers])
        return [parse_block(a) for a in answers]

    def get_logs(self, *, from_block: int, to_block: int, address: str | None = None,
                 topics: Sequence[str | Sequence[str] | None] = ()) -> list[dict[str, Any]]:
        """``eth_getLogs`` over an inclusive block range.

        A topic position holds one topic, ``None`` (any) or a list of topics (any of
        them: the filter's OR within a position, Ethereum JSON-RPC spec ``eth_getLogs``).
        """
        flt: dict[str, Any] = {"fromBlock": to_hex(from_block), "toBlock": to_hex(to_block)}
        if address:
            flt["address"] = address
        if topics:
            flt["topics"] = [t if t is None or isinstance(t, str) else list(t)
                             for t in topics]
        result = self.request("eth_getLogs", [flt])
        if not isinstance(result, list) or not all(isinstance(x, dict) for x in result):
            raise ChainError(f"eth_getLogs at {self.endpoint}: not a list of logs")
        return result

    def get_transaction_receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = self.request("eth_getTransactionReceipt", [tx_hash])
        if result is not None and not isinstance(result, dict):
            raise ChainError(f"eth_getTransactionReceipt at {self.endpoint}: not an object")
        return result

    def call(self, to: str, data: str, block: str = "latest") -> str:
        """``eth_call``; returns the ``0x`` hex output."""
        result = self.request("eth_call", [{"to": to, "data": data}, block])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise ChainError(f"eth_call at {self.endpoint}: not hex output")
        return result

    def send_transaction(self, tx: Mapping[str, Any]) -> str:
        """``eth_sendTransaction`` (dev nodes with unlocked accounts only); returns the hash."""
        result = self.request("eth_sendTransaction", [dict(tx)])
        if not isinstance(result, str):
            raise ChainError(f"eth_sendTransaction at {self.endpoint}: no transaction hash")
        return result


def parse_block(value: Any) -> Block | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ChainError("the node sent a block that is not an object")
    block_hash = value.get("hash")
    if not isinstance(block_hash, str):
        raise ChainError("the node sent a block without a hash")
    return Block(number=to_int(value.get("number"), "block number"), hash=block_hash.lower(),
                 timestamp=to_int(value.get("timestamp"), "block timestamp"))
