"""Private: The write-ahead rotation record: steps, the record value, and its CAS home in the store.

A rotation is a sequence of named steps. The record names the LAST COMPLETED step, and it
is written (check-and-set) BEFORE the next provider call, so a process killed at any
instant leaves a record from which :mod:`impromptu_ops.rotation.engine` can continue or
roll back. The record never holds a secret value: only the rotation id, the step, provider
key ids and short fingerprints (truncated SHA-256) of key values.

Where things live in the store (for a provider whose canonical secret is ``NAME``):

- ``NAME``            the *current* key (newest version) — what the agent uses;
                      the version before it is the *previous* key (KV keeps versions);
- ``_pending/NAME``   the *pending* key, stored BEFORE any cut-over (its value was shown once);
- ``_rotation/PROV``  this record; every write is CAS on its version, which is what makes
                      two rotations on two machines exclusive (a local lock alone is not);
- ``_rotation/installation``  this store's id (8 hex), the first part of every rotation
                      id, so that rotation-named keys of ANOTHER installation sharing the
                      provider account are never taken for this one's orphans.

This module owns the record's shape and its (de)serialisation, and the CAS reads/writes;
it does not call providers and does not decide what to do next (see ``engine``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from impromptu_ops.errors import CasConflict, IntegrityError, SecretNotFound
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore

SCHEMA = 1
RECORD_PREFIX = "_rotation/"
INSTALLATION = "installation"  # _rotation/installation: scopes rotation ids (not a provider)
PENDING_PREFIX = "_pending/"
META_FIELD = "meta"  # a JSON blob of non-secret facts beside "value" in key secrets
VALUE_FIELD = "value"


class PublicValue(Secret):
    """A NON-secret string carried through the store's ``Secret``-typed API.

    Records and key metadata hold only ids and fingerprints. Registering them with the
    redactor (as :class:`Secret` does) would grow its pattern with every record write and
    mask ids in the audit trail, so this subclass skips the registration; it is still
    masked in ``repr`` like any Secret.
    """

    __slots__ = ()

    def __init__(self, value: str, name: str = "") -> None:
        if not isinstance(value, str):
            raise TypeError("value must be str")
        self._value = value
        self._name = name


class Step(StrEnum):
    """Step boundaries, in order. The record holds the last one completed."""

    INTENT = "intent"  # rotation id and old key recorded; nothing created yet
    STORED = "stored"  # new key created AND stored under _pending/NAME
    VERIFIED = "verified"  # new key answered a real authenticated call
    ACTIVATED = "activated"  # consumers (the platform's BYOK store) hold the new key
    PROMOTED = "promoted"  # NAME's newest version is the new key (old = previous version);
    #                        the old key KEEPS WORKING until ``grace_until`` (its retirement
    #                        is pending) so that consumers holding a copy can reload
    RETIRING = "retiring"  # the grace period is over and the old key's retirement began:
    #                        written BEFORE its disable/delete call, so from here on the old
    #                        key may be revoked at any instant and is never restored
    OLD_DISABLED = "old-disabled"  # old key disabled (the provider confirmed it)
    OLD_DELETED = "old-deleted"  # old key deleted / revoked (the provider confirmed it)
    DONE = "done"  # pending copy removed, orphans swept


ORDER: tuple[Step, ...] = tuple(Step)


def next_step(step: Step) -> Step | None:
    """The step after ``step`` (``None`` after DONE)."""
    i = ORDER.index(step)
    return ORDER[i + 1] if i + 1 < len(ORDER) else None


def at_least(step: Step, other: Step) -> bool:
    return ORDER.index(step) >= ORDER.index(other)


class State(StrEnum):
    RUNNING = "running"  # forward (or resumable) rotation in progress
    ROLLING_BACK = "rolling-back"
    DONE = "done"
    ROLLED_BACK = "rolled-back"


def fingerprint(value: Secret) -> str:
    """A short, non-reversible id of a key value (16 hex chars of SHA-256)."""
    return hashlib.sha256(value.reveal().encode()).hexdigest()[:16]


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class KeyInfo:
    """What the record knows about one key: never its value."""

    key_id: str = ""  # provider id (OpenRouter hash, Impromptu key id, Vault accessor)
    fingerprint: str = ""
    version: int = 0  # its version in the store (canonical or pending secret)


@dataclass(frozen=True)
class RotationRecord:
    """One rotation's write-ahead record (stored as JSON, CAS-versioned)."""

    provider: str
    secret: str
    rotation_id: str
    step: Step
    state: State
    owner: str
    started: str
    updated: str
    attempt: int = 0
    old: KeyInfo = field(default_factory=KeyInfo)
    new: KeyInfo = field(default_factory=KeyInfo)
    grace_seconds: float = 0.0
    grace_until: str = ""  # set at PROMOTED: when the old key's retirement is due
    error: str = ""
    note: str = ""
    on_rotate: str = ""  # the reload hook's command line (run after promotion), or ""
    on_rotate_timeout: float = 0.0
    hook: str = ""  # "" (not run yet), "ok", or "failed: ..." (never re-run once recorded)

    @property
    def active(self) -> bool:
        return self.state in (State.RUNNING, State.ROLLING_BACK)

    @property
    def retirement_pending(self) -> bool:
        """Promoted, the old key still working, its retirement not begun yet."""
        return self.state == State.RUNNING and self.step == Step.PROMOTED

    def retire_due(self, now: datetime) -> bool:
        """Is the old key's grace period over (a record without a due time: at once)?"""
        return not self.grace_until or now >= parse_iso(self.grace_until)

    def evolve(self, **changes: Any) -> RotationRecord:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        body = dataclasses.asdict(self)
        body["schema"] = SCHEMA
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RotationRecord:
        """Parse a stored record; anything odd is an :class:`IntegrityError`."""
        try:
            raw = json.loads(text)
            if not isinstance(raw, dict) or raw.pop("schema", None) != SCHEMA:
                raise ValueError("unknown schema")
            raw["step"] = Step(raw["step"])
            raw["state"] = State(raw["state"])
            raw["old"] = KeyInfo(**raw.get("old", {}))
            raw["new"] = KeyInfo(**raw.get("new", {}))
            return cls(**raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise IntegrityError(f"rotation record is unreadable: {exc}") from None


class RecordStore:
    """CAS reads and writes of rotation records, pending keys and key metadata."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    # -- the record ------------------------------------------------------------------------
    @staticmethod
    def record_name(provider: str) -> str:
        return RECORD_PREFIX + provider

    def load(self, provider: str) -> tuple[RotationRecord | None, int]:
        """The record and its store version (``(None, v)`` when absent or deleted)."""
        name = self.record_name(provider)
        try:
            version = self.store.metadata(name).current_version
        except SecretNotFound:
            return None, 0
        try:
            got = self.store.read(name)
        except SecretNotFound:
            return None, version
        return RotationRecord.from_json(got.value(VALUE_FIELD).reveal()), got.version

    def save(self, record: RotationRecord, cas: int) -> int:
        """Write ``record`` only if the stored version is still ``cas``; return the new one.

        Raises:
            CasConflict: another process wrote first (it owns the rotation now).
        """
        return self.store.write(
            self.record_name(record.provider),
            {VALUE_FIELD: PublicValue(record.to_json(), "rotation-record")},
            cas=cas,
        )

    def installation(self) -> str:
        """This store's installation id (8 hex chars), created on first use (CAS).

        It scopes rotation ids, so rotation-named keys of another installation that shares
        the provider account are never swept as orphans of this one.
        """
        # Stored as a JSON document, like the records: a store hands values back as
        # Secrets, and a bare 8-character id registered with the redactor would mask
        # every rotation id in the audit trail and in `rotate status`.
        name = RECORD_PREFIX + INSTALLATION
        for _ in range(3):
            try:
                text = self.store.read(name).value(VALUE_FIELD).reveal()
            except SecretNotFound:
                doc = json.dumps({"installation": secrets.token_hex(4), "schema": SCHEMA})
                with contextlib.suppress(CasConflict):  # another run made it first: use theirs
                    self.store.write(name, {VALUE_FIELD: PublicValue(doc, "installation")},
                                     cas=self.current_version(name))
                continue
            try:
                value = json.loads(text).get("installation", "")
            except (ValueError, AttributeError):
                value = ""
            if isinstance(value, str) and len(value) == 8 and all(
                    c in "0123456789abcdef" for c in value):
                return value
            raise IntegrityError(f"{name} holds no installation id")
        raise IntegrityError(f"{name} could not be created")

    # -- key secrets (canonical and pending) -------------------------------------------
    def read_key(self, name: str, version: int | None = None) -> tuple[Secret, dict[str, str], int]:
        """``(value, meta, version)`` of a key secret. Raises SecretNotFound."""
        got = self.store.read(name, version)
        meta: dict[str, str] = {}
        if META_FIELD in got.data:
            try:
                loaded = json.loads(got.data[META_FIELD].reveal())
                if isinstance(loaded, dict):
                    meta = {str(k): str(v) for k, v in loaded.items()}
            except ValueError:
                meta = {}
        return got.value(VALUE_FIELD), meta, got.version

    def current_version(self, name: str) -> int:
        """The newest version number of ``name`` (0 when it never existed)."""
        try:
            return self.store.metadata(name).current_version
        except SecretNotFound:
            return 0

    def write_key(self, name: str, value: Secret, meta: Mapping[str, str], cas: int) -> int:
        blob = PublicValue(json.dumps(dict(meta), sort_keys=True), f"{name}-meta")
        return self.store.write(name, {VALUE_FIELD: value, META_FIELD: blob}, cas=cas)

    def delete_pending(self, secret: str) -> None:
        name = PENDING_PREFIX + secret
        try:
            self.store.read(name)
        except SecretNotFound:
            return
        self.store.delete(name)
