"""Private: The seam between the rotation engine and a key provider (OpenRouter, Impromptu,
AppRole).

A provider knows how to mint, check, hand over, disable and delete ONE kind of key. It
knows nothing of records, steps, the store or grace periods: the engine owns those. Every
method must be safe to call again after a crash (idempotent), except :meth:`create`, whose
ambiguity the engine resolves by reading back (:meth:`created_by`) or, for providers with
``idempotent_create``, by replaying the same call.

Errors: providers raise the library's own errors. The engine treats them as:

- :class:`~impromptu_ops.errors.AuthError` from :meth:`verify`: the key definitively does
  not work;
- :class:`~impromptu_ops.errors.TransportError`, :class:`~impromptu_ops.errors.ServerError`,
  :class:`~impromptu_ops.errors.RateLimited`: the outcome is unknown; read back, never
  blindly retry a create;
- :class:`RotationUnsupported`: the provider cannot rotate (the platform answers 404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from impromptu_ops.errors import OpsError
from impromptu_ops.secret import Secret

# Every key a rotation mints is named (or tagged) with this prefix plus the rotation id, so
# that keys which never reached the store can be found again and disabled.
ROTATION_TAG = "impromptu-ops-rotation-"


def rotation_label(rotation_id: str, attempt: int) -> str:
    """The name given to the key minted by ``attempt`` of ``rotation_id``."""
    return f"{ROTATION_TAG}{rotation_id}-a{attempt}"


def rotation_scope(rotation_id: str) -> str | None:
    """The installation a rotation id belongs to (``None`` for an id without one).

    Ids are ``<installation>.<time>-<nonce>``; the installation id lives in the store, so
    two agents (two stores) sharing one provider account never take each other's
    rotation-named keys for their own orphans.
    """
    scope, dot, rest = rotation_id.partition(".")
    return scope if dot and rest and len(scope) == 8 and all(
        c in "0123456789abcdef" for c in scope) else None


def label_rotation(label: str) -> str | None:
    """The rotation id in a label made by :func:`rotation_label` (``None`` otherwise)."""
    if not label.startswith(ROTATION_TAG):
        return None
    rest = label[len(ROTATION_TAG):]
    rid, sep, att = rest.rpartition("-a")
    return rid if sep and att.isdigit() and rid else None


class RotationUnsupported(OpsError):
    """The provider cannot rotate this key (e.g. the platform has no key endpoints).

    ``detail`` carries what is known instead (the key's expiry), for the report.
    """

    exit_code = 0

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True)
class NewKey:
    """A freshly minted key: its value is shown once and must reach the store at once."""

    key_id: str
    value: Secret


@dataclass(frozen=True)
class KeyRef:
    """A key as the provider lists it (never with a value)."""

    key_id: str
    label: str = ""
    disabled: bool = False


class Provider(Protocol):
    """One kind of rotatable key."""

    name: str  # "openrouter" | "impromptu" | "vault-secret-id"
    secret: str  # the canonical store name: "openrouter-api-key"...
    idempotent_create: bool  # True: replaying create(rid, attempt) returns the same key

    def identify(self, value: Secret) -> str:
        """The provider id of an existing key value ("" when it cannot be found)."""
        ...

    def create(self, rotation_id: str, attempt: int) -> NewKey:
        """Mint a new key labelled :func:`rotation_label` ``(rotation_id, attempt)``."""
        ...

    def created_by(self, rotation_id: str) -> list[KeyRef]:
        """Live keys labelled with ``rotation_id`` (any attempt): the read-back of create."""
        ...

    def owned(self) -> list[KeyRef]:
        """Live keys labelled by any rotation: candidates for the orphan sweep."""
        ...

    def verify(self, value: Secret) -> None:
        """Make a real authenticated call with ``value``; AuthError if it does not work."""
        ...

    def activate(self, value: Secret) -> None:
        """Hand ``value`` to the consumers that hold a copy (BYOK); check it took. Idempotent."""
        ...

    def disable(self, key_id: str) -> None:
        """Disable (not delete) a key; a no-op where the provider has no such state."""
        ...

    def enable(self, key_id: str) -> None:
        """Undo :meth:`disable` (rollback)."""
        ...

    def delete(self, key_id: str) -> None:
        """Delete or revoke a key for good; a key already gone is success."""
        ...

    def close(self) -> None:
        """Release connections (called once the run is over)."""
        ...
