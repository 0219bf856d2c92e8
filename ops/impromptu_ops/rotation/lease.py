"""Private: who may run a rotation: identities, the record's lease, and "busy".

Two runs must never drive one rotation at once. The local lock
(:class:`~impromptu_ops.locks.ProcessLock`) is the fast path on one machine; the record's
compare-and-set write is the real arbiter across machines. This module owns the rules for
taking a record over: a live process on this host keeps it; a silent owner on another
host keeps it until its lease runs out; a retirement that is due is anyone's job. It does
not know the steps (:mod:`.steps`) nor how a run is reported (:mod:`.outcome`).
"""

from __future__ import annotations

import os
import secrets as pysecrets
import socket
from datetime import datetime, timedelta

from impromptu_ops.errors import LockBusy
from impromptu_ops.rotation.record import RotationRecord, State, Step, at_least, parse_iso


class RotationBusy(LockBusy):
    """Another rotation holds the record (or waits out its grace period): try later."""


def default_owner() -> str:
    """``host:pid:nonce``: who holds a record (the nonce tells two runs of one pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{pysecrets.token_hex(4)}"


def new_rotation_id(now: datetime, installation: str) -> str:
    """``<installation>.<time>-<nonce>`` (see :func:`~.provider.rotation_scope`)."""
    return f"{installation}.{now.strftime('%Y%m%dt%H%M%S')}-{pysecrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def refuse_if_held(rec: RotationRecord, now: datetime, lease_seconds: float) -> None:
    """Raise :class:`RotationBusy` unless this run may take ``rec`` over now.

    Raises:
        RotationBusy: a live process on this host, or another host within its lease,
            holds the record.
    """
    if (rec.state == State.RUNNING and at_least(rec.step, Step.PROMOTED)
            and rec.grace_until and rec.retire_due(now)):
        return  # a due retirement: finishing it is anyone's job (each step is idempotent)
    host, _, rest = rec.owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit():
        if int(pid_text) != os.getpid() and pid_alive(int(pid_text)):
            raise RotationBusy(f"rotation {rec.rotation_id} is running (pid {pid_text})",
                               hint="exit 75 means 'try later'")
        return
    if now < parse_iso(rec.updated) + timedelta(seconds=lease_seconds):
        raise RotationBusy(
            f"rotation {rec.rotation_id} is held by {host} (last step {rec.updated})",
            hint="it is taken over after the lease; `rotate resume --force` if that host "
            "is gone")


__all__ = ["RotationBusy", "default_owner", "new_rotation_id", "pid_alive", "refuse_if_held"]
