"""OpenRouter inference keys (contract §4): rotation through the provisioning API.

- mint: ``POST /keys`` named :func:`~impromptu_ops.rotation.provider.rotation_label`, with
  the provisioning key (``openrouter-provisioning-key`` in the store);
- find again: ``GET /keys`` by name (the read-back of an ambiguous create, and the orphan
  sweep);
- verify: ``GET /key`` with the new key itself (free);
- hand over: ``PUT /v1/agent/credentials`` on the platform (BYOK), then check the returned
  credential is listed as active; older inactive OpenRouter credentials are removed;
- retire: ``PATCH /keys/{hash} {disabled: true}``, later ``DELETE /keys/{hash}``.

The old key's hash: the one recorded in the key's store metadata by an earlier rotation,
else the listed key whose hash is the SHA-256 of the value (how OpenRouter's sandbox, and
this tool's records, name keys), else unknown — then it is reported, never guessed.

This module owns the mapping to OpenRouter; ordering and recovery belong to the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

from impromptu_ops.errors import ConfigError, NotFoundError, SecretNotFound
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.openrouter import OpenRouterClient, ProvisionedKey
from impromptu_ops.rotation.provider import (
    KeyRef,
    NewKey,
    label_rotation,
    rotation_label,
)
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings
from impromptu_ops.store.base import SecretStore

PROVISIONING_SECRET = "openrouter-provisioning-key"  # noqa: S105 - a name
AGENT_SECRET = "impromptu-api-key"  # noqa: S105 - a name
BYOK_PROVIDER = "openrouter"

# Builds an OpenRouter client for a key (the default talks HTTP; tests may inject).
OpenRouterFactory = Callable[[Secret], OpenRouterClient]
PlatformFactory = Callable[[Secret], PlatformClient]


def _read(store: SecretStore, name: str, why: str) -> Secret:
    try:
        return store.read(name).value("value")
    except SecretNotFound:
        raise ConfigError(f"{name} is not in the store: it is needed to {why}",
                          hint=f"store it with `impromptu-ops secrets put {name}`") from None


class OpenRouterProvider:
    """Rotates ``openrouter-api-key``.

    Args:
        settings: platform settings (OpenRouter and platform URLs, timeouts, retries).
        store: where the provisioning key and the agent's platform key are read from.
        byok: also hand the new key to the platform's BYOK store (default True).
    """

    name = "openrouter"
    secret = "openrouter-api-key"  # noqa: S105 - the name of a secret, not a value
    idempotent_create = False  # OpenRouter has no idempotency key: read back by name

    def __init__(self, settings: PlatformSettings, store: SecretStore, *, byok: bool = True,
                 openrouter: OpenRouterFactory | None = None,
                 platform: PlatformFactory | None = None) -> None:
        self.settings = settings
        self.store = store
        self.byok = byok
        self._openrouter = openrouter or (
            lambda key: OpenRouterClient(settings.openrouter_url, key, settings=settings))
        self._platform = platform or (lambda key: PlatformClient(settings, key))
        self._prov: OpenRouterClient | None = None
        self._agent: PlatformClient | None = None

    def _provisioning(self) -> contextlib.AbstractContextManager[OpenRouterClient]:
        # One client for the whole run (building one costs ~50 ms); closed by close().
        if self._prov is None:
            self._prov = self._openrouter(
                _read(self.store, PROVISIONING_SECRET, "manage OpenRouter keys"))
        return contextlib.nullcontext(self._prov)

    def close(self) -> None:
        """Close the HTTP clients this provider kept open."""
        for client in (self._prov, self._agent):
            if client is not None:
                client.close()
        self._prov = self._agent = None

    def _listed(self) -> list[ProvisionedKey]:
        with self._provisioning() as client:
            return client.list_keys()

    def identify(self, value: Secret) -> str:
        digest = hashlib.sha256(value.reveal().encode()).hexdigest()
        return next((k.hash for k in self._listed() if k.hash == digest), "") or ""

    def create(self, rotation_id: str, attempt: int) -> NewKey:
        with self._provisioning() as client:
            value, key_hash = client.create_key(rotation_label(rotation_id, attempt))
        return NewKey(key_hash, value)

    def _refs(self, keep: Callable[[str | None], bool]) -> list[KeyRef]:
        return [KeyRef(k.hash, k.name or "", bool(k.disabled)) for k in self._listed()
                if k.hash and k.name and keep(label_rotation(k.name))]

    def created_by(self, rotation_id: str) -> list[KeyRef]:
        return self._refs(lambda rid: rid == rotation_id)

    def owned(self) -> list[KeyRef]:
        return self._refs(lambda rid: rid is not None)

    def verify(self, value: Secret) -> None:
        with self._openrouter(value) as client:
            client.key_info()  # AuthError (401) when the key does not work

    def activate(self, value: Secret) -> None:
        if not self.byok:
            return
        if self._agent is None:
            self._agent = self._platform(
                _read(self.store, AGENT_SECRET, "hand the key to the platform (BYOK)"))
        with contextlib.nullcontext(self._agent) as client:
            put = client.credentials_put(BYOK_PROVIDER, value)
            cred_id = put.raw.get("id")
            listed = client.credentials_list().credentials
            mine = [c for c in listed if c.provider == BYOK_PROVIDER]
            if not any(c.id == cred_id and c.is_active for c in mine):
                raise ConfigError(
                    "the platform did not list the new OpenRouter key as active (BYOK)",
                    hint="check `GET /v1/agent/credentials`; rerun `rotate resume`")
            for cred in mine:  # the platform keeps one active per provider: drop the rest
                if cred.id and cred.id != cred_id and not cred.is_active:
                    with contextlib.suppress(NotFoundError):
                        client.credentials_delete(cred.id)

    def _set_disabled(self, key_id: str, disabled: bool) -> None:
        with self._provisioning() as client:
            try:
                client.set_disabled(key_id, disabled)
            except NotFoundError:
                if not disabled:
                    raise  # cannot re-enable a key that is gone: rollback must know
                # a key already deleted is disabled enough

    def disable(self, key_id: str) -> None:
        self._set_disabled(key_id, True)

    def enable(self, key_id: str) -> None:
        self._set_disabled(key_id, False)

    def delete(self, key_id: str) -> None:
        # NotFound: already gone, which is the goal
        with self._provisioning() as client, contextlib.suppress(NotFoundError):
            client.delete_key(key_id)
