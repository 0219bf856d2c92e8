"""Private: How the Vault backend gets and keeps a token: token (env or file) or AppRole.

- **token**: ``VAULT_TOKEN`` (``store.vault_token``) or a token file (``store.vault_token_file``,
  e.g. a Vault Agent sink). The file must not be readable by others.
- **AppRole**: ``store.vault_role_id`` plus a secret_id file (``store.vault_secret_id_file``).
  With ``store.vault_secret_id_wrapped`` the file holds a response-wrapping token instead,
  unwrapped once (``sys/wrapping/unwrap``) at login; wrapping tokens are single-use, so this
  suits an orchestrator that hands each process start a fresh wrapped secret_id.
  ``rotate vault-secret-id`` keeps to this: in wrapped mode it writes a new wrapping token
  (``store.vault_secret_id_wrap_ttl``) to the file, never a raw secret_id, and checks it
  with ``sys/wrapping/lookup``, which leaves its one use to the jobs.
- **TTL**: after login the token's TTL is looked up; when it is below
  ``store.vault_min_token_ttl`` the token is renewed (when renewable), AppRole logs in
  again, and if the TTL is still too short (the token is at its max TTL) a clear
  :class:`~impromptu_ops.errors.StoreError` says so instead of failing mid-job.

Setting up AppRole for an agent (operator, once)::

    bao auth enable approle
    IMPROMPTU_ROTATION_APPROLE_ROLE=impromptu-a1 \\
        impromptu-ops secrets policy rotation --agent a1 > rotation-a1.hcl
    bao policy write impromptu-rotation-a1 rotation-a1.hcl
    bao write auth/approle/role/impromptu-a1 token_policies=impromptu-rotation-a1 \\
        token_ttl=1h token_max_ttl=4h secret_id_ttl=24h
    bao read -field=role_id auth/approle/role/impromptu-a1/role-id        # -> role_id
    bao write -wrap-ttl=10m -f auth/approle/role/impromptu-a1/secret-id   # -> wrapped id file

This module owns authentication only; it never reads or writes secrets.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impromptu_ops import contract, files
from impromptu_ops.errors import ConfigError, StoreError
from impromptu_ops.secret import Secret


@dataclass(frozen=True)
class VaultAuth:
    """Credentials for one Vault login, as configured (values are :class:`Secret`)."""

    token: Secret | None = None
    token_file: Path | None = None
    role_id: str = ""
    secret_id_file: Path | None = None
    secret_id_wrapped: bool = False
    approle_mount: str = "approle"

    @property
    def method(self) -> str:
        if self.role_id:
            return "approle"
        if self.token is not None or self.token_file is not None:
            return "token"
        return "none"


def read_private_file(path: Path, what: str) -> Secret:
    """Read a one-line credential file; refuse it when others can read it.

    Raises:
        ConfigError: missing, not a regular file, readable by others, or empty.
    """
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if st.st_mode & 0o007:
            raise ConfigError(f"{what} {path} is readable by other users",
                              hint=f"chmod 600 {path}")
        text = files.read_text(path, what=what, limit=64 * 1024, error=ConfigError).strip()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    if not text:
        raise ConfigError(f"{what} {path} is empty")
    return Secret(text, what)


def login(client: Any, auth: VaultAuth) -> None:
    """Put a token on ``client`` (an ``hvac.Client``) according to ``auth``.

    Raises:
        ConfigError: nothing configured, or an unreadable credential file.
        VaultHTTPError: Vault refused the login (the caller maps it).
    """
    if auth.role_id:
        if auth.secret_id_file is None:
            raise ConfigError("AppRole needs store.vault_secret_id_file")
        secret_id = read_private_file(auth.secret_id_file, "Vault secret_id file")
        if auth.secret_id_wrapped:
            # Present the wrapping token as the client token: unwrapping is its one use.
            client.token = secret_id.reveal()
            unwrapped = client.sys.unwrap()
            client.token = ""
            try:
                secret_id = Secret(str(unwrapped["data"]["secret_id"]), contract.VAULT_SECRET_ID)
            except (KeyError, TypeError):
                raise StoreError("the wrapped secret_id did not unwrap to a secret_id") from None
        answer = client.auth.approle.login(role_id=auth.role_id,
                                           secret_id=secret_id.reveal(),
                                           mount_point=auth.approle_mount)
        Secret(str(answer["auth"]["client_token"]), "vault-token")  # register for redaction
        return
    if auth.token is not None:
        client.token = auth.token.reveal()
        return
    if auth.token_file is not None:
        client.token = read_private_file(auth.token_file, "Vault token file").reveal()
        return
    raise ConfigError("no Vault credentials configured",
                      hint="set VAULT_TOKEN, store.vault_token_file, or AppRole "
                           "(store.vault_role_id + store.vault_secret_id_file)")


def token_ttl(client: Any) -> tuple[int, bool]:
    """``(ttl seconds, renewable)`` of the client's token; ttl 0 means it never expires."""
    data = client.auth.token.lookup_self()["data"]
    return int(data.get("ttl") or 0), bool(data.get("renewable"))


def ensure_ttl(client: Any, auth: VaultAuth, min_ttl: float, where: str) -> int:
    """Make sure the token lives at least ``min_ttl`` seconds more; return its TTL.

    Renews a renewable token, logs in again for AppRole (not for a wrapped secret_id: its
    wrapping token is spent), and raises when the token is at its max TTL.

    Raises:
        StoreError: the token cannot be made to last ``min_ttl`` seconds.
    """
    ttl, renewable = token_ttl(client)
    if ttl == 0 or ttl >= min_ttl:
        return ttl
    if renewable:
        # Ask for twice the floor; Vault caps it at the token's max TTL.
        client.auth.token.renew_self(increment=f"{int(min_ttl * 2)}s")
        ttl, renewable = token_ttl(client)
    if 0 < ttl < min_ttl and auth.role_id and not auth.secret_id_wrapped:
        login(client, auth)
        ttl, renewable = token_ttl(client)
    if 0 < ttl < min_ttl:
        raise StoreError(
            f"the Vault token for {where} expires in {ttl}s, less than the "
            f"{int(min_ttl)}s this job needs, and cannot be renewed further (max TTL)",
            hint="log in again or issue a new secret_id",
        )
    return ttl

