"""Private: how a failed run is reported: check the current key just now, salvage it if refused.

A run that fails says only what it has checked: :meth:`Reporting.probe` asks the
provider whether the store's current key works NOW, and when the provider refuses it, a
key of the rotation that works is made current again (:mod:`.salvage`) before the report
says anything. The verdict is ``KEY_AT_RISK`` only on positive evidence.
"""

from __future__ import annotations

import contextlib
import dataclasses

from impromptu_ops.errors import AuthError, OpsError, SecretNotFound
from impromptu_ops.rotation import salvage
from impromptu_ops.rotation.keycheck import KeyCheck, KeyVerdict
from impromptu_ops.rotation.outcome import Outcome, Verdict
from impromptu_ops.rotation.record import State, Step, at_least, fingerprint
from impromptu_ops.rotation.run import RunState
from impromptu_ops.secret import clip


class Reporting(RunState):
    """The failure report of a run (see the module docstring)."""

    def _failed(self, exc: OpsError) -> Outcome:
        line = exc.diagnostics()
        with contextlib.suppress(OpsError):  # the record keeps its step; the text is a bonus
            self._save(self.rec.evolve(error=clip(line, 500)))
        self._log("failed", error=line)
        at_risk, note = self._secure_current()
        code = Verdict.KEY_AT_RISK if at_risk else Verdict.FAILED_SAFE
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
        if verdict.verdict is KeyVerdict.OK:
            return False, "the agent still has a working key (checked just now)"
        if verdict.verdict is not KeyVerdict.REFUSED:
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
            return KeyCheck(KeyVerdict.REFUSED, exc.diagnostics())
        except OpsError as exc:
            return KeyCheck(KeyVerdict.UNKNOWN, exc.diagnostics())
        return KeyCheck(KeyVerdict.OK)
