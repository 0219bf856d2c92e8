"""The rotation state machine: start, resume, roll back, report.

Modelled on the staged protocol of AWS Secrets Manager (create, set, test, finish with
pending / current / previous labels), with stricter ordering:

1. ``intent``: the rotation id and the old key's id and fingerprint are written to the
   record (CAS) BEFORE any provider call; the CAS write is what makes one rotation win
   when two start together, on one machine or two.
2. ``stored``: the new key is minted (labelled with the rotation id) and written to
   ``_pending/NAME`` at once: a value shown once is never held only in memory for long.
   A crash between the two leaves a labelled key that the next run finds and disables.
   A create whose outcome is unknown (timeout) is resolved by reading back, not retrying.
3. ``verified``: the new key answers a real authenticated call.
4. ``activated``: consumers holding a copy (the platform's BYOK store) get the new key.
5. ``promoted``: ``NAME`` gets the new key as its newest version; the old one stays as
   the previous version, and the record notes when its retirement is due
   (``grace_until`` = now + grace). The reload hook (:mod:`.hook`) runs. The old key was
   never touched and KEEPS WORKING through the grace period: a run that finds the
   retirement not yet due stops here (exit 0) and a later run (``rotate resume``,
   ``rotate --if-due``, a new ``rotate``) goes on once it is due.
6. ``retiring``: written BEFORE the first disable/delete call on the old key. From here
   the old key may be revoked at any instant (a killed run's request can still land), so
   it is never restored: ``rollback`` refuses and the new key stays current.
7. ``old-disabled``: the old key is disabled (the provider confirmed it).
8. ``old-deleted``: the old key is deleted or revoked (the provider confirmed it).
9. ``done``: the pending copy is removed and orphaned rotation keys are swept.

Every step is idempotent or checks before it acts, so ``resume`` simply continues from the
recorded step; ``rollback`` (before ``retiring`` only) checks that the old key still works
and restores it before it kills the new one. At every instant the newest version of
``NAME`` is a key that works; a failed run that finds it refused restores a key of the
rotation that works (:mod:`.salvage`) before it reports.

This module owns the ordering and the recovery rules. It does not know HTTP or Vault: it
talks to a :class:`~impromptu_ops.rotation.provider.Provider` and a
:class:`~impromptu_ops.store.base.SecretStore`, both injected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets as pysecrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from impromptu_ops.audit import AuditLog
from impromptu_ops.errors import (
    AuthError,
    CasConflict,
    ConfigError,
    IntegrityError,
    KeyManagementRefused,
    LockBusy,
    OpsError,
    RateLimited,
    SecretNotFound,
    ServerError,
    StoreError,
    StoreUnavailable,
    TransportError,
)
from impromptu_ops.locks import ProcessLock
from impromptu_ops.rotation import retire, salvage
from impromptu_ops.rotation.crash import barrier_point, crash_point
from impromptu_ops.rotation.hook import run_hook
from impromptu_ops.rotation.keycheck import KeyCheck, Verdict
from impromptu_ops.rotation.provider import (
    Provider,
    RotationUnsupported,
    label_rotation,
    rotation_scope,
)
from impromptu_ops.rotation.record import (
    PENDING_PREFIX,
    KeyInfo,
    RecordStore,
    RotationRecord,
    State,
    Step,
    at_least,
    fingerprint,
    iso,
    next_step,
    parse_iso,
)
from impromptu_ops.secret import Secret, clip
from impromptu_ops.store.base import SecretStore

log = logging.getLogger(__name__)

# The exit contract of `rotate` (the issue's, for schedulers).
EXIT_DONE = 0
EXIT_FAILED_SAFE = 1  # failed; the agent still has a working key
EXIT_KEY_AT_RISK = 2  # the agent may be without a working key: page someone
EXIT_BUSY = 75  # another rotation holds the lock or the record

# Errors after which a create's outcome is unknown: read back before doing anything else.
AMBIGUOUS = (TransportError, ServerError, RateLimited)


class RotationBusy(OpsError):
    """Another rotation holds the record (or waits out its grace period)."""

    exit_code = EXIT_BUSY


@dataclass(frozen=True)
class Outcome:
    """What one ``rotate`` / ``resume`` / ``rollback`` run achieved, for the CLI to render."""

    exit_code: int
    provider: str
    message: str
    rotation_id: str = ""
    state: str = ""
    step: str = ""
    grace_until: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def default_owner() -> str:
    """``host:pid:nonce``: who holds a record (the nonce tells two runs of one pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{pysecrets.token_hex(4)}"


def new_rotation_id(now: datetime, installation: str) -> str:
    """``<installation>.<time>-<nonce>`` (see :func:`~.provider.rotation_scope`)."""
    return f"{installation}.{now.strftime('%Y%m%dt%H%M%S')}-{pysecrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Rotator:
    """Runs the rotation of one provider's key.

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
        on_boundary: called at every step boundary after the crash hook (tests).
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
        on_boundary: Callable[[str], None] | None = None,
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
        self.on_boundary = on_boundary
        self.sleep = sleep
        self.store_retry_delays = store_retry_delays
        self.outage_waits = outage_waits
        self.on_rotate = on_rotate
        self.on_rotate_timeout = on_rotate_timeout
        self._rec: RotationRecord | None = None
        self._ver = 0
        self._promoted_now = False  # this run made the new key current
        self._hook_failed = ""  # this run's reload hook failed: why

    # ------------------------------------------------------------------ public entry points
    def start(self, *, dry_run: bool = False) -> Outcome:
        """Rotate now (or finish an abandoned rotation first).

        Raises:
            LockBusy, RotationBusy, CasConflict: another rotation holds it (exit 75).
            RotationUnsupported: the provider cannot rotate (exit 0, with the expiry).
        """
        with ProcessLock(self.lock_path, f"rotate {self.provider.name}"):
            rec, ver = self.records.load(self.provider.name)
            barrier_point("loaded")  # test-only: two runs meet here, then race to the CAS
            before = ""
            if rec is not None and rec.active:
                waiting = self._waiting(rec)
                if waiting is not None:
                    if dry_run:
                        return dataclasses.replace(waiting, message="dry run: " + waiting.message)
                    raise RotationBusy(retire.busy_message(rec), hint=(
                        "after that time this command (or `rotate resume`) retires it "
                        "first; exit 75 means 'try later'"))
                self._refuse_if_held(rec, starting=True)
                if dry_run:
                    return self._outcome(EXIT_DONE, "dry run: would resume the unfinished "
                                         f"rotation {rec.rotation_id} from {rec.step}", rec)
                self._rec, self._ver = rec, ver
                self._claim()
                self._log("resume", takeover_from=rec.owner)
                retiring = rec.state == State.RUNNING and at_least(rec.step, Step.PROMOTED)
                out = self._continue()
                if not (retiring and out.exit_code == EXIT_DONE
                        and self.rec.state == State.DONE):
                    return out
                # The previous rotation's retirement is finished: now the one asked for.
                before = out.message + "; then "
                rec, ver = self.records.load(self.provider.name)
                self._promoted_now, self._hook_failed = False, ""
            old_value, old_meta, old_ver = self._read_canonical()
            old_id = old_meta.get("key_id") or self.provider.identify(old_value)
            now = self.clock()
            if dry_run:
                return Outcome(EXIT_DONE, self.provider.name,
                               f"dry run: would rotate {self.provider.secret} (version "
                               f"{old_ver}, key {old_id or 'unidentified'}) with grace "
                               f"{self.grace_seconds:g}s; nothing was changed")
            self._rec = RotationRecord(
                provider=self.provider.name, secret=self.provider.secret,
                rotation_id=new_rotation_id(now, self.records.installation()),
                step=Step.INTENT, state=State.RUNNING,
                owner=self.owner, started=iso(now), updated=iso(now),
                old=KeyInfo(old_id, fingerprint(old_value), old_ver),
                grace_seconds=self.grace_seconds,
                on_rotate=self.on_rotate, on_rotate_timeout=self.on_rotate_timeout,
            )
            self._ver = ver
            try:
                self._save(self._rec)  # CAS: of two rotations started together, one wins here
            except CasConflict:
                self._log("lost", error="another rotation recorded its intent first")
                raise RotationBusy(
                    f"another rotation of {self.provider.secret} started at the same moment "
                    "and recorded its intent first (compare-and-set on the rotation record)",
                    hint="exit 75 means 'try later'") from None
            self._log("start", old_key_id=old_id, old_fingerprint=self._rec.old.fingerprint)
            self._boundary(Step.INTENT.value)
            out = self._continue(sweep_first=True)
            return dataclasses.replace(out, message=before + out.message) if before else out

    def resume(self, *, force: bool = False) -> Outcome:
        """Continue (or finish rolling back) an interrupted rotation; a no-op when none."""
        with ProcessLock(self.lock_path, f"rotate {self.provider.name}"):
            rec, ver = self.records.load(self.provider.name)
            if rec is None or not rec.active:
                return self._outcome(EXIT_DONE, "no rotation to resume", rec)
            waiting = self._waiting(rec)
            if waiting is not None:
                return waiting  # nothing to do yet: no record write, no audit line
            if not force:
                self._refuse_if_held(rec)
            self._rec, self._ver = rec, ver
            self._claim()
            self._log("resume", takeover_from=rec.owner)
            return self._continue()

    def rollback(self, *, force: bool = False) -> Outcome:
        """Undo an unfinished rotation: the old key becomes current again, the new one dies.

        Raises:
            OpsError: the old key was already deleted (past the point of no return).
        """
        with ProcessLock(self.lock_path, f"rotate {self.provider.name}"):
            rec, ver = self.records.load(self.provider.name)
            if rec is None or not rec.active:
                return self._outcome(EXIT_DONE, "no rotation to roll back", rec)
            if not force:
                self._refuse_if_held(rec)
            self._rec, self._ver = rec, ver
            self._claim()
            if rec.state == State.RUNNING and at_least(rec.step, Step.RETIRING):
                # The old key's disable/delete may have been sent (a killed run's request
                # can land later): restoring it could hand the agent a key that dies a
                # moment later. Forward is the only way; make sure a working key is current.
                self._log("rollback-refused", reason="the old key's retirement has begun")
                at_risk, note = self._secure_current()
                return self._outcome(
                    EXIT_KEY_AT_RISK if at_risk else EXIT_FAILED_SAFE,
                    f"cannot roll back rotation {rec.rotation_id}: it is past the point of no "
                    f"return (the old key's retirement began at step {rec.step}; it may be "
                    f"disabled or revoked, so it is never restored); {note}; run "
                    "`impromptu-ops rotate resume` to finish", self.rec)
            try:
                self._rollback("operator asked")
            except OpsError as exc:
                return self._failed(exc)
            return self._outcome(EXIT_DONE, "rolled back: the old key is current again",
                                 self._rec)

    def status(self, audit_lines: int = 20) -> dict[str, Any]:
        """The record (ids, steps, times; never values) and the recent audit trail."""
        rec, ver = self.records.load(self.provider.name)
        trail = [e for e in self.audit.entries() if e.get("provider") == self.provider.name]
        return {
            "provider": self.provider.name,
            "secret": self.provider.secret,
            "record": None if rec is None else {**record_view(rec), "record_version": ver},
            "audit": trail[-audit_lines:],
        }

    # ------------------------------------------------------------------ the forward path
    def _continue(self, *, sweep_first: bool = False) -> Outcome:
        waits = list(self.outage_waits)
        while True:
            try:
                return self._run(sweep_first=sweep_first)
            except StoreUnavailable as exc:
                # A brief store outage (a Vault leader election): wait, re-read the record
                # and go on from its step, exactly as `resume` would: every step is safe
                # to replay. Only when the outage outlasts the waits does the run fail.
                if not self._ride_out(exc, waits):
                    return self._failed(exc)

    def _ride_out(self, exc: StoreUnavailable, waits: list[float]) -> bool:
        """Wait for the store to answer again; ``True`` once the record is re-read."""
        self._log("store-outage", error=exc.diagnostics())
        while waits:
            self.sleep(waits.pop(0))
            try:
                rec, ver = self.records.load(self.provider.name)
            except StoreUnavailable:
                continue
            if rec is None or rec.rotation_id != self.rec.rotation_id or rec.owner != self.owner:
                raise RotationBusy(f"rotation {self.rec.rotation_id} changed hands during a "
                                   "store outage", hint="see `impromptu-ops rotate status`")
            self._rec, self._ver = rec, ver
            self._log("store-back", step=rec.step.value)
            return True
        return False

    def _run(self, *, sweep_first: bool) -> Outcome:
        try:
            if self.rec.state == State.ROLLING_BACK:
                self._rollback(self.rec.error or "resuming a rollback")
                return self._outcome(EXIT_DONE, "rolled back: the old key is current again",
                                     self.rec)
            if sweep_first:
                self._sweep()
            return self._forward()
        except StoreUnavailable:
            raise
        except (CasConflict, LockBusy) as exc:
            self._log("lost", error=exc.diagnostics())
            raise
        except RotationUnsupported:
            if not at_least(self.rec.step, Step.STORED):  # nothing was minted: close it
                self._save(self.rec.evolve(state=State.ROLLED_BACK, error="unsupported"))
            raise
        except OpsError as exc:
            return self._failed(exc)

    def _forward(self) -> Outcome:
        p = self.provider
        while True:
            rec = self.rec
            step = next_step(rec.step)
            if step is None:
                return self._finished(rec)
            if step is Step.STORED:
                self._create_and_store()
                continue
            if step is Step.VERIFIED:
                try:
                    p.verify(self._pending_value())
                except AuthError as exc:
                    self._rollback(f"the new key failed verification: {exc.diagnostics()}")
                    return self._outcome(EXIT_FAILED_SAFE, "the new key did not work; rolled "
                                         "back, the old key is still current", self.rec)
                self._advance(step)
            elif step is Step.ACTIVATED:
                p.activate(self._pending_value())
                self._advance(step)
            elif step is Step.PROMOTED:
                self._promote()
            elif step is Step.RETIRING:
                if rec.on_rotate and not rec.hook:
                    self._run_hook()  # consumers reload before the old key can go
                if not self.rec.retire_due(self.clock()):
                    return self._with_hook(self._outcome(
                        EXIT_DONE, retire.grace_message(self.rec, self._promoted_now),
                        self.rec))
                self._advance(step)
            elif step in (Step.OLD_DISABLED, Step.OLD_DELETED):
                if rec.old.key_id:
                    (p.disable if step is Step.OLD_DISABLED else p.delete)(rec.old.key_id)
                else:  # nothing was sent: the audit says so, not "disabled"/"deleted"
                    self._log("old-unidentified", reason=f"{step.value} skipped: the old key "
                              "could not be identified at the provider; it still works")
                self._advance(step, note="" if rec.old.key_id else "old key unidentified")
            else:  # DONE
                self.records.delete_pending(rec.secret)
                self._sweep()
                self._advance(Step.DONE, state=State.DONE, error="")

    def _create_and_store(self) -> None:
        rec, p = self.rec, self.provider
        adopted = self._stored_pending()
        if adopted is not None:  # a crash after the pending write, before the record
            self._log("adopt-pending", new_key_id=adopted.key_id)
            self._advance(Step.STORED, new=adopted)
            return
        attempt = rec.attempt
        if p.idempotent_create and attempt > 0:
            pass  # replaying the same attempt returns the same key: that IS the read-back
        else:
            # Keys this rotation minted that never reached the store: the value is lost.
            for ref in p.created_by(rec.rotation_id):
                self._discard(ref.key_id, "minted by this rotation but never stored")
            attempt += 1
            self._save(rec.evolve(attempt=attempt))  # the intent precedes the call
        last: OpsError | None = None
        for _ in range(self.create_attempts):
            try:
                new = p.create(self.rec.rotation_id, attempt)
                break
            except KeyManagementRefused as exc:
                # A cap on live keys (KEY_LIMIT). An earlier attempt of THIS rotation may
                # hold the slot with a key whose value was never stored (the platform
                # forgot its idempotent replay): read back, revoke those, mint anew.
                stale = p.created_by(self.rec.rotation_id) if p.idempotent_create else []
                if not stale:
                    raise
                last = exc
                for ref in stale:
                    self._discard(ref.key_id, "minted by this rotation but never stored; "
                                  f"the platform refused another ({exc.code})")
                attempt += 1
                self._save(self.rec.evolve(attempt=attempt))
            except AMBIGUOUS as exc:
                last = exc
                self._log("create-ambiguous", attempt=attempt, error=exc.diagnostics())
                if p.idempotent_create:
                    continue
                for ref in p.created_by(self.rec.rotation_id):  # read back, never blindly retry
                    self._discard(ref.key_id, "create outcome unknown; value never seen")
                attempt += 1
                self._save(self.rec.evolve(attempt=attempt))
        else:
            assert last is not None
            raise last
        self._boundary("created")
        info = KeyInfo(new.key_id, fingerprint(new.value), 0)
        pending = PENDING_PREFIX + self.rec.secret
        meta = {"rotation_id": self.rec.rotation_id, "key_id": new.key_id,
                "attempt": str(attempt)}
        try:
            version = self._write_checked(pending, new.value, meta, info.fingerprint)
        except StoreError:
            # The value exists only in this process: without the store it is useless.
            self._discard(new.key_id, "could not be stored")
            raise
        self._boundary("pending-written")
        self._advance(Step.STORED, new=KeyInfo(new.key_id, info.fingerprint, version),
                      attempt=attempt)

    def _promote(self) -> None:
        rec = self.rec
        value = self._pending_value()
        cur, _meta, cur_ver = self._read_canonical()
        cur_fp = fingerprint(cur)
        if cur_fp == rec.new.fingerprint:
            version = cur_ver  # promoted before a crash; the record did not hear of it
        elif cur_fp == rec.old.fingerprint:
            version = self._write_checked(
                rec.secret, value, {"key_id": rec.new.key_id, "rotation_id": rec.rotation_id},
                rec.new.fingerprint, cas=cur_ver)
        else:
            raise IntegrityError(
                f"{rec.secret} changed during rotation {rec.rotation_id} (not by it); "
                "refusing to overwrite it",
                hint="check who wrote it, then `rotate rollback` or `rotate resume`")
        self._boundary("canonical-written")
        due = self.clock() + timedelta(seconds=rec.grace_seconds)
        self._advance(Step.PROMOTED, new=KeyInfo(rec.new.key_id, rec.new.fingerprint, version),
                      grace_until=iso(due))
        self._promoted_now = True

    # ------------------------------------------------------------------ grace and hook
    def _waiting(self, rec: RotationRecord) -> Outcome | None:
        """The answer of a run that finds the old key's retirement not yet due (else None)."""
        if retire.waiting(rec, self.clock()):
            return self._outcome(EXIT_DONE, retire.waiting_message(rec), rec)
        return None

    def _finished(self, rec: RotationRecord) -> Outcome:
        return self._with_hook(self._outcome(
            EXIT_DONE, retire.finished_message(rec, self._promoted_now), rec))

    def _run_hook(self) -> None:
        rec = self.rec
        result = run_hook(rec.on_rotate, rec.on_rotate_timeout, retire.hook_facts(rec))
        self._save(rec.evolve(hook=result.as_record()))
        self._log("hook", command=rec.on_rotate.split(" ", 1)[0][:80],
                  result=result.as_record())
        if not result.ok:
            self._hook_failed = result.detail

    def _with_hook(self, out: Outcome) -> Outcome:
        """A failed reload hook turns a done run into exit 1 (the key works; consumers may
        not have reloaded)."""
        if not self._hook_failed:
            return out
        return dataclasses.replace(
            out, exit_code=max(out.exit_code, EXIT_FAILED_SAFE),
            message=f"{out.message}; but the reload hook failed ({self._hook_failed}): "
            "running consumers were not told to reload")

    # ------------------------------------------------------------------ rollback
    def _rollback(self, why: str) -> None:
        """Make the old key current and working again, then kill every new key."""
        rec, p = self.rec, self.provider
        if rec.state != State.ROLLING_BACK:
            self._save(rec.evolve(state=State.ROLLING_BACK, error=clip(why, 500)))
            self._log("rollback", reason=why)
        rec = self.rec
        cur, _meta, cur_ver = self._read_canonical()
        # Read back: a crash may have promoted the new key before the record heard of it.
        promoted = fingerprint(cur) != rec.old.fingerprint
        if at_least(rec.step, Step.PROMOTED) or promoted:
            if rec.old.key_id:
                p.enable(rec.old.key_id)
            old_value, _m, _v = self.records.read_key(rec.secret, rec.old.version)
            if fingerprint(old_value) != rec.old.fingerprint:
                raise IntegrityError(f"{rec.secret} version {rec.old.version} is not the old key")
            try:
                p.verify(old_value)  # never restore a key that does not work
            except AuthError as exc:
                # The old key is gone: the only way left is forward. The caller's report
                # (_failed) checks the current key and, if it is the dead old one, puts the
                # working new key back (salvage) before it says anything about it.
                self._save(self.rec.evolve(state=State.RUNNING, error="rollback impossible"))
                self._log("rollback-impossible", error=exc.diagnostics())
                raise OpsError(
                    f"cannot roll back rotation {rec.rotation_id}: the old key no longer "
                    "works", hint="`rotate resume` finishes the rotation") from None
            p.activate(old_value)
            if promoted:
                self._write_checked(rec.secret, old_value, {"key_id": rec.old.key_id},
                                    rec.old.fingerprint, cas=cur_ver)
        elif at_least(rec.step, Step.VERIFIED):
            p.activate(cur)  # the BYOK copy may already be the new key
        self._boundary("rollback-restored")
        doomed = {rec.new.key_id} if rec.new.key_id else set()
        doomed |= {ref.key_id for ref in p.created_by(rec.rotation_id)}
        if p.idempotent_create and rec.attempt > 0 and not rec.new.key_id:
            # Keys without names cannot be listed by rotation: replaying the recorded
            # attempt returns the key it minted (or mints one), so it can be revoked. A
            # platform that forgot the replay and is at its key cap refuses instead: the
            # read-back above (created_by) has found that key already.
            with contextlib.suppress(KeyManagementRefused):
                doomed.add(p.create(rec.rotation_id, rec.attempt).key_id)
        for key_id in sorted(doomed):
            self._discard(key_id, "rolled back")
        self.records.delete_pending(rec.secret)
        self._save(self.rec.evolve(state=State.ROLLED_BACK))
        self._log("rolled-back")

    # ------------------------------------------------------------------ pieces
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

    def _sweep(self) -> None:
        """Disable and delete rotation-labelled keys that no record or secret refers to."""
        rec = self.rec
        keep = {rec.old.key_id, rec.new.key_id}
        for name in (rec.secret, PENDING_PREFIX + rec.secret):
            with contextlib.suppress(SecretNotFound):
                keep.add(self.records.read_key(name)[1].get("key_id", ""))
        if self.provider.idempotent_create and at_least(rec.step, Step.STORED):
            # Nameless keys (Impromptu): the ones only this rotation can have made and
            # nobody ever used, left when the platform forgot an idempotent replay.
            for ref in self.provider.created_by(rec.rotation_id):
                if ref.key_id not in keep:
                    self._discard(ref.key_id, "minted by this rotation but never stored")
        for ref in self.provider.owned():
            rid = label_rotation(ref.label)
            if ref.key_id in keep or rid is None:
                continue
            if rotation_scope(rid) != rotation_scope(rec.rotation_id):
                continue  # another installation's rotation (same account, other store)
            if rid == rec.rotation_id and not at_least(rec.step, Step.STORED):
                continue  # handled (with care) by _create_and_store
            self._discard(ref.key_id, f"orphan of rotation {rid}")

    def _refuse_if_held(self, rec: RotationRecord, *, starting: bool = False) -> None:
        now = self.clock()
        if (rec.state == State.RUNNING and at_least(rec.step, Step.PROMOTED)
                and rec.grace_until and rec.retire_due(now)):
            return  # a due retirement: finishing it is anyone's job (each step is idempotent)
        host, _, rest = rec.owner.partition(":")
        pid_text = rest.partition(":")[0]
        if host == socket.gethostname() and pid_text.isdigit():
            if int(pid_text) != os.getpid() and _pid_alive(int(pid_text)):
                raise RotationBusy(f"rotation {rec.rotation_id} is running (pid {pid_text})",
                                   hint="exit 75 means 'try later'")
            return
        if now < parse_iso(rec.updated) + timedelta(seconds=self.lease_seconds):
            raise RotationBusy(
                f"rotation {rec.rotation_id} is held by {host} (last step {rec.updated})",
                hint="it is taken over after the lease; `rotate resume --force` if that host "
                "is gone")

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
        crash_point(name)
        if self.on_boundary is not None:
            self.on_boundary(name)

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

    def _failed(self, exc: OpsError) -> Outcome:
        line = exc.diagnostics()
        with contextlib.suppress(OpsError):  # the record keeps its step; the text is a bonus
            self._save(self.rec.evolve(error=clip(line, 500)))
        self._log("failed", error=line)
        at_risk, note = self._secure_current()
        code = EXIT_KEY_AT_RISK if at_risk else EXIT_FAILED_SAFE
        return self._outcome(code, f"rotation failed: {line}; {note}; "
                             "run `impromptu-ops rotate resume` to continue", self.rec)

    def _secure_current(self) -> tuple[bool, str]:
        """Check the store's current key now; if the provider refuses it, store a key of
        this rotation that works instead. ``(at_risk, what was checked just now)``.

        By construction the current key was verified before it became current and is
        never disabled while current; so only POSITIVE evidence (a refusal, a missing
        secret) means "page someone", and only when no other key of the rotation works.
        A probe that cannot reach the provider says nothing new: not at risk.
        """
        verdict = self.probe()
        if verdict.verdict is Verdict.OK:
            return False, "the agent still has a working key (checked just now)"
        if verdict.verdict is not Verdict.REFUSED:
            before = ("its own key, untouched: the rotation stopped before the cut-over"
                      if not at_least(self.rec.step, Step.PROMOTED)
                      else "the new key, verified before it became current")
            return False, (f"the current key could not be re-checked just now ({verdict}); "
                           f"it is {before}")
        rec = self.rec
        try:
            cur_fp = ""
            with contextlib.suppress(SecretNotFound):
                cur_fp = fingerprint(self.records.read_key(rec.secret)[0])
            found = salvage.first_working(self.provider,
                                          salvage.candidates(self.records, rec), skip=cur_fp)
            if found is None:
                return True, (f"the agent may be without a working key ({verdict}) and no "
                              f"other key of rotation {rec.rotation_id} in the store works: "
                              "page someone")
            version = self._write_checked(
                rec.secret, found.value, {"key_id": found.key_id,
                                          "rotation_id": rec.rotation_id},
                found.fingerprint, cas=self.records.current_version(rec.secret))
            if found.which == "new":
                step = rec.step if at_least(rec.step, Step.VERIFIED) else Step.VERIFIED
                new = dataclasses.replace(rec.new, version=version) if at_least(
                    rec.step, Step.PROMOTED) else rec.new
                self._save(self.rec.evolve(state=State.RUNNING, step=step, new=new))
            else:
                self._save(self.rec.evolve(state=State.ROLLING_BACK,
                                           error="the new key was refused"))
        except OpsError as exc:
            return True, (f"the agent may be without a working key ({verdict}); storing a "
                          f"working one failed ({exc.diagnostics()}): page someone")
        self._log("salvaged", which=found.which, key_id=found.key_id, reason=str(verdict))
        return False, (f"the current key was refused ({verdict}), so the {found.which} key "
                       f"of rotation {rec.rotation_id}, which works (checked just now), is "
                       "current again")

    def probe(self) -> KeyCheck:
        """Does the store's current key work now? OK, REFUSED (with why) or UNKNOWN."""
        try:
            value, _meta, _version = self.records.read_key(self.provider.secret)
            self.provider.verify(value)
        except (AuthError, SecretNotFound) as exc:
            return KeyCheck(Verdict.REFUSED, exc.diagnostics())
        except OpsError as exc:
            return KeyCheck(Verdict.UNKNOWN, exc.diagnostics())
        return KeyCheck(Verdict.OK)

    def _outcome(self, code: int, message: str, rec: RotationRecord | None) -> Outcome:
        if rec is None:
            return Outcome(code, self.provider.name, message)
        return Outcome(code, self.provider.name, message, rec.rotation_id, rec.state.value,
                       rec.step.value, rec.grace_until)


def record_view(rec: RotationRecord) -> dict[str, Any]:
    return {
        "rotation_id": rec.rotation_id, "state": rec.state.value, "step": rec.step.value,
        "attempt": rec.attempt, "owner": rec.owner, "started": rec.started,
        "updated": rec.updated, "old_key_id": rec.old.key_id,
        "old_fingerprint": rec.old.fingerprint, "previous_version": rec.old.version,
        "new_key_id": rec.new.key_id, "new_fingerprint": rec.new.fingerprint,
        "current_version": rec.new.version if at_least(rec.step, Step.PROMOTED) else None,
        "grace_until": rec.grace_until, "pending_retirement": retire.pending_retirement(rec),
        "on_rotate": rec.on_rotate, "hook": rec.hook, "error": rec.error,
    }


__all__ = [
    "EXIT_BUSY", "EXIT_DONE", "EXIT_FAILED_SAFE", "EXIT_KEY_AT_RISK", "Outcome",
    "RotationBusy", "RotationUnsupported", "Rotator",
]
