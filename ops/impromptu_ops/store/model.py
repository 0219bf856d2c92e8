"""Private: KV v2 semantics over a plain JSON document: the pure core of the local store.

:class:`KvDocument` holds the decrypted body of the local store and implements exactly
the behaviour the Vault backend gets from the server: version numbers, check-and-set,
``max_versions`` pruning (oldest first) with the shared refusal rule, soft delete and
undelete, custom metadata. It takes values and a clock reading and returns values; it does
no I/O, so the outer :class:`~impromptu_ops.store.local.LocalStore` only loads, locks and
saves.

Body layout (JSON)::

    {"format": 1, "generation": 7, "secrets": {"<name>": {
        "current": 3, "oldest": 2, "max_versions": 10, "created": iso, "updated": iso,
        "custom": {...}, "versions": {"3": {"created": iso, "deleted": iso | "",
                                             "destroyed": false, "data": {"value": "..."}}}}}}

``generation`` counts the saves of the file (absent in stores written before it existed:
0). It lives inside the authenticated body, so only the key holder can raise it; the outer
store compares it with a counter kept beside the key to notice an older copy put back.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from impromptu_ops.errors import CasConflict, SecretNotFound, TamperedStore
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import (
    SecretMetadata,
    SecretVersion,
    VersionInfo,
    VersionPruningRefused,
    check_data,
    check_name,
    pruning_refusal,
)

BODY_FORMAT = 1


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


class KvDocument:
    """The decrypted store body with KV v2 operations.

    Args:
        body: the parsed JSON body, or ``None`` for a new, empty store.
        default_max_versions: ``max_versions`` for secrets that do not set their own.
        keep_good: see :func:`~impromptu_ops.store.base.pruning_refusal`.
    """

    def __init__(self, body: Mapping[str, Any] | None, default_max_versions: int,
                 keep_good: int) -> None:
        self.default_max_versions = default_max_versions
        self.keep_good = keep_good
        if body is None:
            self.doc: dict[str, Any] = {"format": BODY_FORMAT, "secrets": {}}
            return
        if not isinstance(body, dict) or body.get("format") != BODY_FORMAT \
                or not isinstance(body.get("secrets"), dict):
            raise TamperedStore("the local store body has an unknown layout")
        self.doc = body
        _ = self.generation  # a malformed counter is refused on load, not on first save

    @property
    def generation(self) -> int:
        """How many times this body was saved (0 for a new store or an older format)."""
        value = self.doc.get("generation", 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise TamperedStore("the local store body has a bad generation counter")
        return value

    def next_generation(self) -> int:
        """Count one more save; returns the new generation."""
        self.doc["generation"] = self.generation + 1
        return self.generation

    @classmethod
    def from_bytes(cls, raw: bytes, default_max_versions: int, keep_good: int) -> KvDocument:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise TamperedStore("the local store body is not valid JSON") from None
        return cls(body, default_max_versions, keep_good)

    def to_bytes(self) -> bytes:
        return json.dumps(self.doc, sort_keys=True, separators=(",", ":")).encode()

    # -- reads ---------------------------------------------------------------------------
    def _entry(self, name: str) -> dict[str, Any]:
        entry = self.doc["secrets"].get(check_name(name))
        if entry is None:
            raise SecretNotFound(f"no secret named {name} in the local store")
        if not isinstance(entry, dict):
            raise TamperedStore(f"the local store entry for {name} is malformed")
        return entry

    def read(self, name: str, version: int | None = None) -> SecretVersion:
        try:
            entry = self._entry(name)
            number = entry["current"] if version is None else version
            rec = entry["versions"].get(str(number))
            if rec is None:
                raise SecretNotFound(f"secret {name} has no version {number} (pruned or never "
                                     "written)")
            if rec["destroyed"] or rec["deleted"]:
                state = "destroyed" if rec["destroyed"] else "deleted"
                raise SecretNotFound(f"version {number} of {name} is {state}",
                                     hint="undelete it or roll back to an older version")
            data = {k: Secret(v, name) for k, v in rec["data"].items()}
            return SecretVersion(name, int(number), data, _ts(rec["created"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TamperedStore(f"the local store entry for {name} is malformed") from None

    def metadata(self, name: str) -> SecretMetadata:
        try:
            entry = self._entry(name)
            infos = tuple(
                VersionInfo(int(v), _ts(rec["created"]), bool(rec["deleted"]),
                            bool(rec["destroyed"]))
                for v, rec in sorted(entry["versions"].items(), key=lambda kv: int(kv[0]))
            )
            return SecretMetadata(
                name=name,
                current_version=int(entry["current"]),
                oldest_version=int(entry["oldest"]),
                max_versions=int(entry["max_versions"]),
                created_time=_ts(entry["created"]),
                updated_time=_ts(entry["updated"]),
                versions=infos,
                custom=dict(entry["custom"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TamperedStore(f"the local store entry for {name} is malformed") from None

    def list(self, prefix: str = "") -> builtins.list[str]:
        return sorted(n for n in self.doc["secrets"] if n.startswith(prefix))

    # -- writes (mutate self.doc; the caller saves) ---------------------------------------
    def write(self, name: str, data: Mapping[str, Secret], cas: int | None,
              now: datetime) -> int:
        check_name(name)
        check_data(name, data)
        expected = 0 if cas is None else cas
        secrets = self.doc["secrets"]
        entry = secrets.get(name)
        current = int(entry["current"]) if entry else 0
        if expected != current:
            raise CasConflict(
                f"{name} is at version {current}, not {expected}: someone else wrote first",
                hint="read it again and retry",
            )
        stamp = now.isoformat()
        if entry is None:
            # Recorded on creation, as the Vault backend does: later changes of the default
            # do not silently change what an existing secret keeps.
            entry = {"current": 0, "oldest": 0, "max_versions": self.default_max_versions,
                     "created": stamp,
                     "updated": stamp, "custom": {}, "versions": {}}
        limit = int(entry["max_versions"]) or self.default_max_versions
        infos = {int(v): VersionInfo(int(v), _ts(r["created"]), bool(r["deleted"]),
                                     bool(r["destroyed"]))
                 for v, r in entry["versions"].items()}
        reason = pruning_refusal(current, infos, limit, self.keep_good)
        if reason:
            raise VersionPruningRefused(
                f"{name}: {reason}", hint="raise max_versions or undelete a newer version")
        new = current + 1
        entry["versions"][str(new)] = {
            "created": stamp, "deleted": "", "destroyed": False,
            "data": {k: v.reveal() for k, v in data.items()},
        }
        entry["current"] = new
        entry["updated"] = stamp
        if limit > 0:
            for v in [v for v in infos if v <= new - limit]:
                del entry["versions"][str(v)]
        entry["oldest"] = min(int(v) for v in entry["versions"])
        secrets[name] = entry
        return new

    def set_custom(self, name: str, custom: Mapping[str, str], now: datetime) -> None:
        entry = self._entry(name)
        for key, value in custom.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("custom metadata keys and values must be str")
        entry["custom"] = dict(custom)
        entry["updated"] = now.isoformat()

    def set_max_versions(self, name: str, max_versions: int, now: datetime) -> None:
        if max_versions < 0:
            raise ValueError("max_versions must not be negative")
        entry = self._entry(name)
        entry["max_versions"] = max_versions
        entry["updated"] = now.isoformat()

    def _versions_for(self, name: str, versions: builtins.list[int] | None) -> builtins.list[
            dict[str, Any]]:
        entry = self._entry(name)
        wanted = [int(entry["current"])] if versions is None else versions
        return [rec for v in wanted if (rec := entry["versions"].get(str(v))) is not None]

    def delete(self, name: str, versions: builtins.list[int] | None, now: datetime) -> None:
        for rec in self._versions_for(name, versions):
            if not rec["deleted"]:
                rec["deleted"] = now.isoformat()

    def undelete(self, name: str, versions: builtins.list[int]) -> None:
        for rec in self._versions_for(name, versions):
            rec["deleted"] = ""
