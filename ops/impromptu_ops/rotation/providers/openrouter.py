"""OpenRouter inference keys (contract §4): rotation through the management API.

- which key is current (:meth:`OpenRouterProvider.identify`): OpenRouter's key ``hash`` is an
  opaque id (the API reference never says how it is made), so it is never derived from the
  value. In order: ``--old-key-hash`` (checked to exist, and to carry the stored key's
  label when the key still answers); the hash this tool recorded in the store metadata when
  it minted the key; else ``GET /key`` with the key (its masked ``label``, limit, reset,
  BYOK flag, expiry) matched against the full listing (every page, disabled included) — a
  unique match only. Anything else stops the rotation before a key is minted
  (:class:`~impromptu_ops.errors.ConfigError`, with how to proceed);
- mint: ``POST /keys`` with the management key (``openrouter-management-key`` in the store,
  or its old name ``openrouter-provisioning-key``). The new key inherits the old key's
  name, suffixed ``" " + rotation_label(...)`` (an earlier suffix replaced, never stacked)
  so the read-back finds it again, and its ``limit``, ``limit_reset`` and
  ``include_byok_in_limit``. Expiry: a key that had one gets the same lifetime again,
  counted from now (old ``expires_at - created_at``), so a rotated key is never born
  expired nor made immortal;
- find again: ``GET /keys`` (every page, ``include_disabled=true``) by that suffix: the
  read-back of an ambiguous create, and the orphan sweep (a disabled leftover included);
- verify: ``GET /key`` with the new key itself (free);
- hand over: ``PUT /v1/agent/credentials`` on the platform (BYOK), then check the returned
  credential is listed as active; older inactive OpenRouter credentials are removed;
- retire: ``PATCH /keys/{hash} {disabled: true}``, later ``DELETE /keys/{hash}``; each is
  taken as done only when OpenRouter confirms it (the PATCH answer or a read-back shows
  ``disabled``; DELETE answers ``{deleted: true}`` or the key then reads 404). Otherwise the
  step raises and the engine claims nothing.

This module owns the mapping to OpenRouter; ordering and recovery belong to the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from impromptu_ops import contract
from impromptu_ops.errors import (
    AuthError,
    ConfigError,
    MalformedResponse,
    NotFoundError,
    SecretNotFound,
)
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.openrouter import KeySpec, OpenRouterClient, ProvisionedKey
from impromptu_ops.rotation.provider import (
    ROTATION_TAG,
    KeyRef,
    NewKey,
    label_rotation,
    rotation_label,
)
from impromptu_ops.rotation.record import RecordStore
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings
from impromptu_ops.store.base import SecretStore

MANAGEMENT_SECRET = contract.OPENROUTER_MANAGEMENT_KEY
PROVISIONING_SECRET = contract.OPENROUTER_PROVISIONING_KEY
AGENT_SECRET = contract.IMPROMPTU_API_KEY
BYOK_PROVIDER = "openrouter"
DEFAULT_NAME = contract.OPENROUTER_API_KEY  # the base name when the old key has none
HOW_TO_PROCEED = ("pass the old key's hash with `rotate openrouter --old-key-hash HASH` "
                  "(OpenRouter dashboard, or GET /api/v1/keys with the management key)")

# Builds an OpenRouter client for a key (the default talks HTTP; tests may inject).
OpenRouterFactory = Callable[[Secret], OpenRouterClient]
PlatformFactory = Callable[[Secret], PlatformClient]


class CurrentKeyRefused(ConfigError):
    """The stored key is refused by OpenRouter and cannot be identified: the agent may be
    without a working key (``key_at_risk``: the rotation service exits 2, page someone)."""

    key_at_risk = True


def _read(store: SecretStore, name: str, why: str) -> Secret:
    try:
        return store.read(name).value("value")
    except SecretNotFound:
        raise ConfigError(f"{name} is not in the store: it is needed to {why}",
                          hint=f"store it with `impromptu-ops secrets put {name}`") from None


def _management_key(store: SecretStore) -> Secret:
    """The management key under its current name, else under the older one."""
    with contextlib.suppress(SecretNotFound):
        return store.read(MANAGEMENT_SECRET).value("value")
    try:
        return store.read(PROVISIONING_SECRET).value("value")
    except SecretNotFound:
        raise ConfigError(
            f"{MANAGEMENT_SECRET} is not in the store: it is needed to manage OpenRouter keys",
            hint=f"store it with `impromptu-ops secrets put {MANAGEMENT_SECRET}` "
                 f"({PROVISIONING_SECRET} is read too)") from None


def rotation_suffix(name: str) -> str | None:
    """The ``rotation_label`` a minted key's name ends with (``None`` for other names)."""
    at = name.rfind(ROTATION_TAG)
    if at < 0 or (at > 0 and name[at - 1] != " "):
        return None
    part = name[at:]
    return part if label_rotation(part) else None


def inherited_name(old: str | None, label: str) -> str:
    """``old`` with ``label`` as its suffix (earlier rotations' suffixes replaced)."""
    room = max(0, contract.OPENROUTER_KEY_NAME_MAX - len(label) - 1)
    base = (old or "").strip()
    while (suffix := rotation_suffix(base)) is not None:  # earlier rotations' labels
        base = base[:-len(suffix)].rstrip()
    base = base[:room].rstrip()
    while (suffix := rotation_suffix(base)) is not None:  # one the cut brought to the end
        base = base[:-len(suffix)].rstrip()
    return f"{base or DEFAULT_NAME[:room]} {label}".lstrip()


def _stamp(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("no time zone")
    return when


def renewed_expiry(old: ProvisionedKey, now: datetime) -> str | None:
    """The new key's ``expires_at``: the old key's lifetime again, from ``now``.

    Raises:
        ConfigError: the old key has an expiry but no readable lifetime.
    """
    if not old.expires_at:
        return None
    try:
        lifetime = _stamp(old.expires_at) - _stamp(old.created_at or "")
    except ValueError:
        raise ConfigError(f"OpenRouter key {old.hash} expires at {old.expires_at!r} but its "
                          "lifetime cannot be read (created_at is missing or malformed)",
                          hint="give the new key an expiry by hand, or remove the old "
                               "key's expiry, then rotate again") from None
    if lifetime.total_seconds() <= 0:
        raise ConfigError(f"OpenRouter key {old.hash} expired when it was created",
                          hint="rotate a key with a sane expiry")
    return (now + lifetime).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class OpenRouterProvider:
    """Rotates ``openrouter-api-key``.

    Args:
        settings: platform settings (OpenRouter and platform URLs, timeouts, retries).
        store: where the management key and the agent's platform key are read from.
        byok: also hand the new key to the platform's BYOK store (default True).
        old_key_hash: the current key's OpenRouter hash, given by the user
            (``--old-key-hash``) when the store does not record it.
        now: the wall clock (UTC) for the new key's expiry (tests inject).
    """

    name = "openrouter"
    secret = contract.OPENROUTER_API_KEY
    idempotent_create = False  # OpenRouter has no idempotency key: read back by name

    def __init__(self, settings: PlatformSettings, store: SecretStore, *, byok: bool = True,
                 openrouter: OpenRouterFactory, platform: PlatformFactory,
                 old_key_hash: str | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.byok = byok
        self.old_key_hash = (old_key_hash or "").strip() or None
        self._now = now or (lambda: datetime.now(UTC))
        self._openrouter = openrouter
        self._platform = platform
        self._prov: OpenRouterClient | None = None
        self._agent: PlatformClient | None = None
        self._old: ProvisionedKey | None = None

    def _provisioning(self) -> contextlib.AbstractContextManager[OpenRouterClient]:
        # One client for the whole run (building one costs ~50 ms); closed by close().
        if self._prov is None:
            self._prov = self._openrouter(_management_key(self.store))
        return contextlib.nullcontext(self._prov)

    def close(self) -> None:
        """Close the HTTP clients this provider kept open."""
        for client in (self._prov, self._agent):
            if client is not None:
                client.close()
        self._prov = self._agent = None

    def _listed(self) -> list[ProvisionedKey]:
        with self._provisioning() as client:
            return client.list_keys(include_disabled=True)

    def _get(self, key_hash: str) -> ProvisionedKey | None:
        with self._provisioning() as client:
            try:
                return client.get_key(key_hash)
            except NotFoundError:
                return None

    # ------------------------------------------------------------------ identification
    def identify(self, value: Secret) -> str:
        """The hash of the stored key ``value``, known for certain.

        Raises:
            ConfigError: it cannot be known for certain (nothing has been changed).
        """
        old = self._identify(value)
        self._old = old
        return old.hash or ""

    def _identify(self, value: Secret) -> ProvisionedKey:
        if self.old_key_hash:
            return self._explicit(value, self.old_key_hash)
        try:
            with self._openrouter(value) as client:
                info = client.key_info()
        except AuthError:
            raise CurrentKeyRefused(
                "cannot identify the current OpenRouter key: OpenRouter refuses it (GET /key "
                "answered 401: disabled, expired or deleted), so it cannot be matched to a "
                "listed key", hint=HOW_TO_PROCEED) from None
        if not info.label:
            raise ConfigError("cannot identify the current OpenRouter key: GET /key gave no "
                              "label to match", hint=HOW_TO_PROCEED)

        def same(mine: object, listed: object) -> bool:
            return mine is None or listed is None or mine == listed

        matches = [k for k in self._listed()
                   if k.hash and k.label == info.label and not k.disabled
                   and same(info.limit, k.limit) and same(info.limit_reset, k.limit_reset)
                   and same(info.include_byok_in_limit, k.include_byok_in_limit)
                   and same(info.expires_at, k.expires_at)]
        if len(matches) != 1:
            found = "no listed key" if not matches else f"{len(matches)} listed keys"
            raise ConfigError(
                f"cannot identify the current OpenRouter key for certain: {found} carry its "
                f"label {info.label} and settings", hint=HOW_TO_PROCEED)
        return matches[0]

    def _explicit(self, value: Secret, key_hash: str) -> ProvisionedKey:
        listed = self._get(key_hash)
        if listed is None:
            raise ConfigError(f"--old-key-hash {key_hash}: OpenRouter has no such key in this "
                              "account",
                              hint="copy the hash from GET /api/v1/keys or the dashboard")
        try:
            with self._openrouter(value) as client:
                label = client.key_info().label
        except AuthError:
            label = None  # the stored key no longer answers: the user's word stands
        if label and listed.label and label != listed.label:
            raise ConfigError(f"--old-key-hash {key_hash} is not the stored key (its label is "
                              f"{listed.label}, the stored key's is {label}); that is "
                              "another key", hint="pass the hash of the key in the store")
        return listed

    def _old_key(self) -> ProvisionedKey:
        """The key being replaced, as listed (for the settings the new key inherits)."""
        if self._old is not None:
            return self._old
        value, meta, _version = RecordStore(self.store).read_key(self.secret)
        recorded = meta.get("key_id", "")
        if self.old_key_hash and recorded and recorded != self.old_key_hash:
            raise ConfigError(f"--old-key-hash {self.old_key_hash} disagrees with the hash "
                              f"{recorded} recorded for {self.secret} in the store",
                              hint="run again without --old-key-hash")
        if self.old_key_hash or not recorded:
            self._old = self._identify(value)
        else:
            listed = self._get(recorded)
            if listed is None:
                raise ConfigError(f"the current OpenRouter key {recorded} (recorded in the "
                                  "store) is not in the account any more; nothing was minted",
                                  hint="`rotate rollback`, then " + HOW_TO_PROCEED)
            self._old = listed
        return self._old

    # ------------------------------------------------------------------ the rotation steps
    def create(self, rotation_id: str, attempt: int) -> NewKey:
        old = self._old_key()
        spec = KeySpec(inherited_name(old.name, rotation_label(rotation_id, attempt)),
                       limit=old.limit, limit_reset=old.limit_reset,
                       include_byok_in_limit=old.include_byok_in_limit,
                       expires_at=renewed_expiry(old, self._now()))
        with self._provisioning() as client:
            value, key_hash = client.create(spec)
        return NewKey(key_hash, value)

    def _refs(self, keep: Callable[[str | None], bool]) -> list[KeyRef]:
        refs = []
        for k in self._listed():
            suffix = rotation_suffix(k.name or "")
            if k.hash and suffix and keep(label_rotation(suffix)):
                refs.append(KeyRef(k.hash, suffix, bool(k.disabled)))
        return refs

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
                answer: ProvisionedKey | None = client.set_disabled(key_id, disabled)
            except NotFoundError:
                if not disabled:
                    raise  # cannot re-enable a key that is gone: rollback must know
                return  # a deleted key cannot be used: disabled enough (confirmed by 404)
            if answer is not None and answer.disabled is disabled:
                return
            answer = self._get(key_id)  # the PATCH answer did not say: read back
            if answer is None and disabled:
                return
            if answer is None or answer.disabled is not disabled:
                state = "disabled" if disabled else "enabled"
                raise MalformedResponse(
                    f"OpenRouter did not confirm that key {key_id} is {state} (PATCH answered, "
                    "the read-back disagrees)", hint="rerun `rotate resume`")

    def disable(self, key_id: str) -> None:
        self._set_disabled(key_id, True)

    def enable(self, key_id: str) -> None:
        self._set_disabled(key_id, False)

    def delete(self, key_id: str) -> None:
        with self._provisioning() as client:
            try:
                if client.delete_key(key_id):
                    return  # answered {deleted: true}
            except NotFoundError:
                return  # already gone, which is the goal
        if self._get(key_id) is not None:
            raise MalformedResponse(f"OpenRouter did not confirm deleting key {key_id}: it is "
                                    "still listed", hint="rerun `rotate resume`")
