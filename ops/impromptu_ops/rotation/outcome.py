"""What a rotation run achieved: a verdict (not an exit code) and the facts to report.

The core says what happened (:class:`Verdict`); the CLI (``cli/rotate.py``) maps each
verdict to the exit code schedulers see. This module owns those values and the record's
public view; it does not decide anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from impromptu_ops.errors import BudgetExhausted, CasConflict, LockBusy, OpsError, RateLimited
from impromptu_ops.rotation import retire
from impromptu_ops.rotation.record import RotationRecord, Step, at_least


class Verdict(enum.Enum):
    """How one run ended, for the caller to act on."""

    DONE = "done"  # done, nothing to do yet, or not supported (the report says why)
    BUSY = "busy"  # another rotation holds the lock or the record: try later
    FAILED_SAFE = "failed-safe"  # failed; the agent still has a working key
    KEY_AT_RISK = "key-at-risk"  # the agent may be without a working key: page someone


# Worst first: how several outcomes (``resume`` of every provider) combine into one.
SEVERITY = (Verdict.KEY_AT_RISK, Verdict.FAILED_SAFE, Verdict.BUSY, Verdict.DONE)


def worst(verdicts: list[Verdict]) -> Verdict:
    """The most serious of ``verdicts`` (``FAILED_SAFE`` when there are none)."""
    return next((v for v in SEVERITY if v in verdicts), Verdict.FAILED_SAFE)


# Errors that mean "someone else holds it, or the platform asks us to wait": try later.
TRY_LATER = (LockBusy, CasConflict, RateLimited, BudgetExhausted)


def try_later(exc: OpsError) -> bool:
    """Does ``exc`` mean ``BUSY`` (try later) rather than a failure?"""
    return isinstance(exc, TRY_LATER)


@dataclass(frozen=True)
class Outcome:
    """What one ``rotate`` / ``resume`` / ``rollback`` run achieved, for the CLI to render."""

    verdict: Verdict
    provider: str
    message: str
    rotation_id: str = ""
    state: str = ""
    step: str = ""
    grace_until: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.DONE

    def as_dict(self) -> dict[str, Any]:
        view = {k: getattr(self, k) for k in self.__dataclass_fields__}
        view["verdict"] = self.verdict.value
        return view


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


__all__ = ["SEVERITY", "TRY_LATER", "Outcome", "Verdict", "record_view", "try_later", "worst"]
