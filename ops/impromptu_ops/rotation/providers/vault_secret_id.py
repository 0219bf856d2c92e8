"""Vault/OpenBao AppRole ``secret_id``: the credential the jobs log in with.

- mint: ``POST auth/<mount>/role/<role>/secret-id`` with metadata
  ``{"impromptu_rotation": <label>}`` (so a secret_id that never reached the store can be
  found again: ``LIST .../secret-id`` then ``secret-id-accessor/lookup``);
- verify: ``POST auth/<mount>/login`` with the role_id and the new secret_id; the token
  obtained is revoked at once (``auth/token/revoke-self``);
- hand over: when ``store.vault_secret_id_file`` is configured (the jobs read their
  secret_id there), the file is replaced atomically (0600) with the new value;
- retire: AppRole has no "disabled" state; after the grace period the old secret_id is
  destroyed by accessor (``secret-id-accessor/destroy``).

Calls use the rotation job's own Vault token (``VAULT_TOKEN`` / ``store.vault_token``),
which must be allowed to manage the role's secret_ids. The key id is the accessor.

This is the smallest typed adapter over Vault's HTTP API that the provider needs; it does
not read or write KV secrets (that is :mod:`impromptu_ops.store`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from impromptu_ops.atomic import write_text
from impromptu_ops.errors import AuthError, ConfigError, OpsError, TransportError
from impromptu_ops.rotation.provider import KeyRef, NewKey, label_rotation, rotation_label
from impromptu_ops.secret import Secret, clip

METADATA_KEY = "impromptu_rotation"


class VaultSecretIdProvider:
    """Rotates ``vault-secret-id`` for one AppRole role.

    Args:
        addr: the Vault address.
        token: the rotation job's token (manages the role's secret_ids).
        role: the AppRole role name.
        mount: the AppRole mount (default ``approle``).
        role_id: the role_id (read from the role when empty).
        secret_id_file: the file the jobs log in from, replaced on hand-over (optional).
        timeout: per-request timeout in seconds.
        namespace: the Vault namespace (Enterprise/OpenBao namespaces), if any.
    """

    name = "vault-secret-id"
    secret = "vault-secret-id"  # noqa: S105 - the name of a secret, not a value
    idempotent_create = False

    def __init__(self, addr: str, token: Secret, role: str, *, mount: str = "approle",
                 role_id: str = "", secret_id_file: Path | None = None,
                 timeout: float = 10.0, namespace: str = "",
                 transport: httpx.BaseTransport | None = None) -> None:
        if not role:
            raise ConfigError("rotating vault-secret-id needs the AppRole role name",
                              hint="set [rotation] approle_role or IMPROMPTU_ROTATION_APPROLE_ROLE")
        self.addr = addr.rstrip("/")
        self._token = token
        self.role = role
        self.mount = mount.strip("/")
        self._role_id = role_id
        self.secret_id_file = secret_id_file
        self._timeout = timeout
        self._namespace = namespace
        self._transport = transport

    # -- HTTP --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                 token: Secret | None = None, auth: bool = True) -> tuple[int, dict[str, Any]]:
        headers = {}
        if auth:
            headers["X-Vault-Token"] = (token or self._token).reveal()
        if self._namespace:
            headers["X-Vault-Namespace"] = self._namespace
        where = f"{method} /v1/{path}"
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport) as client:
                resp = client.request(method, f"{self.addr}/v1/{path}", json=body,
                                      headers=headers)
        except httpx.HTTPError as exc:
            raise TransportError(f"Vault {where}: {type(exc).__name__}") from None
        try:
            doc = resp.json() if resp.content else {}
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        if resp.status_code >= 500 or resp.status_code == 429:
            raise TransportError(f"Vault {where}: HTTP {resp.status_code} "
                                 f"{clip('; '.join(map(str, doc.get('errors', []))), 200)}")
        return resp.status_code, doc

    def _ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        status, doc = self._request(method, path, body)
        if status >= 400:
            errs = clip("; ".join(map(str, doc.get("errors", []))), 200)
            raise OpsError(f"Vault {method} /v1/{path}: HTTP {status} {errs}",
                           hint="the rotation token needs the AppRole secret-id capabilities")
        data = doc.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def _role_path(self) -> str:
        return f"auth/{self.mount}/role/{self.role}"

    def role_id(self) -> str:
        if not self._role_id:
            self._role_id = str(self._ok("GET", f"{self._role_path}/role-id").get("role_id", ""))
        return self._role_id

    # -- Provider ------------------------------------------------------------------------
    def identify(self, value: Secret) -> str:
        status, doc = self._request("POST", f"{self._role_path}/secret-id/lookup",
                                    {"secret_id": value.reveal()})
        data = doc.get("data") if status < 400 else None
        return str(data.get("secret_id_accessor", "")) if isinstance(data, dict) else ""

    def create(self, rotation_id: str, attempt: int) -> NewKey:
        meta = json.dumps({METADATA_KEY: rotation_label(rotation_id, attempt)})
        data = self._ok("POST", f"{self._role_path}/secret-id", {"metadata": meta})
        value, accessor = data.get("secret_id"), data.get("secret_id_accessor")
        if not isinstance(value, str) or not isinstance(accessor, str) or not accessor:
            raise OpsError("Vault minted a secret_id without a value or an accessor")
        return NewKey(accessor, Secret(value, "vault-secret-id"))

    def _labelled(self) -> list[KeyRef]:
        refs = []
        for accessor in sorted(self._accessors()):
            status, got = self._request("POST", f"{self._role_path}/secret-id-accessor/lookup",
                                        {"secret_id_accessor": str(accessor)})
            info = got.get("data") if status < 400 else None
            meta = info.get("metadata") if isinstance(info, dict) else None
            label = meta.get(METADATA_KEY, "") if isinstance(meta, dict) else ""
            refs.append(KeyRef(str(accessor), str(label)))
        return refs

    def created_by(self, rotation_id: str) -> list[KeyRef]:
        return [r for r in self._labelled() if label_rotation(r.label) == rotation_id]

    def owned(self) -> list[KeyRef]:
        return [r for r in self._labelled() if label_rotation(r.label) is not None]

    def verify(self, value: Secret) -> None:
        status, doc = self._request(
            "POST", f"auth/{self.mount}/login",
            {"role_id": self.role_id(), "secret_id": value.reveal()}, auth=False)
        auth = doc.get("auth") if status < 400 else None
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("Vault refused the AppRole login with this secret_id",
                            code="VAULT_LOGIN", status=status)
        self._request("POST", "auth/token/revoke-self", {}, token=Secret(token, "probe"))

    def activate(self, value: Secret) -> None:
        if self.secret_id_file is not None:
            write_text(self.secret_id_file, value.reveal() + "\n")

    def disable(self, key_id: str) -> None:
        """AppRole secret_ids have no disabled state: the old one lives until destroyed."""

    def enable(self, key_id: str) -> None:
        """See :meth:`disable`."""

    def _accessors(self) -> set[str]:
        status, doc = self._request("LIST", f"{self._role_path}/secret-id")
        if status == 404:
            return set()
        if status >= 400:
            raise OpsError(f"Vault LIST {self._role_path}/secret-id: HTTP {status}")
        data = doc.get("data")
        keys = data.get("keys", []) if isinstance(data, dict) else []
        return {str(k) for k in keys} if isinstance(keys, list) else set()

    def delete(self, key_id: str) -> None:
        """Destroy by accessor; a secret_id already gone is success. OpenBao answers a
        destroy of a missing accessor with HTTP 500 ("failed to find accessor entry"),
        the same status as a real failure, so any failure is settled by reading back the
        role's accessors: absent means done."""
        try:
            status, _doc = self._request(
                "POST", f"{self._role_path}/secret-id-accessor/destroy",
                {"secret_id_accessor": key_id})
        except TransportError:
            status = 599
        if status < 400:
            return
        if key_id in self._accessors():
            raise OpsError(f"Vault could not destroy secret_id accessor {key_id}: HTTP {status}",
                           hint="run `impromptu-ops rotate resume` to try again")

    def close(self) -> None:
        """Nothing is kept open between calls."""
