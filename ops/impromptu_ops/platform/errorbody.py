"""Private: Error bodies -> typed errors (contract §1), purely.

Owns two steps, both pure:

1. :func:`parse_error_body`: bytes from the wire -> :class:`ErrorBody`. Accepts the nested
   shape ``{"error": {code, message, hint, retryable, fields}, "requestId"}`` [ours], the flat
   ``{code, message, hint}`` and anything else (HTML, truncated JSON, a JSON array, binary)
   without raising: what cannot be read is simply absent.
2. :func:`build_error`: an :class:`ErrorBody` and the HTTP status -> the
   :class:`~impromptu_ops.errors.PlatformError` subclass named by
   :data:`impromptu_ops.contract.ERROR_CODES`; an unknown code falls back to its status class.

Text taken from a body is shortened (:data:`MAX_TEXT`), stripped of control characters and
passed through the redactor, because error messages end up in logs and on terminals. It does
not own the decision to retry (see :mod:`.retry` and :mod:`.http`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from impromptu_ops import contract, errors
from impromptu_ops.secret import clip

MAX_TEXT = 200
MAX_FIELDS = 20
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")

# What the operator should do, when the server gave no hint (contract §1, "client behaviour").
DEFAULT_HINTS: Mapping[str, str] = {
    "UNAUTHORIZED": "the API key is missing, revoked or expired: check the stored key",
    "ACCOUNT_NOT_ACTIVE": "the terms are not accepted yet: run the accept-tos step",
    "AUTHZ_001": "the agent's tier is too low for this action",
    "BUDG_001": "the budget regenerates hourly: wait, do not retry in a loop",
    "RATE_001": "burst limit: slow down",
    "RATE_003": "daily quota used: wait until X-RateLimit-Reset",
    "KEY_LIMIT": "revoke an old key before creating another",
    "LAST_KEY": "create the replacement key before revoking this one",
    "INTERNAL": "the platform is having trouble: retry later",
}


def clean_text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A short, single-line, redacted form of ``value`` if it is a non-empty string."""
    if not isinstance(value, str):
        return None
    # Bounded first (a cut far beyond what is shown cannot expose what is shown), then
    # redacted while whole, then cut: cutting first let a key cut in half slip past.
    text = _CONTROL.sub(" ", value[: limit * 64]).strip()
    text = re.sub(r"\s{2,}", " ", text)
    if not text:
        return None
    return clip(text, limit - 1)


@dataclass(frozen=True)
class ErrorBody:
    """What could be read from an error response body. Every field may be absent."""

    code: str | None = None
    message: str | None = None
    hint: str | None = None
    retryable: bool | None = None
    request_id: str | None = None
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    snippet: str | None = None  # the start of a non-JSON body, for diagnosis


def _fields(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for name, msgs in list(value.items())[:MAX_FIELDS]:
        key = clean_text(name, 64)
        if key is None:
            continue
        items = msgs if isinstance(msgs, list) else [msgs]
        texts = tuple(t for t in (clean_text(m) for m in items[:MAX_FIELDS]) if t)
        out[key] = texts
    return out


def _code(value: object) -> str | None:
    if isinstance(value, str) and _CODE.match(value.strip()):
        return value.strip()
    return None


def parse_error_body(body: bytes, header_request_id: str | None = None) -> ErrorBody:
    """Read an error body of any shape; never raises.

    Args:
        body: the raw response body (already capped in size by the transport).
        header_request_id: an ``X-Request-Id`` header, used when the body names none.

    Returns:
        An :class:`ErrorBody`; fields that could not be read are None/empty.
    """
    rid_header = clean_text(header_request_id, 100)
    try:
        doc: Any = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        snippet = clean_text(body[:MAX_TEXT * 64].decode("utf-8", "replace"))
        return ErrorBody(request_id=rid_header, snippet=snippet)
    if not isinstance(doc, dict):
        return ErrorBody(request_id=rid_header, snippet=clean_text(json.dumps(doc)))
    inner = doc.get("error")
    source: Mapping[str, Any]
    if isinstance(inner, dict):
        source = inner
    else:
        source = doc
        if isinstance(inner, str) and "message" not in doc:  # {"error": "text"}
            source = {**doc, "message": inner}
    retryable = source.get("retryable")
    return ErrorBody(
        code=_code(source.get("code")),
        message=clean_text(source.get("message")),
        hint=clean_text(source.get("hint")),
        retryable=retryable if isinstance(retryable, bool) else None,
        request_id=clean_text(doc.get("requestId") or source.get("requestId"), 100) or rid_header,
        fields=_fields(source.get("fields")),
    )


def error_class(code: str | None, status: int) -> tuple[type[errors.PlatformError], bool]:
    """The error class and the client-side retryable default for a code and status.

    A code of the §1 table decides; otherwise the status class does (401/403 auth, 404/410
    not found, 400/422 validation, 429 rate limited, 5xx server error).
    """
    if code is not None and code in contract.ERROR_CODES:
        row = contract.ERROR_CODES[code]
        return row.error, row.retryable
    if status in (401, 403):
        return errors.AuthError, False
    if status in (404, 410):
        return errors.NotFoundError, False
    if status in (400, 422):
        return errors.ValidationFailed, False
    if status == 429:
        return errors.RateLimited, True
    if status >= 500:
        return errors.ServerError, True
    return errors.PlatformError, False


def build_error(
    status: int,
    body: ErrorBody,
    *,
    method: str = "",
    url: str = "",
    retry_after: float | None = None,
    reset_wait: float | None = None,
) -> errors.PlatformError:
    """The typed error for an error response.

    Args:
        status: the HTTP status.
        body: the parsed body.
        method, url: the request, for diagnostics (the URL must carry no secret).
        retry_after: seconds from a ``Retry-After`` header, if any.
        reset_wait: seconds until ``X-RateLimit-Reset``, if known: the wait for RATE_003.

    Returns:
        The error, not raised.
    """
    cls, default_retryable = error_class(body.code, status)
    code = body.code or f"HTTP_{status}"
    known = body.code in contract.ERROR_CODES
    retryable = default_retryable if known or body.retryable is None else body.retryable
    message = body.message or (
        f"the server answered HTTP {status}" + (f": {body.snippet}" if body.snippet else "")
    )
    hint = body.hint or DEFAULT_HINTS.get(code)
    common: dict[str, Any] = {
        "code": code, "status": status, "hint": hint, "retryable": retryable,
        "request_id": body.request_id, "method": method, "url": url, "fields": body.fields,
    }
    if issubclass(cls, errors.RateLimited):
        daily = code == "RATE_003"
        wait = reset_wait if daily else retry_after
        if daily and wait is None:
            wait = retry_after
        return cls(message, retry_after=wait, daily=daily, **common)
    return cls(message, **common)
