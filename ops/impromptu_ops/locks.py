"""Private: Non-blocking process locks for scheduled jobs.

A scheduler may start a job while the previous run still works (a slow network, a long
rotation). The second run must not wait and must not interfere: it takes an ``flock`` on a
lock file without blocking and, when it cannot, raises :class:`LockBusy` (exit 75,
EX_TEMPFAIL: "skipped, try later"). The kernel drops the lock when the process dies, even
by SIGKILL, so a crashed run never wedges the schedule.

Cross-machine exclusion (two hosts sharing Vault) is not this module's job: rotation uses
check-and-set on its record in the store for that.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from impromptu_ops.atomic import PRIVATE_DIR
from impromptu_ops.errors import LockBusy


class ProcessLock:
    """An exclusive, non-blocking ``flock`` held for the life of a ``with`` block.

    Args:
        path: the lock file; created 0600 if missing. Its content is the holder's pid
            (informational only: the lock is the flock, not the content).
        what: a name for the job, used in the LockBusy message.
    """

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockBusy` at once."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            finally:
                os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise LockBusy(
                f"another {self.what} run holds {self.path}{who}; skipped",
                hint="this is normal when runs overlap; exit 75 means 'try later'",
            ) from None
        # The pid is a note for a person (who holds it?), not the lock: the flock is. A
        # full disk must not turn into a failed run before the work even starts.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
