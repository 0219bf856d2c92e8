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
   retirement not yet due stops here (``DONE``) and a later run (``rotate resume``,
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

This module owns the ordering and the recovery rules: the entry points (start, resume,
roll back) and the loop that rides out a brief store outage. The pieces live beside it:
:mod:`.lease` (who may run), :mod:`.steps` (what each step does), :mod:`.report` and
:mod:`.outcome` (what a run says), :mod:`.run` (the run's state), :mod:`.crash` (the one
test-hook seam). They stack as one class, each layer with one job:
``RunState`` -> ``Reporting`` -> ``Steps`` -> :class:`Rotator`. None of them knows HTTP or
Vault: they talk to a :class:`~impromptu_ops.rotation.provider.Provider` and a
:class:`~impromptu_ops.store.base.SecretStore`, both injected.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from impromptu_ops.errors import CasConflict, LockBusy, OpsError, StoreUnavailable
from impromptu_ops.locks import ProcessLock
from impromptu_ops.rotation import retire
from impromptu_ops.rotation.lease import RotationBusy, new_rotation_id
from impromptu_ops.rotation.outcome import Outcome, Verdict, record_view
from impromptu_ops.rotation.provider import RotationUnsupported
from impromptu_ops.rotation.record import (
    KeyInfo,
    RotationRecord,
    State,
    Step,
    at_least,
    fingerprint,
    iso,
)
from impromptu_ops.rotation.steps import Steps


class Rotator(Steps):
    """Runs the rotation of one provider's key (arguments: :class:`~.run.RunState`)."""

    def start(self, *, dry_run: bool = False) -> Outcome:
        """Rotate now (or finish an abandoned rotation first).

        Raises:
            LockBusy, RotationBusy, CasConflict: another rotation holds it (try later).
            RotationUnsupported: the provider cannot rotate (the caller reports the expiry).
        """
        with ProcessLock(self.lock_path, f"rotate {self.provider.name}"):
            rec, ver = self.records.load(self.provider.name)
            self.hooks.reached("loaded")  # test-only: two runs meet here, then race to the CAS
            before = ""
            if rec is not None and rec.active:
                waiting = self._waiting(rec)
                if waiting is not None:
                    if dry_run:
                        return dataclasses.replace(waiting, message="dry run: " + waiting.message)
                    raise RotationBusy(retire.busy_message(rec), hint=(
                        "after that time this command (or `rotate resume`) retires it "
                        "first; exit 75 means 'try later'"))
                self._refuse_if_held(rec)
                if dry_run:
                    return self._outcome(Verdict.DONE, "dry run: would resume the unfinished "
                                         f"rotation {rec.rotation_id} from {rec.step}", rec)
                self._rec, self._ver = rec, ver
                self._claim()
                self._log("resume", takeover_from=rec.owner)
                retiring = rec.state == State.RUNNING and at_least(rec.step, Step.PROMOTED)
                out = self._continue()
                if not (retiring and out.verdict is Verdict.DONE
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
                return Outcome(Verdict.DONE, self.provider.name,
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
                return self._outcome(Verdict.DONE, "no rotation to resume", rec)
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
                return self._outcome(Verdict.DONE, "no rotation to roll back", rec)
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
                    Verdict.KEY_AT_RISK if at_risk else Verdict.FAILED_SAFE,
                    f"cannot roll back rotation {rec.rotation_id}: it is past the point of no "
                    f"return (the old key's retirement began at step {rec.step}; it may be "
                    f"disabled or revoked, so it is never restored); {note}; run "
                    "`impromptu-ops rotate resume` to finish", self.rec)
            try:
                self._rollback("operator asked")
            except OpsError as exc:
                return self._failed(exc)
            return self._outcome(Verdict.DONE, "rolled back: the old key is current again",
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
                return self._outcome(Verdict.DONE, "rolled back: the old key is current again",
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


__all__ = ["Outcome", "RotationBusy", "RotationUnsupported", "Rotator", "Verdict"]
