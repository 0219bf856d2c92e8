"""The OpenRouter subset (contract §4) under ``/openrouter/api/v1``.

Follows OpenRouter's public API reference (https://openrouter.ai/docs/api/api-reference/
api-keys/*, and the guide https://openrouter.ai/docs/guides/overview/auth/management-api-keys);
where the reference is silent, the strictest plausible reading. Owns the ``openrouter`` part
of the state: inference keys and management keys ("provisioning keys" in older docs).

- A key's ``hash`` is an opaque random identifier (the reference never says how it is made;
  clients must not derive it from the key). The key's SHA-256 is kept inside the state only
  to recognise a bearer token, never shown by the API.
- ``GET /key`` (and ``/auth/key``) with any key -> ``{data: {label, limit, usage,
  limit_remaining, limit_reset, include_byok_in_limit, expires_at, is_free_tier,
  is_management_key, is_provisioning_key, ...}}``; the ``label`` is a masked form of the
  key (``sk-or-v1-abc...xyz``). Unknown, deleted, disabled or expired keys -> 401.
- ``POST /chat/completions {model, messages}`` with an inference key -> a canned answer;
  the same keys refused (401), a management key refused (the guide: management keys
  "cannot be used to make API calls to OpenRouter's completion endpoints"), a key at its
  spending limit -> 402.
- With a management key only (any other bearer -> 401):
  ``POST /keys {name, limit?, limit_reset?, include_byok_in_limit?, expires_at?}`` -> 201
  ``{key, data}`` (the key shown once); ``GET /keys?include_disabled=&offset=`` -> the most
  recent 100 keys from ``offset``, disabled ones only with ``include_disabled=true``;
  ``GET /keys/{hash}``; ``PATCH /keys/{hash} {name?, disabled?, limit?, limit_reset?,
  include_byok_in_limit?}``; ``DELETE /keys/{hash}`` -> ``{deleted: true}``.
  Validation: ``limit_reset`` is ``daily``/``weekly``/``monthly``/null and needs a limit;
  ``expires_at`` is an ISO 8601 timestamp in UTC (other zones rejected) in the future;
  unknown members are refused (400).
- Errors use OpenRouter's shape ``{"error": {"code": <http status>, "message"}}``.
- Controls: ``POST /_sandbox/openrouter/provisioning-key`` -> ``{key}`` (a management key);
  ``PATCH /_sandbox/openrouter/keys/{hash} {usage?, limit?, label?}`` to simulate spending
  (and a masked label shared by two keys).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.faults import CONTROL_ROOT
from impromptu_ops.sandbox.router import Handler, Request, Response, Router
from impromptu_ops.sandbox.state import State, iso, parse_iso, sha256_hex

ROOT = "/openrouter/api/v1"
MAX_NAME = contract.OPENROUTER_KEY_NAME_MAX
PAGE_SIZE = contract.OPENROUTER_KEYS_PAGE  # "the most recent 100 API keys" per page
LIMIT_RESETS = ("daily", "weekly", "monthly")
CREATE_FIELDS = frozenset({"name", "limit", "limit_reset", "include_byok_in_limit",
                           "expires_at", "creator_user_id", "workspace_id"})
PATCH_FIELDS = frozenset({"name", "disabled", "limit", "limit_reset", "include_byok_in_limit"})
CREATOR = "user_sandbox"
# An explicit UTC designator: "Z" or "+00:00" (the reference: "Must be UTC, other
# timezones will be rejected"); a timestamp without a zone is not UTC either.
_UTC_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")


class OpenRouterError(Exception):
    """Raised inside a handler; turned into OpenRouter's error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def new_key() -> str:
    return contract.OPENROUTER_KEY_PREFIX + secrets.token_hex(32)


def _label(key: str) -> str:
    return f"{key[:12]}...{key[-3:]}"


def _remaining(record: dict[str, Any]) -> float | None:
    return None if record["limit"] is None else max(0.0, record["limit"] - record["usage"])


def _view(record: dict[str, Any]) -> dict[str, Any]:
    usage = record["usage"]
    return {"hash": record["hash"], "name": record["name"], "label": record["label"],
            "disabled": record["disabled"], "limit": record["limit"],
            "limit_remaining": _remaining(record), "limit_reset": record["limitReset"],
            "include_byok_in_limit": record["includeByok"], "usage": usage,
            "usage_daily": usage, "usage_weekly": usage, "usage_monthly": usage,
            "byok_usage": 0.0, "byok_usage_daily": 0.0, "byok_usage_weekly": 0.0,
            "byok_usage_monthly": 0.0, "creator_user_id": CREATOR,
            "created_at": iso(record["createdAt"]), "updated_at": iso(record["updatedAt"]),
            "expires_at": None if record["expiresAt"] is None else iso(record["expiresAt"])}


def _limit(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise OpenRouterError(400, "limit must be a non-negative number or null")
    return float(value)


def _limit_reset(value: Any) -> str | None:
    if value is None or value in LIMIT_RESETS:
        return value  # type: ignore[no-any-return]
    raise OpenRouterError(400, "limit_reset must be daily, weekly, monthly or null")


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise OpenRouterError(400, f"{name} must be a boolean")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise OpenRouterError(400, f"name must be a non-empty string of at most {MAX_NAME}")
    return value


def _expires(value: Any, now: float) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _UTC_STAMP.match(value):
        raise OpenRouterError(400, "expires_at must be an ISO 8601 UTC timestamp "
                              "(e.g. 2027-12-31T23:59:59Z); other time zones are rejected")
    try:
        when = parse_iso(value)
    except ValueError:
        raise OpenRouterError(400, "expires_at is not a valid timestamp") from None
    if when <= now:
        raise OpenRouterError(400, "expires_at must be in the future")
    return when


def _unknown(body: dict[str, Any], allowed: frozenset[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise OpenRouterError(400, f"unknown field(s): {', '.join(extra)}")


def _upgrade(record: dict[str, Any]) -> None:
    """A key saved by an older sandbox: its hash was the key's SHA-256, no settings."""
    record.setdefault("sha256", record["hash"])
    for name, default in (("limitReset", None), ("includeByok", False), ("expiresAt", None),
                          ("seq", 0)):
        record.setdefault(name, default)


def install(router: Router, state: State) -> None:
    data: dict[str, Any] = state.data["openrouter"]
    for saved in data["keys"].values():
        _upgrade(saved)

    def handled(fn: Handler) -> Handler:
        def run(req: Request) -> Response:
            try:
                resp: Response = fn(req)
                return resp
            except OpenRouterError as exc:
                return Response(exc.status, {"error": {"code": exc.status,
                                                       "message": exc.message}})
        return run

    def body_of(req: Request) -> dict[str, Any]:
        if not req.body.strip():
            return {}
        try:
            value = req.json()
        except Exception:
            raise OpenRouterError(400, "the body is not valid JSON") from None
        if not isinstance(value, dict):
            raise OpenRouterError(400, "the body must be a JSON object")
        return value

    def management(req: Request) -> None:
        token = req.bearer()
        if token is None or sha256_hex(token) not in data["provisioning"]:
            raise OpenRouterError(401, "a valid management key is required")

    def record_of(key_hash: str) -> dict[str, Any]:
        record: dict[str, Any] | None = data["keys"].get(key_hash)
        if record is None:
            raise OpenRouterError(404, "key not found")
        return record

    def by_token(token: str) -> dict[str, Any] | None:
        digest = sha256_hex(token)
        return next((r for r in data["keys"].values() if r["sha256"] == digest), None)

    def key_info(req: Request) -> Response:
        token = req.bearer()
        if token is None:
            raise OpenRouterError(401, "no auth credentials found")
        if sha256_hex(token) in data["provisioning"]:
            return Response(200, {"data": {
                "label": _label(token), "usage": 0.0, "limit": None, "limit_remaining": None,
                "limit_reset": None, "include_byok_in_limit": False, "expires_at": None,
                "is_free_tier": False, "is_management_key": True,
                "is_provisioning_key": True, "creator_user_id": CREATOR}})
        view = _view(live_key(req))
        info = {k: view[k] for k in (
            "label", "limit", "usage", "usage_daily", "usage_weekly", "usage_monthly",
            "byok_usage", "byok_usage_daily", "byok_usage_weekly", "byok_usage_monthly",
            "limit_remaining", "limit_reset", "include_byok_in_limit", "expires_at",
            "creator_user_id")}
        info.update(is_free_tier=False, is_management_key=False, is_provisioning_key=False)
        return Response(200, {"data": info})

    def live_key(req: Request) -> dict[str, Any]:
        token = req.bearer()
        record = by_token(token) if token else None
        if record is None or record["disabled"] or (
                record["expiresAt"] is not None and record["expiresAt"] <= state.now()):
            raise OpenRouterError(401, "user not found, key disabled or expired")
        return record

    def completion(req: Request) -> Response:
        token = req.bearer()
        if token is not None and sha256_hex(token) in data["provisioning"]:
            raise OpenRouterError(401, "management keys cannot be used for completions")
        record = live_key(req)
        body = body_of(req)
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
            raise OpenRouterError(400, "model and messages are required")
        remaining = _remaining(record)
        if remaining is not None and remaining <= 0:
            raise OpenRouterError(402, "this key's spending limit is reached")
        return Response(200, {"id": f"gen-{secrets.token_hex(8)}", "object": "chat.completion",
                              "model": body["model"], "choices": [{
                                  "index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "ok"}}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                        "total_tokens": 2}})

    def create(req: Request) -> Response:
        management(req)
        body = body_of(req)
        _unknown(body, CREATE_FIELDS)
        now = state.now()
        limit = _limit(body.get("limit"))
        reset = _limit_reset(body.get("limit_reset"))
        if reset is not None and limit is None:
            raise OpenRouterError(400, "limit_reset needs a limit")
        record = {"hash": secrets.token_hex(32), "name": _name(body.get("name")),
                  "disabled": False, "limit": limit, "limitReset": reset,
                  "includeByok": _flag(body.get("include_byok_in_limit", False),
                                       "include_byok_in_limit"),
                  "expiresAt": _expires(body.get("expires_at"), now),
                  "usage": 0.0, "createdAt": now, "updatedAt": now,
                  "seq": data.get("seq", 0) + 1}
        data["seq"] = record["seq"]
        key = new_key()
        record.update(sha256=sha256_hex(key), label=_label(key))
        data["keys"][record["hash"]] = record
        return Response(201, {"key": key, "data": _view(record)})

    def listing(req: Request) -> Response:
        management(req)
        flag = req.query.get("include_disabled", "false")
        if flag not in ("true", "false"):
            raise OpenRouterError(400, "include_disabled must be true or false")
        offset_text = req.query.get("offset", "0")
        if not offset_text.isdigit():
            raise OpenRouterError(400, "offset must be a non-negative integer")
        offset = int(offset_text)
        keys = [r for r in data["keys"].values() if flag == "true" or not r["disabled"]]
        keys.sort(key=lambda r: (r["createdAt"], r.get("seq", 0)), reverse=True)
        return Response(200, {"data": [_view(r) for r in keys[offset:offset + PAGE_SIZE]]})

    def show(req: Request) -> Response:
        management(req)
        return Response(200, {"data": _view(record_of(req.params["hash"]))})

    def patch(req: Request) -> Response:
        management(req)
        record = record_of(req.params["hash"])
        body = body_of(req)
        _unknown(body, PATCH_FIELDS)
        changes: dict[str, Any] = {}
        if "disabled" in body:
            changes["disabled"] = _flag(body["disabled"], "disabled")
        if "name" in body:
            changes["name"] = _name(body["name"])
        if "limit" in body:
            changes["limit"] = _limit(body["limit"])
        if "limit_reset" in body:
            changes["limitReset"] = _limit_reset(body["limit_reset"])
        if "include_byok_in_limit" in body:
            changes["includeByok"] = _flag(body["include_byok_in_limit"],
                                           "include_byok_in_limit")
        after = {**record, **changes}
        if after["limitReset"] is not None and after["limit"] is None:
            raise OpenRouterError(400, "limit_reset needs a limit")
        record.update(changes, updatedAt=state.now())
        return Response(200, {"data": _view(record)})

    def delete(req: Request) -> Response:
        management(req)
        record = record_of(req.params["hash"])
        del data["keys"][record["hash"]]
        return Response(200, {"deleted": True})

    def control_provisioning(req: Request) -> Response:
        key = new_key()
        data["provisioning"][sha256_hex(key)] = {"createdAt": state.now()}
        return Response(201, {"key": key})

    def control_usage(req: Request) -> Response:
        record = record_of(req.params["hash"])
        body = body_of(req)
        if "usage" in body:
            usage = _limit(body["usage"])
            record["usage"] = usage or 0.0
        if "limit" in body:
            record["limit"] = _limit(body["limit"])
        if "label" in body:  # two keys whose masked labels collide (possible: 6 hex digits)
            if not isinstance(body["label"], str):
                raise OpenRouterError(400, "label must be a string")
            record["label"] = body["label"]
        return Response(200, {"data": _view(record)})

    router.add("GET", f"{ROOT}/key", handled(key_info))
    router.add("GET", f"{ROOT}/auth/key", handled(key_info))
    router.add("POST", f"{ROOT}/chat/completions", handled(completion))
    router.add("POST", f"{ROOT}/keys", handled(create))
    router.add("GET", f"{ROOT}/keys", handled(listing))
    router.add("GET", f"{ROOT}/keys/{{hash}}", handled(show))
    router.add("PATCH", f"{ROOT}/keys/{{hash}}", handled(patch))
    router.add("DELETE", f"{ROOT}/keys/{{hash}}", handled(delete))
    router.add("POST", f"{CONTROL_ROOT}/openrouter/provisioning-key",
               handled(control_provisioning))
    router.add("PATCH", f"{CONTROL_ROOT}/openrouter/keys/{{hash}}", handled(control_usage))
