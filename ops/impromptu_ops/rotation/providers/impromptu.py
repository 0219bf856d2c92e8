"""Impromptu API keys (contract §5, [ours]): a second key, then revoke the first.

- mint: ``POST /v1/agent/keys`` with ``Idempotency-Key: <rotation id>-a<attempt>``: a replay
  of the same attempt returns the same key, so an ambiguous create is settled by replaying
  it (that is this provider's read-back), never by minting a third key;
- verify: ``GET /v1/agent/heartbeat`` with the new key;
- retire: the platform has no "disabled" state, so the old key stays valid through the
  grace period and is revoked (``DELETE /v1/agent/keys/{id}``) after it;
- a platform answering 404 on the key endpoints cannot rotate: :class:`RotationUnsupported`
  carries the key's expiry (``security-status``) for the report.

Calls authenticate with the key currently in the store (old before the cut-over, new
after). Keys carry no names here: the idempotency replay is what prevents orphans, and
when the platform has forgotten a replay (a restart) :meth:`created_by` reads back the keys
only this rotation can have made (created after it started, never used) so that the
engine can revoke them; :meth:`owned` lists nothing (no key is attributable to an older
rotation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from impromptu_ops import contract
from impromptu_ops.errors import MalformedResponse, NotFoundError, OpsError, SecretNotFound
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.rotation.provider import KeyRef, NewKey, RotationUnsupported, rotation_label
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings
from impromptu_ops.store.base import SecretStore

PlatformFactory = Callable[[Secret], PlatformClient]


def rotation_started(rotation_id: str) -> datetime | None:
    """The start time written in a rotation id (``[inst.]YYYYmmddtHHMMSS-nonce``)."""
    stamp = rotation_id.rpartition(".")[2].partition("-")[0]
    try:
        return datetime.strptime(stamp, "%Y%m%dt%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        got = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return got if got.tzinfo is not None else got.replace(tzinfo=UTC)


class ImpromptuProvider:
    """Rotates ``impromptu-api-key``.

    Args:
        settings: platform settings.
        store: where the current key is read from (it authenticates key management).
    """

    name = "impromptu"
    secret = contract.IMPROMPTU_API_KEY
    idempotent_create = True

    def __init__(self, settings: PlatformSettings, store: SecretStore, *,
                 platform: PlatformFactory) -> None:
        self.store = store
        self._platform = platform

    def _current(self) -> Secret:
        try:
            return self.store.read(self.secret).value("value")
        except SecretNotFound:
            raise OpsError(f"{self.secret} is not in the store") from None

    def _unsupported(self, key: Secret) -> RotationUnsupported:
        detail = "expiry unknown"
        try:
            with self._platform(key) as client:
                days = client.security_status().days_until_key_expiry
            if days is not None:
                detail = f"the key expires in {days:g} days"
        except OpsError as exc:
            detail = f"expiry unknown ({exc.diagnostics()})"
        return RotationUnsupported(
            f"rotation not supported: the platform has no key management endpoints; {detail}",
            detail=detail)

    def identify(self, value: Secret) -> str:
        try:
            with self._platform(value) as client:
                keys = client.keys_list().keys
        except NotFoundError:
            raise self._unsupported(value) from None
        matches = [k.id for k in keys if k.id and k.prefix and k.status == "active"
                   and value.reveal().startswith(k.prefix)]
        return matches[0] if len(matches) == 1 and matches[0] else ""

    def create(self, rotation_id: str, attempt: int) -> NewKey:
        key = self._current()
        try:
            with self._platform(key) as client:
                got = client.keys_create(idempotency_key=rotation_label(rotation_id, attempt))
        except NotFoundError:
            raise self._unsupported(key) from None
        if got.api_key is None or not got.id:
            raise MalformedResponse("POST /keys: the platform answered without a key or an id")
        return NewKey(got.id, got.api_key)

    def created_by(self, rotation_id: str) -> list[KeyRef]:
        """Keys that can only be this rotation's and whose value nobody holds: active,
        created at or after the rotation started (the time in its id), and NEVER used.

        Keys carry no names here; this is the read-back for a platform that forgot an
        idempotent replay (a restart): the first key of the attempt is then not returned
        again, and would be orphaned. A key used even once, or made before the rotation
        started, is never listed (a platform clock behind ours errs on the safe side).
        """
        started = rotation_started(rotation_id)
        if started is None:
            return []
        try:
            with self._platform(self._current()) as client:
                keys = client.keys_list().keys
        except NotFoundError:
            return []
        refs = []
        for k in keys:
            created = _parse_time(k.created_at)
            if (k.id and k.status == "active" and k.last_used_at is None
                    and created is not None and created >= started):
                refs.append(KeyRef(k.id, rotation_label(rotation_id, 0)))
        return refs

    def owned(self) -> list[KeyRef]:
        return []

    def verify(self, value: Secret) -> None:
        with self._platform(value) as client:
            client.heartbeat()  # AuthError (401) when the key does not work

    def activate(self, value: Secret) -> None:
        """Nothing holds a copy: the agent reads its key from the store."""

    def disable(self, key_id: str) -> None:
        """No disabled state on the platform: the old key lives until revoked."""

    def enable(self, key_id: str) -> None:
        """See :meth:`disable`."""

    def delete(self, key_id: str) -> None:
        # NotFound: already revoked or gone, which is the goal
        with self._platform(self._current()) as client, contextlib.suppress(NotFoundError):
            client.keys_revoke(key_id)

    def close(self) -> None:
        """Nothing is kept open between calls."""
