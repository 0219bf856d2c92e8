"""Fault injection: rules set through ``/_sandbox/faults`` and what each kind does.

A rule ``{path: regex, method: "*"|"GET"..., kind, status?, code?, retryAfter?, delay?,
times?, agentId?}`` matches a request when ``re.search(path, request path)`` succeeds (the
full path, ``/api/...`` or ``/openrouter/...``; control paths under ``/_sandbox/`` are never
faulted), the method matches and, with ``agentId``, the request's bearer key is one of that
agent's (one agent of a fleet rate-limited or slow while the others are not). The first
matching rule with uses left fires and loses one use;
``times`` defaults to 1, ``null`` means forever. Kinds:

- ``latency``: sleep ``delay`` seconds (default 1), then answer normally;
- ``status``: answer ``status`` (default 503) with error ``code`` (default: RATE_001 for
  429, INTERNAL for 5xx, else the first contract code with that status) and, when given,
  ``Retry-After: retryAfter`` (seconds, or an HTTP-date string sent verbatim);
- ``truncate``: run the endpoint, declare the full ``Content-Length``, send half, close;
- ``malformed``: run the endpoint, send its status with a body that is not JSON;
- ``drop``: close the connection without any response;
- ``nulls``: run the endpoint and set every top-level member of its JSON object to null;
- ``echo-key``: run the endpoint, then replace the string values of every member named
  ``field`` (default ``*``: every string, at any depth) with the caller's bearer key,
  encoded as ``echo``: ``plain``, ``base64``, ``base64-bearer`` (of ``Bearer KEY``,
  the header as sent), ``url`` (percent-encoded) or ``cut`` (the key's first 20
  characters inside a longer text). A hostile or buggy platform that reflects the
  credential back: the client must never print or store it (ours, not a documented
  platform behaviour; the docs promise nothing about what a body may contain).

This module owns the rules and the pure transformations; :mod:`.server` performs them on
the socket. Rules persist in the state like everything else.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import quote

from impromptu_ops import contract
from impromptu_ops.sandbox.router import ApiError, Request, Response, Router, validation
from impromptu_ops.sandbox.state import State, new_id

KINDS = ("latency", "status", "truncate", "malformed", "drop", "nulls", "echo-key")
ECHO_FORMS = ("plain", "base64", "base64-bearer", "url", "cut")
CONTROL_ROOT = "/_sandbox"
MAX_DELAY_SECONDS = 120.0


def _check_rule(body: dict[str, Any]) -> dict[str, Any]:
    problems: dict[str, list[str]] = {}
    kind = body.get("kind")
    if kind not in KINDS:
        problems["kind"] = [f"must be one of {', '.join(KINDS)}"]
    path = body.get("path", ".*")
    try:
        re.compile(path if isinstance(path, str) else "(")
    except re.error:
        problems["path"] = ["must be a regular expression"]
    method = body.get("method", "*")
    if not isinstance(method, str):
        problems["method"] = ["must be a string"]
    default_status = 429 if str(body.get("code") or "").startswith("RATE") else 503
    status = body.get("status", default_status)
    if not isinstance(status, int) or not 100 <= status <= 599:
        problems["status"] = ["must be an HTTP status"]
    code = body.get("code")
    if code is not None and (not isinstance(code, str) or code not in contract.ERROR_CODES):
        problems["code"] = ["must be a contract error code"]
    delay = body.get("delay", 1.0)
    if not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_SECONDS:
        problems["delay"] = [f"must be 0..{MAX_DELAY_SECONDS:g} seconds"]
    times = body.get("times", 1)
    if times is not None and (not isinstance(times, int) or times < 1):
        problems["times"] = ["must be a positive integer or null (forever)"]
    retry_after = body.get("retryAfter")
    if retry_after is not None and not isinstance(retry_after, int | float | str):
        problems["retryAfter"] = ["must be seconds or an HTTP-date string"]
    echo = body.get("echo", "plain")
    if echo not in ECHO_FORMS:
        problems["echo"] = [f"must be one of {', '.join(ECHO_FORMS)}"]
    echo_field = body.get("field", "*")
    if not isinstance(echo_field, str) or not echo_field:
        problems["field"] = ["must be a member name or *"]
    agent_id = body.get("agentId")
    if agent_id is not None and not isinstance(agent_id, str):
        problems["agentId"] = ["must be an agent id"]
    if problems:
        raise validation(problems, "bad fault rule")
    return {"id": new_id("flt"), "agentId": agent_id, "path": path,
            "method": method.upper(), "kind": kind,
            "status": status, "code": code, "retryAfter": retry_after,
            "delay": float(delay), "remaining": times, "echo": echo, "field": echo_field}


def take_fault(state: State, method: str, path: str, bearer: str | None = None
               ) -> dict[str, Any] | None:
    """The rule that fires for this request (one use consumed), or ``None``."""
    from impromptu_ops.sandbox.accounts import find_key

    if path == CONTROL_ROOT or path.startswith(CONTROL_ROOT + "/"):
        return None
    with state.lock:
        rules: list[dict[str, Any]] = state.data["faults"]
        for rule in rules:
            if rule["method"] not in ("*", method.upper()):
                continue
            if not re.search(rule["path"], path):
                continue
            if rule.get("agentId"):
                key = find_key(state, bearer) if bearer else None
                if key is None or key["agentId"] != rule["agentId"]:
                    continue
            if rule["remaining"] is not None:
                rule["remaining"] -= 1
                if rule["remaining"] <= 0:
                    rules.remove(rule)
            state.save_if_changed()
            return dict(rule)
    return None


def status_error(rule: dict[str, Any]) -> ApiError:
    """The injected error response of a ``status`` rule."""
    status = int(rule["status"])
    code = rule.get("code")
    if code is None:
        if status == 429:
            code = "RATE_001"
        elif status >= 500:
            code = "INTERNAL"
        else:
            code = next((c.code for c in contract.ERROR_CODES.values() if c.status == status),
                        "INTERNAL")
    headers = {}
    if rule.get("retryAfter") is not None:
        ra = rule["retryAfter"]
        headers["Retry-After"] = str(int(ra)) if isinstance(ra, int | float) else str(ra)
    return ApiError(code, f"injected fault: {status} {code}", status=status, headers=headers,
                    hint="sandbox fault injection")


def malformed(body: bytes) -> bytes:
    """A body that no JSON parser accepts, derived from the real one."""
    return body[: len(body) // 2] + b"\x00<<not json"


def nullify(resp: Response) -> Response:
    """Every top-level member of a JSON object answer set to null."""
    if isinstance(resp.body, dict) and resp.raw is None:
        resp.body = dict.fromkeys(resp.body)
    return resp


def echoed(key: str, form: str) -> str:
    """``key`` in the encoding an ``echo-key`` rule asks for."""
    if form == "base64":
        return base64.b64encode(key.encode()).decode()
    if form == "base64-bearer":
        return base64.b64encode(f"Bearer {key}".encode()).decode()
    if form == "url":
        return quote(key, safe="")
    if form == "cut":
        return f"received credential {key[:20]} (truncated)"
    return key


def echo_key(resp: Response, key: str | None, rule: dict[str, Any]) -> Response:
    """The answer with the string members named ``rule["field"]`` replaced by the key."""
    if not key or resp.raw is not None:
        return resp
    value = echoed(key, str(rule.get("echo") or "plain"))
    wanted = str(rule.get("field") or "*")

    def walk(node: Any, name: str | None) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, name) for v in node]
        if isinstance(node, str) and wanted in ("*", name):
            return value
        return node

    resp.body = walk(resp.body, None)
    return resp


def install(router: Router, state: State) -> None:
    def add(req: Request) -> Response:
        rule = _check_rule(req.json_object())
        state.data["faults"].append(rule)
        return Response(201, rule)

    def listing(req: Request) -> Response:
        return Response(200, {"faults": state.data["faults"]})

    def clear(req: Request) -> Response:
        count = len(state.data["faults"])
        state.data["faults"] = []
        return Response(200, {"cleared": count})

    router.add("POST", f"{CONTROL_ROOT}/faults", add)
    router.add("GET", f"{CONTROL_ROOT}/faults", listing)
    router.add("DELETE", f"{CONTROL_ROOT}/faults", clear)
