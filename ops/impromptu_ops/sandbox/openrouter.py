"""The OpenRouter subset (contract §4) under ``/openrouter/api/v1``.

Owns the ``openrouter`` part of the state: inference keys (stored by SHA-256, which is also
their public ``hash`` id) and provisioning keys. Routes, with OpenRouter's own error shape
``{"error": {"code": <http status>, "message"}}`` rather than Impromptu's:

- ``GET /key`` with an inference key -> ``{data: {label, usage, limit, is_free_tier,
  limit_remaining, is_provisioning_key}}``; unknown, deleted or disabled keys -> 401;
- with a provisioning key: ``POST /keys {name, limit?}`` -> 201 ``{key, data: {hash,
  name, label, disabled, limit, usage, created_at, updated_at}}`` (the key shown once);
  ``GET /keys``; ``GET /keys/{hash}``; ``PATCH /keys/{hash} {disabled?, name?, limit?}``;
  ``DELETE /keys/{hash}`` -> ``{deleted: true}``;
- controls: ``POST /_sandbox/openrouter/provisioning-key`` -> ``{key}``;
  ``PATCH /_sandbox/openrouter/keys/{hash} {usage?, limit?}`` to simulate spending.
"""

from __future__ import annotations

import secrets
from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.faults import CONTROL_ROOT
from impromptu_ops.sandbox.router import Handler, Request, Response, Router
from impromptu_ops.sandbox.state import State, iso, sha256_hex

ROOT = "/openrouter/api/v1"
MAX_NAME = 200


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


def _view(record: dict[str, Any]) -> dict[str, Any]:
    return {"hash": record["hash"], "name": record["name"], "label": record["label"],
            "disabled": record["disabled"], "limit": record["limit"], "usage": record["usage"],
            "created_at": iso(record["createdAt"]), "updated_at": iso(record["updatedAt"])}


def _limit(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise OpenRouterError(400, "limit must be a non-negative number or null")
    return float(value)


def install(router: Router, state: State) -> None:
    data: dict[str, Any] = state.data["openrouter"]

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

    def provisioned(req: Request) -> None:
        token = req.bearer()
        if token is None or sha256_hex(token) not in data["provisioning"]:
            raise OpenRouterError(401, "a valid provisioning key is required")

    def record_of(key_hash: str) -> dict[str, Any]:
        record: dict[str, Any] | None = data["keys"].get(key_hash)
        if record is None:
            raise OpenRouterError(404, "key not found")
        return record

    def key_info(req: Request) -> Response:
        token = req.bearer()
        if token is None:
            raise OpenRouterError(401, "no auth credentials found")
        digest = sha256_hex(token)
        if digest in data["provisioning"]:
            return Response(200, {"data": {"label": _label(token), "usage": 0, "limit": None,
                                           "is_free_tier": False, "limit_remaining": None,
                                           "is_provisioning_key": True}})
        record = data["keys"].get(digest)
        if record is None or record["disabled"]:
            raise OpenRouterError(401, "user not found or key disabled")
        remaining = None if record["limit"] is None else max(
            0.0, record["limit"] - record["usage"])
        return Response(200, {"data": {"label": record["label"], "usage": record["usage"],
                                       "limit": record["limit"], "is_free_tier": False,
                                       "limit_remaining": remaining,
                                       "is_provisioning_key": False}})

    def create(req: Request) -> Response:
        provisioned(req)
        body = body_of(req)
        name = body.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise OpenRouterError(400, "name is required")
        key = new_key()
        now = state.now()
        record = {"hash": sha256_hex(key), "name": name, "label": _label(key),
                  "disabled": False, "limit": _limit(body.get("limit")), "usage": 0.0,
                  "createdAt": now, "updatedAt": now}
        data["keys"][record["hash"]] = record
        return Response(201, {"key": key, "data": _view(record)})

    def listing(req: Request) -> Response:
        provisioned(req)
        return Response(200, {"data": [_view(r) for r in data["keys"].values()]})

    def show(req: Request) -> Response:
        provisioned(req)
        return Response(200, {"data": _view(record_of(req.params["hash"]))})

    def patch(req: Request) -> Response:
        provisioned(req)
        record = record_of(req.params["hash"])
        body = body_of(req)
        if "disabled" in body:
            if not isinstance(body["disabled"], bool):
                raise OpenRouterError(400, "disabled must be a boolean")
            record["disabled"] = body["disabled"]
        if "name" in body:
            if not isinstance(body["name"], str) or not 0 < len(body["name"]) <= MAX_NAME:
                raise OpenRouterError(400, "name must be a non-empty string")
            record["name"] = body["name"]
        if "limit" in body:
            record["limit"] = _limit(body["limit"])
        record["updatedAt"] = state.now()
        return Response(200, {"data": _view(record)})

    def delete(req: Request) -> Response:
        provisioned(req)
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
        return Response(200, {"data": _view(record)})

    router.add("GET", f"{ROOT}/key", handled(key_info))
    router.add("GET", f"{ROOT}/auth/key", handled(key_info))
    router.add("POST", f"{ROOT}/keys", handled(create))
    router.add("GET", f"{ROOT}/keys", handled(listing))
    router.add("GET", f"{ROOT}/keys/{{hash}}", handled(show))
    router.add("PATCH", f"{ROOT}/keys/{{hash}}", handled(patch))
    router.add("DELETE", f"{ROOT}/keys/{{hash}}", handled(delete))
    router.add("POST", f"{CONTROL_ROOT}/openrouter/provisioning-key",
               handled(control_provisioning))
    router.add("PATCH", f"{CONTROL_ROOT}/openrouter/keys/{{hash}}", handled(control_usage))
