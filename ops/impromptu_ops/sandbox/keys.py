"""Key management (contract §5, [ours]): list, create (idempotent), revoke API keys.

``GET /v1/agent/keys`` -> ``{keys: [{id, prefix, createdAt, lastUsedAt, expiresAt,
status}]}``; ``POST /v1/agent/keys`` -> 201 ``{id, apiKey, prefix, createdAt, expiresAt}``,
refused with KEY_LIMIT when :data:`contract.MAX_ACTIVE_KEYS` keys are active; ``DELETE
/v1/agent/keys/{id}`` revokes (LAST_KEY for the only active key, NOT_FOUND for another
agent's or an unknown id; revoking a revoked key answers its record again).

``Idempotency-Key``: the same header value with the same body (per agent) replays the first
answer, key included; the same value with another body is a VALIDATION_ERROR. Replays are
kept in memory only (the state file never holds a key), so they do not survive a restart
of the sandbox; a restarted platform that forgets would behave the same.

With :attr:`SandboxConfig.key_management` off, every route here answers 404 NOT_FOUND: a
platform without rotation.
"""

from __future__ import annotations

from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.access import agent_route
from impromptu_ops.sandbox.accounts import agent_keys, issue_key, key_status, key_view
from impromptu_ops.sandbox.router import ApiError, Request, Response, Router, validation
from impromptu_ops.sandbox.state import State, iso, sha256_hex

MAX_IDEMPOTENCY_KEY = 255


def install(router: Router, state: State) -> None:
    if not state.config.key_management:
        return  # unrouted: the router answers NOT_FOUND like a platform without rotation

    def listing(req: Request) -> Response:
        return Response(200, {"keys": [key_view(state, k)
                                       for k in agent_keys(state, req.agent_id)]})

    def create(req: Request) -> Response:
        idem = req.header(contract.IDEMPOTENCY_HEADER)
        replays: dict[tuple[str, str], dict[str, Any]] = state.memory.setdefault(
            "idempotency", {})
        body_hash = sha256_hex(req.body)
        if idem is not None:
            if not idem or len(idem) > MAX_IDEMPOTENCY_KEY:
                raise validation({contract.IDEMPOTENCY_HEADER: [
                    f"must be 1..{MAX_IDEMPOTENCY_KEY} characters"]})
            seen = replays.get((req.agent_id, idem))
            if seen is not None:
                if seen["bodyHash"] != body_hash:
                    raise validation({contract.IDEMPOTENCY_HEADER: [
                        "already used with a different body"]})
                return Response(seen["status"], dict(seen["body"]),
                                {"Idempotent-Replayed": "true"})
        body = req.json_object(required=False)
        days = body.get("expiresInDays")
        if days is not None and (not isinstance(days, int) or isinstance(days, bool)
                                 or not 1 <= days <= 365):
            raise validation({"expiresInDays": ["must be an integer 1..365"]})
        active = [k for k in agent_keys(state, req.agent_id)
                  if key_status(state, k) == "active"]
        if len(active) >= contract.MAX_ACTIVE_KEYS:
            raise ApiError("KEY_LIMIT", f"at most {contract.MAX_ACTIVE_KEYS} active keys",
                           hint="revoke the old key before creating another")
        key, record = issue_key(state, req.agent_id, expires_in_days=days)
        answer = {"id": record["id"], "apiKey": key, "prefix": record["prefix"],
                  "createdAt": iso(record["createdAt"]), "expiresAt": iso(record["expiresAt"])}
        if idem is not None:
            replays[(req.agent_id, idem)] = {"bodyHash": body_hash, "status": 201,
                                             "body": answer}
        return Response(201, answer)

    def revoke(req: Request) -> Response:
        record = state.data["keys"].get(req.params["keyId"])
        if record is None or record["agentId"] != req.agent_id:
            raise ApiError("NOT_FOUND", "no such key")
        if key_status(state, record) == "active":
            active = [k for k in agent_keys(state, req.agent_id)
                      if key_status(state, k) == "active"]
            if len(active) <= 1:
                raise ApiError("LAST_KEY", "this is the only active key",
                               hint="create the new key first, then revoke the old one")
            record["revokedAt"] = state.now()
        return Response(200, key_view(state, record))

    agent_route(router, state, "GET", "/keys", listing)
    agent_route(router, state, "POST", "/keys", create)
    agent_route(router, state, "DELETE", "/keys/{keyId}", revoke)
