"""Private: The old key's retirement after a grace period: when it is due and what is said about it.

After promotion the record keeps the rotation RUNNING at step ``promoted`` with
``grace_until``: the old key keeps working until then (consumers holding a copy reload in
the meantime), and a later run (``rotate resume``, ``rotate --if-due``, a new ``rotate``)
retires it: ``retiring`` (written before any provider call), ``old-disabled``,
``old-deleted``, ``done``. Pure: these functions read a record and a time; the engine acts.
"""

from __future__ import annotations

from datetime import datetime

from impromptu_ops.rotation.record import RotationRecord, State, Step, at_least


def waiting(rec: RotationRecord, now: datetime) -> bool:
    """Nothing to do yet: the retirement is pending, not due, and the reload hook (if
    any) has run. Such a run writes nothing."""
    return (rec.retirement_pending and not rec.retire_due(now)
            and (not rec.on_rotate or bool(rec.hook)))


def waiting_message(rec: RotationRecord) -> str:
    return (f"rotation {rec.rotation_id} of {rec.secret} is done but for the old key's "
            f"retirement, due at {rec.grace_until}: the old key keeps working until then; "
            "nothing to do yet")


def busy_message(rec: RotationRecord) -> str:
    """Why a NEW rotation must wait (exit 75)."""
    return (f"{rec.secret} was rotated by {rec.rotation_id}; its old key keeps working "
            f"until {rec.grace_until} (grace period) and a new rotation waits until that "
            "key is retired")


def grace_message(rec: RotationRecord, promoted_now: bool) -> str:
    head = (f"rotated {rec.secret} (the new key is current)" if promoted_now
            else f"rotation {rec.rotation_id} of {rec.secret} waits for its grace period")
    return (f"{head}; the old key keeps working until {rec.grace_until}, then "
            "`rotate resume` or the next `rotate --if-due` disables and deletes it")


def finished_message(rec: RotationRecord, promoted_now: bool) -> str:
    """The report of a run that reached ``done``: only what the provider confirmed."""
    head = (f"rotated {rec.secret}" if promoted_now
            else f"finished rotation {rec.rotation_id} of {rec.secret}")
    if rec.old.key_id:
        return f"{head}; the old key {rec.old.key_id} is deleted (confirmed by the provider)"
    return (f"{head}; the old key could not be identified at the provider, so it was NOT "
            "disabled or deleted: revoke it by hand")


def pending_retirement(rec: RotationRecord) -> str:
    """What ``rotate status`` says about the old key's retirement ("" when none)."""
    if rec.state != State.RUNNING or not at_least(rec.step, Step.PROMOTED):
        return ""
    key = rec.old.key_id or "(unidentified)"
    if rec.step == Step.PROMOTED:
        return (f"old key {key} works until {rec.grace_until or 'now'}; due then "
                "(`rotate resume` or the next `rotate --if-due` retires it)")
    return f"old key {key}: retirement in progress (last step {rec.step}); `rotate resume`"


def hook_facts(rec: RotationRecord) -> dict[str, str]:
    """The reload hook's environment facts: names and ids, never a key."""
    return {"IMPROMPTU_ROTATED_SECRET": rec.secret,
            "IMPROMPTU_ROTATION_ID": rec.rotation_id,
            "IMPROMPTU_ROTATION_PROVIDER": rec.provider,
            "IMPROMPTU_OLD_KEY_RETIRES_AT": rec.grace_until}
