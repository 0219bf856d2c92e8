"""In-memory doubles for the rotation state machine's exhaustive tests.

A :class:`World` holds a KV-v2-like store and a key provider that share one event counter.
A test plans, per event number, a crash (``SimulatedCrash``, a BaseException that no
``except OpsError`` can swallow, like SIGKILL) or a timeout, either BEFORE the effect (the
request was lost) or AFTER it (the response was lost: the nastiest case). After every
effect the world checks the invariant the issue demands: the key in the store's canonical
secret works, and so does the copy the platform holds (BYOK).
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from impromptu_ops.errors import (
    AuthError,
    CasConflict,
    SecretNotFound,
    StoreUnavailable,
    TransportError,
)
from impromptu_ops.rotation.provider import KeyRef, NewKey, label_rotation, rotation_label
from impromptu_ops.secret import REDACTOR, Secret
from impromptu_ops.store.base import SecretMetadata, SecretVersion, StoreStatus, VersionInfo

T = TypeVar("T")
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class SimulatedCrash(BaseException):
    """The process died here (as with SIGKILL): no handler may swallow it."""


class InvariantBroken(BaseException):
    """The agent was left without a working key: the test fails at the exact event."""


@dataclass
class FakeKey:
    key_id: str
    value: str
    label: str
    disabled: bool = False
    deleted: bool = False

    @property
    def works(self) -> bool:
        return not self.disabled and not self.deleted


@dataclass
class World:
    """Store + provider + fault plan. ``plan[n]`` is one of ``crash-before``, ``crash-after``,
    ``timeout-before``, ``timeout-after`` for event number ``n`` (1-based), or
    ``outage-before`` / ``outage-after``: that timeout, then the next ``outage_calls`` store
    calls fail too (a leader election)."""

    secret: str = "openrouter-api-key"
    plan: dict[int, str] = field(default_factory=dict)
    events: int = 0
    log: list[str] = field(default_factory=list)
    versions: dict[str, list[tuple[dict[str, str], bool]]] = field(default_factory=dict)
    keys: dict[str, FakeKey] = field(default_factory=dict)
    byok: str | None = None
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    idem: dict[tuple[str, int], NewKey] = field(default_factory=dict)
    checking: bool = True
    outage: int = 0  # the next this many store calls fail (set by an "outage-*" plan entry)
    outage_calls: int = 3

    # -- the fault plan ------------------------------------------------------------------
    def op(self, name: str, effect: Callable[[], T], *, store: bool = False) -> T:
        self.events += 1
        self.log.append(name)
        if store and self.outage > 0:  # the store is down: nothing reaches it
            self.outage -= 1
            raise StoreUnavailable(f"store down at {name}")
        action = self.plan.get(self.events, "")
        if action.startswith("outage-"):  # a timeout, then the store stays down a while
            self.outage = self.outage_calls
            action = action.replace("outage-", "timeout-")
        timeout: Exception = (StoreUnavailable(f"timeout at {name}") if store
                              else TransportError(f"timeout at {name}"))
        if action == "crash-before":
            raise SimulatedCrash(name)
        if action == "timeout-before":
            raise timeout
        result = effect()
        self.check()
        if action == "crash-after":
            raise SimulatedCrash(name)
        if action == "timeout-after":
            raise timeout
        return result

    def check(self) -> None:
        if not self.checking:
            return
        value = self.canonical()
        if value is None or not self.works(value):
            raise InvariantBroken(f"canonical key does not work after event {self.events}")
        if self.byok is not None and not self.works(self.byok):
            raise InvariantBroken(f"BYOK key does not work after event {self.events}")

    # -- provider side ---------------------------------------------------------------------
    def mint(self, label: str) -> FakeKey:
        n = next(self.ids)
        key = FakeKey(f"k{n:03d}", f"sk-or-v1-{n:040d}", label)
        self.keys[key.key_id] = key
        return key

    def works(self, value: str) -> bool:
        return any(k.value == value and k.works for k in self.keys.values())

    def live(self) -> set[str]:
        return {k.key_id for k in self.keys.values() if not k.deleted}

    # -- store side -------------------------------------------------------------------------
    def canonical(self) -> str | None:
        got = self.versions.get(self.secret)
        if not got or got[-1][1]:
            return None
        return got[-1][0]["value"]


class MemoryStore:
    """A KV-v2-shaped store (versions, CAS, soft delete) whose every call is a world event."""

    def __init__(self, world: World) -> None:
        self.w = world

    @property
    def description(self) -> str:
        return "memory"

    def read(self, name: str, version: int | None = None) -> SecretVersion:
        def effect() -> SecretVersion:
            vs = self.w.versions.get(name)
            if not vs:
                raise SecretNotFound(name)
            n = version or len(vs)
            if n > len(vs) or vs[n - 1][1]:
                raise SecretNotFound(name)
            data = {k: Secret(v) for k, v in vs[n - 1][0].items()}
            return SecretVersion(name, n, data, EPOCH)
        return self.w.op(f"read {name}", effect, store=True)

    def write(self, name: str, data: Mapping[str, Secret], cas: int | None) -> int:
        def effect() -> int:
            vs = self.w.versions.setdefault(name, [])
            if cas is not None and cas != len(vs):
                raise CasConflict(f"{name}: cas {cas} != {len(vs)}")
            vs.append(({k: v.reveal() for k, v in data.items()}, False))
            return len(vs)
        return self.w.op(f"write {name}", effect, store=True)

    def metadata(self, name: str) -> SecretMetadata:
        def effect() -> SecretMetadata:
            vs = self.w.versions.get(name)
            if not vs:
                raise SecretNotFound(name)
            infos = tuple(VersionInfo(i + 1, EPOCH, d) for i, (_, d) in enumerate(vs))
            return SecretMetadata(name, len(vs), 1, 0, EPOCH, EPOCH, infos)
        return self.w.op(f"metadata {name}", effect, store=True)

    def set_custom_metadata(self, name: str, custom: Mapping[str, str]) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> builtins.list[str]:
        return sorted(n for n in self.w.versions if n.startswith(prefix))

    def delete(self, name: str, versions: builtins.list[int] | None = None) -> None:
        def effect() -> None:
            vs = self.w.versions.get(name)
            if not vs:
                raise SecretNotFound(name)
            data, _ = vs[-1]
            vs[-1] = (data, True)
        self.w.op(f"delete {name}", effect, store=True)

    def undelete(self, name: str, versions: builtins.list[int]) -> None:
        raise NotImplementedError

    def set_max_versions(self, name: str, max_versions: int) -> None:
        raise NotImplementedError

    def rollback(self, name: str, version: int) -> int:
        raise NotImplementedError

    def check(self) -> StoreStatus:
        return StoreStatus("ok")


class FakeProvider:
    """An OpenRouter-shaped provider (labels, disable, delete, a BYOK copy) in the world."""

    name = "openrouter"
    secret = "openrouter-api-key"

    def __init__(self, world: World, *, idempotent_create: bool = False) -> None:
        self.w = world
        self.idempotent_create = idempotent_create

    def identify(self, value: Secret) -> str:
        def effect() -> str:
            for k in self.w.keys.values():
                if k.value == value.reveal() and not k.deleted:
                    return k.key_id
            return ""
        return self.w.op("identify", effect)

    def create(self, rotation_id: str, attempt: int) -> NewKey:
        def effect() -> NewKey:
            if self.idempotent_create and (rotation_id, attempt) in self.w.idem:
                return self.w.idem[(rotation_id, attempt)]
            k = self.w.mint(rotation_label(rotation_id, attempt))
            new = NewKey(k.key_id, Secret(k.value))
            self.w.idem[(rotation_id, attempt)] = new
            return new
        return self.w.op("create", effect)

    def created_by(self, rotation_id: str) -> list[KeyRef]:
        if self.idempotent_create:
            return []  # like Impromptu's keys: no names to find them by

        def effect() -> list[KeyRef]:
            return [KeyRef(k.key_id, k.label, k.disabled) for k in self.w.keys.values()
                    if not k.deleted and label_rotation(k.label) == rotation_id]
        return self.w.op("created_by", effect)

    def owned(self) -> list[KeyRef]:
        if self.idempotent_create:
            return []

        def effect() -> list[KeyRef]:
            return [KeyRef(k.key_id, k.label, k.disabled) for k in self.w.keys.values()
                    if not k.deleted and label_rotation(k.label) is not None]
        return self.w.op("owned", effect)

    def verify(self, value: Secret) -> None:
        def effect() -> None:
            if not self.w.works(value.reveal()):
                raise AuthError("key refused", code="UNAUTHORIZED", status=401)
        self.w.op("verify", effect)

    def activate(self, value: Secret) -> None:
        def effect() -> None:
            if not self.w.works(value.reveal()):
                raise AuthError("BYOK refused the key", code="UNAUTHORIZED", status=401)
            self.w.byok = value.reveal()
        self.w.op("activate", effect)

    def _set(self, key_id: str, **changes: Any) -> None:
        k = self.w.keys.get(key_id)
        if k is not None and not k.deleted:
            for attr, val in changes.items():
                setattr(k, attr, val)

    def disable(self, key_id: str) -> None:
        self.w.op(f"disable {key_id}", lambda: self._set(key_id, disabled=True))

    def enable(self, key_id: str) -> None:
        self.w.op(f"enable {key_id}", lambda: self._set(key_id, disabled=False))

    def delete(self, key_id: str) -> None:
        self.w.op(f"delete {key_id}", lambda: self._set(key_id, deleted=True))

    def close(self) -> None:
        self.closed = getattr(self, "closed", 0) + 1


def forget_test_secrets() -> None:
    """Reset the process redactor: thousands of fake keys across Hypothesis examples would
    otherwise make every redaction (one per audit line) scan a huge pattern."""
    with REDACTOR._lock:
        REDACTOR._values.clear()
        REDACTOR._pattern = None


def seeded_world(plan: dict[int, str] | None = None) -> World:
    """A world whose store holds one working, pre-rotation key (no label: registration's)."""
    forget_test_secrets()
    w = World(plan=dict(plan or {}))
    k = w.mint("registered-by-hand")
    w.versions[w.secret] = [({"value": k.value}, False)]
    w.byok = k.value
    return w
