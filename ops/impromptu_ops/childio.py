"""Private: The child's standard streams under ``secrets exec``: pipes or a pseudo-terminal, masked.

One :class:`ChildIO` is built per ``secrets exec`` and shared by every start of the child
(a restart reuses the same pipes or terminal, so output order is kept across restarts):

- **no masking** (``--no-masking``): the child inherits our stdin, stdout and stderr.
- **masking, not a terminal** (a pipe, a file, the journal): the child's stdout and stderr
  are pipes; we read them, pass each through its own :class:`~impromptu_ops.masking.
  StreamMasker` and write to our stdout and stderr.
- **masking, on a terminal**: a stream of ours that is a terminal is replaced by a
  pseudo-terminal (one pty for stdout and stderr when both are terminals, as ``script``
  does), so the child keeps its terminal behaviour (colours, line buffering, progress
  bars). Its window size follows ours (SIGWINCH). When our stdin is the terminal too, the
  child's stdin is the pty and our terminal is put in raw mode (restored at the end), so
  keystrokes, Ctrl-C included, reach the child through its own terminal.

A stream of ours that is closed (``| head``) is dropped: we close our reading end, so the
child sees EPIPE/SIGPIPE as it would without us. This module owns file descriptors and
terminal modes; it does not start processes (:mod:`impromptu_ops.supervisor` does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import selectors
import termios
import time
import tty
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from impromptu_ops.masking import StreamMasker

READ_CHUNK = 64 * 1024


@dataclass
class _Pump:
    """One stream we read from the child and write on, masked."""

    source: int
    target: int
    masker: StreamMasker | None
    quiet_since: float = 0.0  # when its last bytes arrived
    looked: bool = True  # the held tail was looked at since they arrived


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class ChildIO:
    """The child's stdin/stdout/stderr and the pumps that mask them.

    Args:
        masking: mask the child's output (else the child inherits our streams).
        values: the delivered values to conceal.
        stdin, stdout, stderr: our own descriptors (0, 1, 2; injectable for tests).
    """

    def __init__(self, masking: bool, values: Iterable[bytes] = (), *, stdin: int = 0,
                 stdout: int = 1, stderr: int = 2, quiet_seconds: float = 0.1) -> None:
        self._ours = (stdin, stdout, stderr)
        self._quiet = quiet_seconds
        self._pumps: dict[int, _Pump] = {}
        self._child_ends: list[int] = []
        self._master: int | None = None
        self._slave: int | None = None
        self._saved_mode: list[Any] | None = None
        self._relay_stdin = False
        self.child_fds: tuple[int | None, int | None, int | None] = (None, None, None)
        self.ctty_fd: int | None = None  # the std fd (0/1/2) that is the pty in the child
        if not masking:
            return
        values = list(values)
        use_pty = [_isatty(stdout), _isatty(stderr)]
        if any(use_pty):
            self._open_pty(stdout if use_pty[0] else stderr, values)
        fds: list[int | None] = [None, None, None]
        for index, ours in ((1, stdout), (2, stderr)):
            if use_pty[index - 1]:
                fds[index] = self._slave
            else:
                read_end, write_end = os.pipe()
                self._pumps[read_end] = _Pump(read_end, ours, StreamMasker(values))
                self._child_ends.append(write_end)
                fds[index] = write_end
        if self._master is not None and _isatty(stdin):
            fds[0] = self._slave
            self._relay_stdin = True
        self.child_fds = (fds[0], fds[1], fds[2])
        if self._slave is not None:
            self.ctty_fd = next(i for i, fd in enumerate(fds) if fd == self._slave)

    @property
    def uses_pty(self) -> bool:
        return self._master is not None

    @property
    def child_uses_our_terminal(self) -> bool:
        """True when the child inherits a stream of ours that is a terminal (not a pty of
        ours): it must then stay in our process group, the terminal's foreground, or
        reading it (or changing its mode) would stop it with SIGTTIN/SIGTTOU."""
        return any(fd is None and _isatty(ours) for fd, ours in zip(self.child_fds,
                                                                    self._ours, strict=True))

    def _open_pty(self, terminal: int, values: list[bytes]) -> None:
        master, slave = os.openpty()
        self._master, self._slave = master, slave
        self._child_ends.append(slave)
        with contextlib.suppress(termios.error):  # start from the user's terminal settings
            termios.tcsetattr(slave, termios.TCSANOW, termios.tcgetattr(terminal))
        self._pumps[master] = _Pump(master, terminal, StreamMasker(values))
        self.resize()

    def start(self, selector: selectors.BaseSelector) -> None:
        """Register our reading ends; enter raw mode when relaying the terminal."""
        for fd in self._pumps:
            selector.register(fd, selectors.EVENT_READ, "out")
        if self._relay_stdin:
            stdin = self._ours[0]
            with contextlib.suppress(termios.error):
                saved = termios.tcgetattr(stdin)
                tty.setraw(stdin, termios.TCSANOW)
                raw = termios.tcgetattr(stdin)
                raw[1] = saved[1]  # keep output processing: our own notes end lines properly
                termios.tcsetattr(stdin, termios.TCSANOW, raw)
                self._saved_mode = saved
            selector.register(stdin, selectors.EVENT_READ, "in")

    def add_values(self, values: Iterable[bytes]) -> None:
        """Conceal these values too (after a restart with new keys)."""
        values = list(values)
        for pump in self._pumps.values():
            if pump.masker is not None:
                pump.masker.add(values)

    def resize(self) -> None:
        """Give the pty our terminal's window size (the kernel then signals the child)."""
        if self._master is None:
            return
        for fd in self._ours:
            if _isatty(fd):
                with contextlib.suppress(OSError):
                    size = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
                    fcntl.ioctl(self._master, termios.TIOCSWINSZ, size)
                return

    def on_ready(self, selector: selectors.BaseSelector, fd: int) -> None:
        """Move what ``fd`` has; drop a stream at its end or when its target is gone."""
        if fd == self._ours[0] and self._relay_stdin:
            data = self._read(fd)
            if not data:
                selector.unregister(fd)
                self._relay_stdin = False
                return
            if self._master is not None:
                with contextlib.suppress(OSError):
                    _write_all(self._master, data)
            return
        pump = self._pumps.get(fd)
        if pump is None:
            return
        data = self._read(fd)
        if not data:
            self._drop(selector, pump, flush=True)
            return
        pump.quiet_since, pump.looked = time.monotonic(), False
        self._emit(selector, pump, pump.masker.feed(data) if pump.masker else data)

    def next_release(self) -> float | None:
        """When a held tail should be looked at again (None: nothing is held)."""
        held = [p.quiet_since + self._quiet for p in self._pumps.values()
                if p.masker is not None and p.masker.pending and not p.looked]
        return min(held) if held else None

    def release_quiet(self, selector: selectors.BaseSelector, now: float) -> None:
        """Write out what a quiet stream holds, where that reveals no secret."""
        for pump in list(self._pumps.values()):
            if (pump.masker is not None and pump.masker.pending and not pump.looked
                    and now >= pump.quiet_since + self._quiet):
                pump.looked = True  # once per quiet spell: a secret's start stays held
                self._emit(selector, pump, pump.masker.release())

    def close_child_ends(self) -> None:
        """The last child has ended: close our copies so the streams reach their end."""
        for fd in self._child_ends:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._child_ends.clear()

    def finish(self, selector: selectors.BaseSelector, deadline: float) -> None:
        """Read what the child left until every stream ends or ``deadline`` passes
        (a grandchild may hold a pipe open), then release every held tail, masked."""
        self.close_child_ends()
        if self._relay_stdin:  # nobody left to type to
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(self._ours[0])
            self._relay_stdin = False
        while self._pumps and time.monotonic() < deadline:
            events = selector.select(max(0.0, deadline - time.monotonic()))
            for key, _ in events:
                if key.data == "out":
                    self.on_ready(selector, int(key.fd))
        for pump in list(self._pumps.values()):
            self._drop(selector, pump, flush=True)
        self.restore()

    def restore(self) -> None:
        """Put our terminal back as it was (idempotent)."""
        if self._saved_mode is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self._ours[0], termios.TCSADRAIN, self._saved_mode)
            self._saved_mode = None

    # -- internals -------------------------------------------------------------------------
    @staticmethod
    def _read(fd: int) -> bytes:
        try:
            return os.read(fd, READ_CHUNK)
        except OSError as exc:  # EIO: the pty has no slave left
            if exc.errno in (errno.EIO, errno.EBADF):
                return b""
            raise

    def _emit(self, selector: selectors.BaseSelector, pump: _Pump, data: bytes) -> None:
        if not data:
            return
        try:
            _write_all(pump.target, data)
        except OSError:  # our reader went away: let the child notice, as without us
            self._drop(selector, pump, flush=False)

    def _drop(self, selector: selectors.BaseSelector, pump: _Pump, flush: bool) -> None:
        if self._pumps.pop(pump.source, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(pump.source)
        if flush and pump.masker is not None:
            with contextlib.suppress(OSError):
                _write_all(pump.target, pump.masker.flush())
        if pump.source == self._master:  # no terminal left to show it on: hang it up
            self._master = None
            self._relay_stdin = False
        with contextlib.suppress(OSError):
            os.close(pump.source)
