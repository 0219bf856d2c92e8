"""Private: the steps of a rotation: create and store, verify, activate, promote, retire, sweep,
and the way back (rollback).

Each step is idempotent or checks before it acts, so a resumed run replays the recorded
step safely; the ordering and its reasons are in :mod:`.engine`'s docstring. This module
owns what each step does to the provider and the store; who may run it is
:mod:`.lease`'s business, and how a failure is reported :mod:`.report`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import timedelta

from impromptu_ops.errors import (
    AuthError,
    IntegrityError,
    KeyManagementRefused,
    OpsError,
    RateLimited,
    SecretNotFound,
    ServerError,
    StoreError,
    TransportError,
)
from impromptu_ops.rotation import retire
from impromptu_ops.rotation.hook import run_hook
from impromptu_ops.rotation.outcome import Outcome, Verdict
from impromptu_ops.rotation.provider import label_rotation, rotation_scope
from impromptu_ops.rotation.record import (
    PENDING_PREFIX,
    KeyInfo,
    RotationRecord,
    State,
    Step,
    at_least,
    fingerprint,
    iso,
    next_step,
)
from impromptu_ops.rotation.report import Reporting
from impromptu_ops.secret import clip

# Errors after which a create's outcome is unknown: read back before doing anything else.
AMBIGUOUS = (TransportError, ServerError, RateLimited)


class Steps(Reporting):
    """The forward steps and the rollback of one run (see the module docstring)."""

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
                    return self._outcome(Verdict.FAILED_SAFE, "the new key did not work; rolled "
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
                        Verdict.DONE, retire.grace_message(self.rec, self._promoted_now),
                        self.rec))
                self._advance(step)
            elif step in (Step.OLD_DISABLED, Step.OLD_DELETED):
                if rec.old.key_id:
                    (p.disable if step is Step.OLD_DISABLED else p.delete)(rec.old.key_id)
                else:  # nothing was sent: the audit says so, not "disabled"/"deleted"
                    self._log("old-unidentified", reason=f"{step.value} skipped: the old key "
                              "could not be identified at the provider, so nothing was "
                              "disabled or deleted")
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

    def _waiting(self, rec: RotationRecord) -> Outcome | None:
        """The answer of a run that finds the old key's retirement not yet due (else None)."""
        if retire.waiting(rec, self.clock()):
            return self._outcome(Verdict.DONE, retire.waiting_message(rec), rec)
        return None

    def _finished(self, rec: RotationRecord) -> Outcome:
        return self._with_hook(self._outcome(
            Verdict.DONE, retire.finished_message(rec, self._promoted_now), rec))

    def _run_hook(self) -> None:
        rec = self.rec
        result = run_hook(rec.on_rotate, rec.on_rotate_timeout, retire.hook_facts(rec))
        self._save(rec.evolve(hook=result.as_record()))
        self._log("hook", command=rec.on_rotate.split(" ", 1)[0][:80],
                  result=result.as_record())
        if not result.ok:
            self._hook_failed = result.detail

    def _with_hook(self, out: Outcome) -> Outcome:
        """A failed reload hook turns a done run into ``FAILED_SAFE`` (the key works;
        consumers may not have reloaded)."""
        if not self._hook_failed:
            return out
        return dataclasses.replace(
            out, verdict=Verdict.FAILED_SAFE if out.verdict is Verdict.DONE else out.verdict,
            message=f"{out.message}; but the reload hook failed ({self._hook_failed}): "
            "running consumers were not told to reload")

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
