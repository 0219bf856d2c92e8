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
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from impromptu_ops.errors import InputError
from impromptu_ops.secret import Secret

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

    def rollback(self, name: str, version: int) -> int:
        """Write version ``version``'s data again as the newest version (CAS on current)."""
        ...

    def check(self) -> str:
        """Reachability / seal / token check; returns a short status, raises StoreError."""
        ...
