"""The :class:`SecretStore` protocol: what every backend must honour.

Semantics follow Vault KV v2 so that the local encrypted store and OpenBao are
interchangeable and pass one contract test suite:

- every write creates a new version (1, 2, 3...); reads return the newest live version
  unless a version is named;
- writes are check-and-set: ``cas=0`` means "only if absent", ``cas=N`` means "only if the
  current version is N"; a lost race raises :class:`~impromptu_ops.errors.CasConflict`;
- ``delete`` soft-deletes versions (restorable with ``undelete``); ``rollback`` writes an
  older version's value again as a new version;
- values are ``Mapping[str, Secret]`` so that nothing leaks through ``repr``; metadata
  (``custom``) holds non-secret strings only (rotation records, labels).

Names are the canonical names of :data:`impromptu_ops.contract.SECRET_NAMES` or a
namespaced internal name (``_rotation/openrouter``); backends reject path tricks.

Version pruning: a secret keeps at most ``max_versions`` versions. A write that would push
out the newest readable ("good") version is refused with :class:`VersionPruningRefused`
instead of destroying it (see :func:`pruning_refusal`, shared by both backends).

This module owns the protocol, the value types and the pure rules both backends share;
it does no I/O.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from impromptu_ops.errors import InputError, StoreError
from impromptu_ops.secret import Secret

DATA_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NAME_RE = re.compile(r"^_?[a-z0-9][a-z0-9-]{0,62}(/[a-z0-9][a-z0-9-]{0,62}){0,2}$")


def check_name(name: str) -> str:
    """Validate a secret name; raise :class:`InputError` for anything path-like or odd."""
    if not NAME_RE.match(name):
        raise InputError(
            f"invalid secret name {name[:40]!r}: use lower-case letters, digits and dashes"
        )
    return name


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_time: datetime
    deleted: bool = False
    destroyed: bool = False


@dataclass(frozen=True)
class SecretMetadata:
    name: str
    current_version: int
    oldest_version: int
    max_versions: int  # 0 = unlimited (backend default)
    created_time: datetime
    updated_time: datetime
    versions: tuple[VersionInfo, ...] = ()
    custom: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SecretVersion:
    """One version's data. ``data`` values are :class:`Secret`; ``repr`` is safe."""

    name: str
    version: int
    data: Mapping[str, Secret]
    created_time: datetime

    def value(self, key: str = "value") -> Secret:
        return self.data[key]


def check_data(name: str, data: Mapping[str, Secret]) -> Mapping[str, Secret]:
    """Validate a value map before it is written: non-empty, plain keys, Secret values."""
    if not data:
        raise InputError(f"refusing to write an empty value to {name}")
    for key, value in data.items():
        if not isinstance(key, str) or not DATA_KEY_RE.match(key):
            raise InputError(f"secret {name}: invalid data key {str(key)[:40]!r}")
        if not isinstance(value, Secret):
            raise TypeError(f"secret {name}: values must be Secret, not {type(value).__name__}")
    return data


@dataclass(frozen=True)
class StoreStatus:
    """What :meth:`SecretStore.check` found.

    Attributes:
        summary: one line for a person (backend, location, state; never a value).
        token_ttl: seconds left on the store's own credential (a Vault token), after any
            renewal the check did; None when it never expires or the store uses none.
    """

    summary: str
    token_ttl: int | None = None

    def __str__(self) -> str:
        return self.summary


class VersionPruningRefused(StoreError):
    """A write would destroy the previous good version (``max_versions`` too small)."""


def pruning_refusal(
    current_version: int,
    versions: Mapping[int, VersionInfo],
    max_versions: int,
    keep_good: int = 2,
) -> str | None:
    """Decide whether writing version ``current_version + 1`` is safe. Pure.

    After the write the backend keeps only versions newer than ``new - max_versions``.
    The write is refused when that would destroy any of the ``keep_good - 1`` newest
    readable (not deleted, not destroyed) versions: the version you would roll back to.

    Args:
        current_version: the newest version number (0 when the secret has none).
        versions: the versions the backend still holds.
        max_versions: the effective limit (``<= 0`` means unlimited).
        keep_good: how many good versions must survive, counting the new one.

    Returns:
        ``None`` when the write is safe, else a one-line reason.
    """
    if max_versions <= 0:
        return None
    new = current_version + 1
    good = sorted((v for v, info in versions.items() if not info.deleted and not info.destroyed),
                  reverse=True)[: max(keep_good - 1, 0)]
    lost = [v for v in good if v <= new - max_versions]
    if lost:
        return (f"writing version {new} with max_versions={max_versions} would destroy good "
                f"version {lost[0]}")
    return None


@runtime_checkable
class SecretStore(Protocol):
    """A versioned, check-and-set secret store."""

    @property
    def description(self) -> str:
        """Where secrets go, for messages: ``vault http://...:8200 secret/impromptu/a1``."""
        ...

    def read(self, name: str, version: int | None = None) -> SecretVersion:
        """Raises SecretNotFound."""
        ...

    def write(self, name: str, data: Mapping[str, Secret], cas: int | None) -> int:
        """Write a new version; ``cas`` as in Vault (None only for first-ever writes when the
        backend allows it). Returns the new version number. Raises CasConflict."""
        ...

    def metadata(self, name: str) -> SecretMetadata:
        """Raises SecretNotFound."""
        ...

    def set_custom_metadata(self, name: str, custom: Mapping[str, str]) -> None:
        """Replace the custom metadata of ``name`` without touching any other field."""
        ...

    def list(self, prefix: str = "") -> builtins.list[str]:
        ...

    def delete(self, name: str, versions: builtins.list[int] | None = None) -> None:
        """Soft-delete the given versions (default: the current one)."""
        ...

    def undelete(self, name: str, versions: builtins.list[int]) -> None:
        ...

    def set_max_versions(self, name: str, max_versions: int) -> None:
        """Set how many versions ``name`` keeps (0 = backend default); other fields untouched."""
        ...

    def rollback(self, name: str, version: int) -> int:
        """Write version ``version``'s data again as the newest version (CAS on current)."""
        ...

    def check(self) -> StoreStatus:
        """Reachability / seal / token check; returns a :class:`StoreStatus`, raises
        StoreError."""
        ...
