"""A loopback JSON-RPC proxy that refuses ``eth_getLogs`` the way real providers do.

It forwards every call to an upstream (a real anvil URL, or an in-process handler for the
benchmark) and enforces a block-range limit and a result-count limit on ``eth_getLogs``,
answering with the error shapes providers publish:

- ``alchemy``: -32602 "Log response size exceeded. ... this block range should work:
  [0x.., 0x..]" (a suggested range that fits the result cap);
- ``infura``: -32005 "query returned more than N results" (no suggestion: halve);
- ``quicknode``: -32602 "eth_getLogs is limited to a N block range";
- ``wide``: -32600 "block range is too wide" (no size given: halve, remember).

It can also answer HTTP 429 (with ``Retry-After: 0``) to the first ``rate_limit`` calls, to
prove the client backs off instead of splitting. Bound to 127.0.0.1, stopped at teardown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

Upstream = Callable[[dict[str, Any]], dict[str, Any]]


class forward_to:
    """An upstream that forwards each request to a JSON-RPC URL (closed with the proxy)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=30)

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.post(self.url, json=req).json()
        return answer

    def close(self) -> None:
        self.client.close()


class LimitProxy:
    def __init__(self, upstream: Upstream, *, max_blocks: int | None = None,
                 max_results: int | None = None, style: str = "alchemy",
                 range_style: str = "quicknode", rate_limit: int = 0) -> None:
        self.upstream = upstream
        self.max_blocks = max_blocks
        self.max_results = max_results
        self.style = style
        self.range_style = range_style
        self.rate_limit = rate_limit
        self.http_requests = 0
        self.getlogs_calls: list[tuple[int, int, str]] = []  # (from, to, "ok"|"refused")
        self.filters: list[Any] = []  # every OR-list of topics an eth_getLogs asked for
        self.rate_limited = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, answer = proxy.handle(json.loads(body))
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LimitProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        close = getattr(self.upstream, "close", None)
        if close is not None:
            close()

    # --- behaviour -----------------------------------------------------------------------
    def handle(self, payload: Any) -> tuple[int, Any]:
        with self._lock:
            self.http_requests += 1
            if self.rate_limited < self.rate_limit:
                self.rate_limited += 1
                return 429, {"jsonrpc": "2.0", "id": None,
                             "error": {"code": 429, "message": "Too Many Requests"}}
        if isinstance(payload, list):
            return 200, [self.one(p) for p in payload]
        return 200, self.one(payload)

    def _error(self, req: dict[str, Any], code: int, message: str) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": req.get("id"), "error": {"code": code,
                                                                  "message": message}}

    def one(self, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("method") != "eth_getLogs":
            return self.upstream(req)
        flt = req["params"][0]
        self.filters.extend(t for t in flt.get("topics") or [] if isinstance(t, list))
        lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        if self.max_blocks is not None and hi - lo + 1 > self.max_blocks:
            self.getlogs_calls.append((lo, hi, "refused"))
            n = self.max_blocks
            if self.range_style == "wide":
                return self._error(req, -32600, "block range is too wide")
            return self._error(req, -32602, f"eth_getLogs is limited to a {n:,} block range")
        answer = self.upstream(req)
        logs = answer.get("result")
        if self.max_results is not None and isinstance(logs, list) \
                and len(logs) > self.max_results:
            self.getlogs_calls.append((lo, hi, "refused"))
            if self.style == "alchemy":
                # the largest range from `lo` whose logs fit under the cap
                blocks = sorted(int(x["blockNumber"], 16) for x in logs)
                end = blocks[self.max_results] - 1
                return self._error(
                    req, -32602,
                    "Log response size exceeded. You can make eth_getLogs requests with up "
                    "to a 2K block range and no limit on the response size, or you can "
                    "request any block range with a cap of 10K logs in the response. Based "
                    f"on your parameters, this block range should work: [{hex(lo)}, "
                    f"{hex(max(lo, end))}]")
            return self._error(req, -32005,
                               f"query returned more than {self.max_results} results")
        self.getlogs_calls.append((lo, hi, "ok"))
        return answer
