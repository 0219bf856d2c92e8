"""Private: Choose and build the secret store from the settings: ``open_store(settings)``.

Vault/OpenBao when ``store.backend`` says so or a Vault address is configured
(``VAULT_ADDR``), else the local encrypted file. Building a store does no I/O: the Vault
backend logs in on first use, the local one reads its file on first use. hvac is imported
only when the Vault backend is chosen.
"""

from __future__ import annotations

from impromptu_ops.errors import ConfigError
from impromptu_ops.settings import Settings
from impromptu_ops.store.base import SecretStore


def open_store(settings: Settings, backend: str | None = None) -> SecretStore:
    """Build the configured store.

    Args:
        settings: the effective settings (``settings.store`` and derived paths).
        backend: ``"local"`` or ``"vault"`` to override the configured choice (a
            ``--backend`` flag).

    Returns:
        A :class:`~impromptu_ops.store.base.SecretStore`.

    Raises:
        ConfigError: unknown backend, or Vault chosen without an http(s) address.
    """
    chosen = backend or settings.store_backend
    s = settings.store
    if chosen == "local":
        from impromptu_ops.store.local import LocalStore

        return LocalStore(
            settings.local_store_path,
            settings.local_key_path,
            passphrase=s.passphrase,
            max_versions=s.max_versions,
            keep_good=s.vault_min_versions_kept,
            lock_timeout=s.lock_timeout,
            scrypt_n=s.scrypt_n,
        )
    if chosen == "vault":
        if not s.vault_addr:
            raise ConfigError("the Vault backend needs an address",
                              hint="set VAULT_ADDR or [store] vault_addr")
        if not s.vault_addr.startswith(("http://", "https://")):
            # A typo here would otherwise read as "Vault is unreachable" (exit 69).
            raise ConfigError(f"Vault address {s.vault_addr[:80]!r} is not an http(s) URL",
                              hint="e.g. VAULT_ADDR=https://vault.example:8200")
        from impromptu_ops.store.vault import VaultStore
        from impromptu_ops.store.vault_auth import VaultAuth

        auth = VaultAuth(
            token=s.vault_token,
            token_file=s.vault_token_file,
            role_id=s.vault_role_id,
            secret_id_file=s.vault_secret_id_file,
            secret_id_wrapped=s.vault_secret_id_wrapped,
            approle_mount=s.vault_approle_mount,
        )
        return VaultStore(
            s.vault_addr,
            auth,
            mount=s.vault_mount,
            prefix=s.vault_prefix,
            agent=s.agent,
            timeout=s.vault_timeout,
            namespace=s.vault_namespace,
            ca_cert=s.vault_ca_cert,
            max_versions=s.max_versions,
            keep_good=s.vault_min_versions_kept,
            min_token_ttl=s.vault_min_token_ttl,
        )
    raise ConfigError(f"unknown store backend {chosen!r}: use local or vault")
