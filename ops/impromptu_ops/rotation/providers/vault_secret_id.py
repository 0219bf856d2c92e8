"""Vault/OpenBao AppRole ``secret_id``: the credential the jobs log in with.

- mint: ``POST auth/<mount>/role/<role>/secret-id`` with metadata
  ``{"impromptu_rotation": <label>}`` (so a secret_id that never reached the store can be
  found again: ``LIST .../secret-id`` then ``secret-id-accessor/lookup``). In wrapped mode
  (``store.vault_secret_id_wrapped``) the call carries ``X-Vault-Wrap-TTL``
  (``store.vault_secret_id_wrap_ttl``): Vault answers a single-use wrapping token
  (``wrap_info.token``, the secret_id's accessor in ``wrap_info.wrapped_accessor``) and
  the rotator never sees the secret_id itself; the jobs unwrap it at login;
- verify, without spending what the jobs need:
  wrapped: ``sys/wrapping/lookup`` (does not consume the token) must show a live token
  created at this role's ``secret-id`` path;
  a role that limits uses (``secret_id_num_uses`` not 0): ``secret-id/lookup`` must find
  the secret_id with uses left (a login would spend one: with 1 use, the only one);
  otherwise: ``POST auth/<mount>/login``, the token obtained revoked at once;
- hand over: when ``store.vault_secret_id_file`` is configured (the jobs read their
  secret_id there), the file is replaced atomically (0600) with the new value (the
  wrapping token in wrapped mode);
- retire: AppRole has no "disabled" state; after the grace period the old secret_id is
  destroyed by accessor (``secret-id-accessor/destroy``).

Calls use the rotation job's own Vault token (``VAULT_TOKEN`` / ``store.vault_token``),
which must be allowed to manage the role's secret_ids (``policies/vault/rotation.hcl``).
The key id is the accessor. A stored value that is a wrapping token (set up by hand) is
identified as the one secret_id of the role created within a second of the token; a spent
or expired wrapping token cannot be identified (the store metadata, written by every
rotation, names the accessor instead).

Vault API pages: https://openbao.org/api-docs/auth/approle/ ,
https://developer.hashicorp.com/vault/api-docs/system/wrapping-lookup .

This is the smallest typed adapter over Vault's HTTP API that the provider needs; it does
not read or write KV secrets (that is :mod:`impromptu_ops.store`).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from impromptu_ops import contract
from impromptu_ops.atomic import write_text
from impromptu_ops.errors import AuthError, ConfigError, OpsError, TransportError
from impromptu_ops.rotation.provider import KeyRef, NewKey, label_rotation, rotation_label
from impromptu_ops.secret import Secret, clip

METADATA_KEY = "impromptu_rotation"
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _when(text: object) -> float | None:
    """Vault's RFC 3339 time (nanoseconds allowed) as epoch seconds; None if unreadable."""
    match = _STAMP.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    frac = (match.group(2) or ".0")[:7]
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return datetime.fromisoformat(match.group(1) + frac + zone).timestamp()
    except ValueError:
        return None


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
        wrapped: hand over response-wrapped secret_ids (``store.vault_secret_id_wrapped``).
        wrap_ttl: seconds a wrapping token lives (``store.vault_secret_id_wrap_ttl``).
    """

    name = "vault-secret-id"
    secret = contract.VAULT_SECRET_ID
    idempotent_create = False

    def __init__(self, addr: str, token: Secret, role: str, *, mount: str = "approle",
                 role_id: str = "", secret_id_file: Path | None = None,
                 timeout: float = 10.0, namespace: str = "",
                 transport: httpx.BaseTransport | None = None,
                 wrapped: bool = False, wrap_ttl: float = 3600.0) -> None:
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
        self.wrapped = wrapped
        if wrapped and wrap_ttl < 1:
            raise ConfigError("store.vault_secret_id_wrap_ttl must be at least 1 second")
        self.wrap_ttl = int(wrap_ttl)
        self._uses: int | None = None

    # -- HTTP --------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, *,
                 token: Secret | None = None, auth: bool = True,
                 extra: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        headers = dict(extra or {})
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

    def secret_id_num_uses(self) -> int:
        """The role's ``secret_id_num_uses`` (0: unlimited), read once per run."""
        if self._uses is None:
            raw = self._ok("GET", self._role_path).get("secret_id_num_uses", 0)
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                raise OpsError(f"Vault role {self.role}: secret_id_num_uses is {raw!r}, not a "
                               "count")
            self._uses = raw
        return self._uses

    # -- Provider ------------------------------------------------------------------------
    def identify(self, value: Secret) -> str:
        status, doc = self._request("POST", f"{self._role_path}/secret-id/lookup",
                                    {"secret_id": value.reveal()})
        data = doc.get("data") if status < 400 else None
        found = str(data.get("secret_id_accessor", "")) if isinstance(data, dict) else ""
        if found or not self.wrapped:
            return found
        return self._identify_wrapped(value)

    def _identify_wrapped(self, value: Secret) -> str:
        """The accessor of the secret_id inside a live wrapping token: the one secret_id of
        the role created within a second of the token ("" when not exactly one)."""
        status, doc = self._request("POST", "sys/wrapping/lookup", {"token": value.reveal()})
        data = doc.get("data") if status < 400 else None
        if not isinstance(data, dict) or data.get("creation_path") != (
                f"{self._role_path}/secret-id"):
            return ""
        wrapped_at = _when(data.get("creation_time"))
        if wrapped_at is None:
            return ""
        near = []
        for accessor in sorted(self._accessors()):
            status, got = self._request("POST", f"{self._role_path}/secret-id-accessor/lookup",
                                        {"secret_id_accessor": accessor})
            info = got.get("data") if status < 400 else None
            made = _when(info.get("creation_time")) if isinstance(info, dict) else None
            if made is not None and abs(made - wrapped_at) <= 1.0:
                near.append(accessor)
        return near[0] if len(near) == 1 else ""

    def create(self, rotation_id: str, attempt: int) -> NewKey:
        label = rotation_label(rotation_id, attempt)
        body = {"metadata": json.dumps({METADATA_KEY: label})}
        if self.wrapped:
            return self._create_wrapped(body, rotation_id, label)
        data = self._ok("POST", f"{self._role_path}/secret-id", body)
        value, accessor = data.get("secret_id"), data.get("secret_id_accessor")
        if not isinstance(value, str) or not isinstance(accessor, str) or not accessor:
            raise OpsError("Vault minted a secret_id without a value or an accessor")
        return NewKey(accessor, Secret(value, contract.VAULT_SECRET_ID))

    def _create_wrapped(self, body: dict[str, Any], rotation_id: str, label: str) -> NewKey:
        where = f"POST /v1/{self._role_path}/secret-id (wrapped)"
        status, doc = self._request("POST", f"{self._role_path}/secret-id", body,
                                    extra={"X-Vault-Wrap-TTL": f"{self.wrap_ttl}s"})
        if status >= 400:
            errs = "; ".join(map(str, doc.get("errors", [])))[:200]
            raise OpsError(f"Vault {where}: HTTP {status} {errs}",
                           hint="the rotation token needs the AppRole secret-id capabilities")
        info = doc.get("wrap_info")
        token = info.get("token") if isinstance(info, dict) else None
        if not isinstance(token, str) or not token:
            raise OpsError(f"Vault {where}: the answer holds no wrapping token")
        value = Secret(token, contract.VAULT_SECRET_ID)
        accessor = info.get("wrapped_accessor") if isinstance(info, dict) else None
        if not isinstance(accessor, str) or not accessor:
            # Not every server names the wrapped accessor: find it by the label we set.
            found = [r.key_id for r in self.created_by(rotation_id) if r.label == label]
            if len(found) != 1:
                raise OpsError(f"Vault {where}: cannot tell which secret_id was wrapped")
            accessor = found[0]
        return NewKey(accessor, value)

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
        """Check ``value`` works without spending what the jobs will need.

        Raises:
            AuthError: Vault does not know it (or it has no uses left, or in wrapped mode
                the wrapping token is spent, expired or not from this role).
        """
        if self.wrapped:
            self._verify_wrapped(value)
        elif self.secret_id_num_uses() != 0:
            self._verify_by_lookup(value)
        else:
            self._verify_by_login(value)

    def _verify_wrapped(self, value: Secret) -> None:
        status, doc = self._request("POST", "sys/wrapping/lookup", {"token": value.reveal()})
        data = doc.get("data") if status < 400 else None
        path = data.get("creation_path") if isinstance(data, dict) else None
        want = f"{self._role_path}/secret-id"
        if path != want:
            raise AuthError("Vault does not know this wrapping token (spent or expired)"
                            if path is None else
                            f"the wrapping token wraps {path!r}, not a secret_id of {want}",
                            code="VAULT_WRAPPING", status=status)

    def _verify_by_lookup(self, value: Secret) -> None:
        status, doc = self._request("POST", f"{self._role_path}/secret-id/lookup",
                                    {"secret_id": value.reveal()})
        data = doc.get("data") if status < 400 else None
        if not isinstance(data, dict) or not data.get("secret_id_accessor"):
            raise AuthError("Vault does not know this secret_id", code="VAULT_SECRET_ID",
                            status=status)
        left = data.get("secret_id_num_uses")
        if isinstance(left, int) and not isinstance(left, bool) and left < 0:
            raise AuthError("this secret_id has no uses left", code="VAULT_SECRET_ID",
                            status=status)

    def _verify_by_login(self, value: Secret) -> None:
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
