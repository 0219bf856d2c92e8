"""Requests, responses, the sandbox's wire errors and a small method + path router.

This module owns the request/response values every sandbox feature module handles, the
platform's error wire shape (``{"error": {"code", "message", "hint", "retryable"},
"requestId"}``, statuses taken from :data:`impromptu_ops.contract.ERROR_CODES`, never
restated) and path matching. It does no socket I/O (see :mod:`.server`) and knows nothing of
any endpoint (each ``sandbox/<feature>.py`` registers its own routes).

Patterns are literal paths with ``{name}`` placeholders (one path segment) and ``{name:path}``
(the rest of the path, slashes included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from impromptu_ops import contract

JSON_TYPE = "application/json"


@dataclass
class Request:
    """One parsed HTTP request, as handlers see it.

    Attributes:
        params: path placeholders matched by the router.
        agent_id, key_id: set by the agent-endpoint wrapper once the bearer key is known.
        prefix: ``"/v1"`` or ``""``: which generation of paths the client used, so that
            hints (discovery ``action``) answer in the same dialect.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    request_id: str
    params: dict[str, str] = field(default_factory=dict)
    agent_id: str = ""
    key_id: str = ""
    prefix: str = "/v1"

    def header(self, name: str) -> str | None:
        """A request header, case-insensitively."""
        want = name.lower()
        for key, value in self.headers.items():
            if key.lower() == want:
                return value
        return None

    def bearer(self) -> str | None:
        """The token of ``Authorization: Bearer <token>``, or ``None``."""
        value = self.header("Authorization") or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def json(self, *, required: bool = True) -> Any:
        """The body parsed as JSON (``{}`` for an empty body when not required).

        Raises:
            ApiError: VALIDATION_ERROR when the body is not JSON.
        """
        if not self.body.strip():
            if required:
                raise ApiError("VALIDATION_ERROR", "a JSON body is required",
                               fields={"body": ["required"]})
            return {}
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ApiError("VALIDATION_ERROR", "the body is not valid JSON",
                           fields={"body": ["not valid JSON"]}) from None

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        """The body as a JSON object (VALIDATION_ERROR otherwise)."""
        value = self.json(required=required)
        if not isinstance(value, dict):
            raise ApiError("VALIDATION_ERROR", "the body must be a JSON object",
                           fields={"body": ["must be an object"]})
        return value


@dataclass
class Response:
    """What a handler returns: a JSON value (or raw bytes), a status and extra headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = JSON_TYPE

    def encoded(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode()


class ApiError(Exception):
    """A platform error answered in the contract's wire shape.

    Args:
        code: a key of :data:`contract.ERROR_CODES`; its HTTP status and retryability
            come from there.
        fields: for VALIDATION_ERROR, ``{field: [messages]}``.
        headers: extra response headers (``Retry-After``, rate-limit headers).
        extra: extra top-level body members (``payment`` for PAYMENT_REQUIRED).
        status: override the table's status (only fault injection does this).
    """

    def __init__(self, code: str, message: str, *, hint: str = "",
                 fields: Mapping[str, list[str]] | None = None,
                 headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None, status: int | None = None) -> None:
        super().__init__(message)
        entry = contract.ERROR_CODES[code]
        self.code = code
        self.message = message
        self.hint = hint
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.status = status if status is not None else entry.status
        self.retryable = entry.retryable

    def response(self, request_id: str) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message,
                                 "hint": self.hint, "retryable": self.retryable}
        if self.fields:
            error["fields"] = self.fields
        error.update(self.extra)
        body: dict[str, Any] = {"error": error, "requestId": request_id, **self.extra}
        return Response(self.status, body, dict(self.headers))


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``/skill/{version}/{path:path}`` -> an anchored regex with named groups."""
    out = []
    for piece in re.split(r"(\{[a-zA-Z_]+(?::path)?\})", pattern):
        if piece.startswith("{") and piece.endswith("}"):
            name, _, kind = piece[1:-1].partition(":")
            out.append(f"(?P<{name}>.+)" if kind == "path" else f"(?P<{name}>[^/]+)")
        else:
            out.append(re.escape(piece))
    return re.compile("^" + "".join(out) + "$")


class Router:
    """Method + path pattern -> handler. The first registered match wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append(Route(method.upper(), pattern, compile_pattern(pattern), handler))

    def add_many(self, method: str, patterns: Iterable[str], handler: Handler) -> None:
        for pattern in patterns:
            self.add(method, pattern, handler)

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for ``method path`` and its path parameters.

        Raises:
            ApiError: NOT_FOUND when no route matches the path or the method.
        """
        # HEAD is answered by the GET handler; the server sends no body.
        wanted = "GET" if method.upper() == "HEAD" else method.upper()
        for route in self.routes:
            if route.method != wanted:
                continue
            m = route.regex.match(path)
            if m:
                return route.handler, m.groupdict()
        raise ApiError("NOT_FOUND", f"no such endpoint: {method.upper()} {path[:200]}",
                       hint="see the platform contract, section 2")


# The platform's two generations of paths [doc]: /api/v1/agent/... and legacy /api/agent/...
API_ROOT = "/api"


def agent_paths(subpath: str) -> tuple[str, ...]:
    """``/heartbeat`` -> (``/api/v1/agent/heartbeat``, ``/api/agent/heartbeat``)."""
    return tuple(f"{API_ROOT}{p}/agent{subpath}" for p in contract.PATH_PREFIXES.values())


def agents_paths(subpath: str) -> tuple[str, ...]:
    """``/register`` -> (``/api/v1/agents/register``, ``/api/agents/register``)."""
    return tuple(f"{API_ROOT}{p}/agents{subpath}" for p in contract.PATH_PREFIXES.values())


def request_prefix(path: str) -> str:
    """Which path generation a request used: ``"/v1"`` or ``""``."""
    return "/v1" if path.startswith(f"{API_ROOT}/v1/") else ""


def validation(fields: Mapping[str, list[str]], message: str = "invalid request") -> ApiError:
    """A VALIDATION_ERROR naming each bad field."""
    return ApiError("VALIDATION_ERROR", message, fields=fields,
                    hint="fix the fields listed in error.fields")
