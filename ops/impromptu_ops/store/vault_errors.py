"""Private: Vault/OpenBao answers mapped to our error tree, in one place. Pure (no hvac import).

hvac's own mapping has traps we must not inherit: it turns 412 (a performance standby that
has not caught up with our last write yet: retry shortly) into ``UnexpectedError``, a 429
from a standby node into ``RateLimitExceeded``, and a failed check-and-set into a generic
``InvalidRequest``. The vault backend installs an adapter that raises :class:`VaultHTTPError`
(status, method, path, Vault's error strings) and this module decides what it means:

====================  ===============================================  =====
status / condition    our error                                        exit
====================  ===============================================  =====
400 "check-and-set"   CasConflict                                      75
400 other             StoreError                                       74
401 / 403             StoreError ("permission denied": token/policy)    74
404                   SecretNotFound                                   1
412                   retried by the caller, then StoreUnavailable     69
429                   StoreUnavailable (standby or rate limited)       69
501                   StoreUnavailable (not initialised)               69
503                   StoreUnavailable (sealed, or down)               69
5xx other             StoreError                                       74
connect/timeout       StoreUnavailable (unreachable)                   69
====================  ===============================================  =====

``sys/health`` codes: 200 active, 429 unsealed standby, 472 DR secondary, 473 performance
standby, 501 not initialised, 503 sealed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from impromptu_ops.errors import CasConflict, SecretNotFound, StoreError, StoreUnavailable
from impromptu_ops.secret import clip


class VaultHTTPError(Exception):
    """A non-2xx answer from Vault, with what we need to diagnose it (no token, no data)."""

    def __init__(self, status: int, method: str, path: str, errors: Sequence[str],
                 body: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.body = body  # Vault's JSON answer (error answers carry no secret data)
        self.method = method.upper()
        self.path = path
        self.errors = [clip(str(e), 200) for e in errors][:3]
        super().__init__(f"HTTP {status} on {self.method} {path}: {'; '.join(self.errors)}")


HEALTH_STATES: Mapping[int, str] = {
    200: "active",
    429: "standby",
    472: "dr-secondary",
    473: "performance-standby",
    501: "uninitialised",
    503: "sealed",
}


def health_state(status: int, body: Mapping[str, Any] | None) -> str:
    """Name the node's state from a ``sys/health`` answer (the body wins when it is clear)."""
    if body:
        if body.get("initialized") is False:
            return "uninitialised"
        if body.get("sealed") is True:
            return "sealed"
    return HEALTH_STATES.get(status, f"unhealthy (HTTP {status})")


def unavailable_for(state: str, where: str) -> StoreUnavailable | None:
    """The error for a non-serving node, or ``None`` when the node can serve."""
    if state in ("active", "performance-standby"):
        return None
    hints = {
        "sealed": "unseal it (bao operator unseal) or ask its operator",
        "uninitialised": "initialise it (bao operator init) or fix VAULT_ADDR",
        "standby": "point VAULT_ADDR at the active node or the cluster's load balancer",
        "dr-secondary": "a DR secondary cannot serve secrets: use the primary cluster",
    }
    return StoreUnavailable(f"Vault at {where} is {state}", hint=hints.get(state))


def map_http_error(exc: VaultHTTPError, what: str, where: str) -> StoreError:
    """Map one Vault error answer to our tree. ``what`` names the operation and secret."""
    text = "; ".join(exc.errors)
    if exc.status == 400 and "check-and-set" in text:
        return CasConflict(f"{what}: someone else wrote first (check-and-set lost)",
                           hint="read it again and retry")
    if exc.status == 404:
        return SecretNotFound(f"{what}: not found in {where}")
    if exc.status in (401, 403):
        return StoreError(f"{what}: Vault denied it ({text or 'permission denied'})",
                          hint="check the token (expired?) and its policies")
    if exc.status == 412:
        return StoreUnavailable(f"{what}: Vault node has not caught up with recent writes",
                                hint="retry in a moment")
    if exc.status == 429:
        return StoreUnavailable(f"{what}: Vault answered 429 (standby node or rate limit)",
                                hint="retry later, or point VAULT_ADDR at the active node")
    if exc.status == 501:
        return StoreUnavailable(f"Vault at {where} is uninitialised",
                                hint="initialise it or fix VAULT_ADDR")
    if exc.status == 503:
        return StoreUnavailable(f"Vault at {where} is sealed or down",
                                hint="unseal it (bao operator unseal) or ask its operator")
    return StoreError(f"{what}: Vault answered HTTP {exc.status} ({text or 'no detail'})")


def unreachable(where: str, detail: str) -> StoreUnavailable:
    return StoreUnavailable(f"Vault at {where} is unreachable ({detail})",
                            hint="check VAULT_ADDR and that the server is running")
