"""Private: the state one rotation run carries, and the small acts every step is built from.

:class:`RunState` holds the injected provider, store, audit log, clock and test hooks, and
the record as this run last wrote it. Its methods are the bricks of the steps: save the
record (compare-and-set), advance a step (save, audit, reach the boundary), read and
write key secrets (a brief store outage is waited out; an ambiguous write is settled by
reading back), discard a key at the provider. It decides no ordering (:mod:`.steps`,
:mod:`.engine`) and reports nothing (:mod:`.report`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from impromptu_ops.audit import AuditLog
from impromptu_ops.errors import (
    ConfigError,
    IntegrityError,
    SecretNotFound,
    StoreError,
    StoreUnavailable,
)
from impromptu_ops.rotation.crash import Hooks
from impromptu_ops.rotation.lease import default_owner, refuse_if_held
from impromptu_ops.rotation.outcome import Outcome, Verdict
from impromptu_ops.rotation.provider import Provider
from impromptu_ops.rotation.record import (
    PENDING_PREFIX,
    KeyInfo,
    RecordStore,
    RotationRecord,
    Step,
    fingerprint,
    iso,
)
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore

log = logging.getLogger("impromptu_ops.rotation.engine")


class RunState:
    """The state of one rotation run of one provider's key.

    Args:
        provider: the key provider.
        store: the secret store (record, pending and canonical secrets all live there).
        audit: the hash-chained audit log; every step is appended (ids only).
        lock_path: the local lock file (fast path; the record's CAS is the real arbiter).
        grace_seconds: how long the old key keeps WORKING after the new one is current,
            before a later run retires it (new rotations; 0 = in the same run).
        lease_seconds: how long a silent record owner on another host keeps its claim.
        create_attempts: how many fresh keys one run may mint after ambiguous failures.
        clock: the current time (injected for tests).
        owner: this run's identity in the record (default ``host:pid:nonce``).
        hooks: the test hooks reached at every step boundary (:mod:`.crash`; default:
            the test environment variables, inert when unset).
        sleep: waits between store retries (injected for tests).
        store_retry_delays: waits before re-writing a key after ``StoreUnavailable``.
        outage_waits: waits for the store to come back (a leader election) before a run
            that lost it mid-step fails; the run then goes on from the recorded step.
        on_rotate: the reload hook's command line, run after promotion ("" = none); it is
            copied into the record of a new rotation (``resume`` runs the recorded one).
        on_rotate_timeout: seconds before the hook is killed.
    """

    def __init__(
        self,
        provider: Provider,
        store: SecretStore,
        *,
        audit: AuditLog,
        lock_path: Path,
        grace_seconds: float,
        lease_seconds: float = 900.0,
        create_attempts: int = 3,
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
        hooks: Hooks | None = None,
        sleep: Callable[[float], None] = time.sleep,
        store_retry_delays: tuple[float, ...] = (0.5, 1.0, 2.0),
        outage_waits: tuple[float, ...] = (0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0),
        on_rotate: str = "",
        on_rotate_timeout: float = 30.0,
    ) -> None:
        self.provider = provider
        self.records = RecordStore(store)
        self.audit = audit
        self.lock_path = lock_path
        self.grace_seconds = grace_seconds
        self.lease_seconds = lease_seconds
        self.create_attempts = max(1, create_attempts)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.owner = owner or default_owner()
        self.hooks = hooks if hooks is not None else Hooks.from_env()
        self.sleep = sleep
        self.store_retry_delays = store_retry_delays
        self.outage_waits = outage_waits
        self.on_rotate = on_rotate
        self.on_rotate_timeout = on_rotate_timeout
        self._rec: RotationRecord | None = None
        self._ver = 0
        self._promoted_now = False  # this run made the new key current
        self._hook_failed = ""  # this run's reload hook failed: why

    @property
    def rec(self) -> RotationRecord:
        assert self._rec is not None
        return self._rec

    def _read_canonical(self) -> tuple[Secret, dict[str, str], int]:
        try:
            return self.records.read_key(self.provider.secret)
        except SecretNotFound:
            raise ConfigError(
                f"nothing to rotate: {self.provider.secret} is not in the store",
                hint="store the current key first (register or `secrets put`)") from None

    def _stored_pending(self) -> KeyInfo | None:
        try:
            value, meta, version = self.records.read_key(PENDING_PREFIX + self.rec.secret)
        except SecretNotFound:
            return None
        if meta.get("rotation_id") != self.rec.rotation_id:
            return None  # a leftover of an older rotation: overwritten below
        return KeyInfo(meta.get("key_id", ""), fingerprint(value), version)

    def _pending_value(self) -> Secret:
        value, meta, _version = self.records.read_key(PENDING_PREFIX + self.rec.secret)
        if (meta.get("rotation_id") != self.rec.rotation_id
                or fingerprint(value) != self.rec.new.fingerprint):
            raise IntegrityError(f"the pending key of {self.rec.secret} is not the one "
                                 f"rotation {self.rec.rotation_id} stored")
        return value

    def _write_checked(self, name: str, value: Secret, meta: dict[str, str], fp: str,
                       cas: int | None = None) -> int:
        """Write a key secret, waiting out a brief outage (a Vault leader election): the
        value may exist only in this process. An ambiguous failure is settled by reading
        back."""
        for delay in self.store_retry_delays:
            try:
                return self._write_once(name, value, meta, fp, cas)
            except StoreUnavailable as exc:
                self._log("store-retry", name=name, error=exc.diagnostics())
                self.sleep(delay)
        return self._write_once(name, value, meta, fp, cas)

    def _write_once(self, name: str, value: Secret, meta: dict[str, str], fp: str,
                    cas: int | None) -> int:
        if cas is None:
            cas = self.records.current_version(name)
        try:
            return self.records.write_key(name, value, meta, cas)
        except StoreError as exc:
            try:
                got, _meta, version = self.records.read_key(name)
            except StoreError:
                raise exc from None
            if fingerprint(got) == fp:
                return version
            raise

    def _discard(self, key_id: str, why: str) -> None:
        self.provider.disable(key_id)
        self.provider.delete(key_id)
        self._log("orphan-removed", key_id=key_id, reason=why)

    def _refuse_if_held(self, rec: RotationRecord) -> None:
        refuse_if_held(rec, self.clock(), self.lease_seconds)

    def _claim(self) -> None:
        self._save(self.rec.evolve(owner=self.owner))

    def _save(self, rec: RotationRecord) -> None:
        rec = rec.evolve(owner=self.owner, updated=iso(self.clock()))
        self._ver = self.records.save(rec, cas=self._ver)
        self._rec = rec

    def _advance(self, step: Step, **changes: Any) -> None:
        self._save(self.rec.evolve(step=step, **changes))
        self._log("step", step=step.value)
        self._boundary(step.value)

    def _boundary(self, name: str) -> None:
        self.hooks.reached(name)

    def _log(self, event: str, **fields: Any) -> None:
        rec = self._rec
        base: dict[str, Any] = {"provider": self.provider.name}
        if rec is not None:
            base.update(rotation_id=rec.rotation_id, at_step=rec.step.value,
                        state=rec.state.value, attempt=rec.attempt,
                        old_key_id=rec.old.key_id, new_key_id=rec.new.key_id)
        self.audit.append(f"rotation.{event}", **{**base, **fields})
        log.info("rotation %s %s %s", self.provider.name, event,
                 fields.get("step", "") or fields.get("reason", ""))

    def _outcome(self, verdict: Verdict, message: str, rec: RotationRecord | None) -> Outcome:
        if rec is None:
            return Outcome(verdict, self.provider.name, message)
        return Outcome(verdict, self.provider.name, message, rec.rotation_id, rec.state.value,
                       rec.step.value, rec.grace_until)
