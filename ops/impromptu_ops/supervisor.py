"""Private: The supervising parent of ``secrets exec``: start, forward, restart, pass the status on.

``secrets exec`` used to replace itself with the command. It now stays as the command's
parent, as Vault Agent's process supervisor mode and ``doppler run`` do, because only a
parent can mask what the child prints (:mod:`impromptu_ops.childio`), clean up secret
files, and restart the child when its secrets change:

- **start**: the child gets the delivered secrets (environment or private files) and our
  environment minus the store's credentials (:mod:`impromptu_ops.store.childenv`). It is
  asked to receive SIGTERM should this parent die (``PR_SET_PDEATHSIG``, Linux).
- **signals**: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are forwarded to the
  child; SIGWINCH resizes its pseudo-terminal. When the child uses our own terminal it
  stays in our process group, so the keyboard's SIGINT/SIGQUIT reach it directly and are
  not sent a second time. A stop signal (TERM, INT, HUP, QUIT) also ends any restarting.
- **exit status**: the child's exit code is ours; a child ended by signal N is reported
  (:class:`ChildExit`) and the CLI exits 128+N, as a shell does.
- **restart on change** (opt-in): every ``poll_seconds`` the store's current version of
  each delivered secret is read (metadata only: KV v2 ``current_version``, the local
  store's version). When one is newer, the new values are fetched *first* (if that fails
  the running child is left alone), then the child gets SIGTERM, up to ``stop_timeout``
  to exit, SIGKILL after that, and is started again with the new values. One line per
  restart is reported through ``notify`` (names and versions, never values).

It does not choose the secrets nor open the store: the CLI passes ``fetch`` (read the
values) and ``versions`` (read the current versions) in, so the loop is testable alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from impromptu_ops.childio import ChildIO
from impromptu_ops.errors import InputError, OpsError
from impromptu_ops.store import childenv
from impromptu_ops.store.childenv import Delivery

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)
STOPPING = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT})
KEYBOARD = frozenset({signal.SIGINT, signal.SIGQUIT})
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ExecOptions:
    """How to run the command.

    Attributes:
        argv: the command.
        masking: mask the child's output (:mod:`impromptu_ops.childio`).
        files_parent: deliver as files in a private folder inside this one (None: env).
        restart_on_change: watch the store and restart the child on a new version.
        poll_seconds, stop_timeout, drain_seconds, quiet_seconds: see
            ``settings.ExecSettings``.
    """

    argv: Sequence[str]
    masking: bool = True
    files_parent: Path | None = None
    restart_on_change: bool = False
    poll_seconds: float = 1.0
    stop_timeout: float = 10.0
    drain_seconds: float = 2.0
    quiet_seconds: float = 0.1


@dataclass(frozen=True)
class ChildExit:
    """How the (last) child ended: ``code`` when it exited, ``signal`` when killed."""

    code: int
    signal: int | None = None

    @property
    def exit_code(self) -> int:
        """Ours: the child's code, or 128+N for signal N."""
        return 128 + self.signal if self.signal is not None else self.code


def _child_setup(ctty_fd: int | None) -> Callable[[], None]:
    """Runs in the child between fork and exec: die with the parent; take the pty."""

    def setup() -> None:
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if ctty_fd is not None:  # without it the child still runs, without job control
            import fcntl
            import termios

            with contextlib.suppress(OSError):
                fcntl.ioctl(ctty_fd, termios.TIOCSCTTY, 0)

    return setup


class Supervisor:
    """Runs one command under ``secrets exec``; see the module docstring.

    Args:
        options: what to run and how.
        fetch: read the secrets to deliver (called at start and before each restart).
        versions: read ``{name: current version}`` of the given names (cheap: metadata).
        notify: one line for a person (restarts, store trouble); never a value.
        base_env: the environment the child starts from (default ``os.environ``).
    """

    def __init__(self, options: ExecOptions, fetch: Callable[[], Delivery],
                 versions: Callable[[Sequence[str]], Mapping[str, int]],
                 notify: Callable[[str], None],
                 base_env: Mapping[str, str] | None = None) -> None:
        if not options.argv:
            raise InputError("no command given: use `secrets exec -- COMMAND ...`")
        self._opt = options
        self._fetch = fetch
        self._versions = versions
        self._notify = notify
        self._base_env = dict(os.environ if base_env is None else base_env)
        self._signals: list[int] = []
        self._child: subprocess.Popen[bytes] | None = None
        self._folder: Path | None = None
        self._stopping = False
        self._store_trouble = False

    # -- the public loop -------------------------------------------------------------------
    def run(self) -> ChildExit:
        """Start the command and supervise it until it (or its last restart) ends.

        Raises:
            InputError: the command cannot be started; secrets cannot be read at start
                (the errors of ``fetch``).
        """
        delivery = self._fetch()
        io = ChildIO(self._opt.masking, _encoded(delivery),
                     quiet_seconds=self._opt.quiet_seconds)
        selector = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        selector.register(wake_r, selectors.EVENT_READ, "wake")
        previous: dict[signal.Signals, Any] = {}
        old_wakeup = -1
        try:
            for sig in (*FORWARDED, signal.SIGWINCH, signal.SIGCHLD):
                previous[sig] = signal.signal(sig, self._on_signal)
            old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            io.start(selector)
            stop = self._stop_signal(io)
            if stop is not None:  # stopped before the child existed: do not start it
                self._notify(f"stopped by {signal.Signals(stop).name} before the command "
                             "started")
                return ChildExit(128 + stop)
            self._start(io, delivery)
            return self._loop(io, selector, wake_r, delivery)
        finally:
            if self._child is not None and self._child.poll() is None:
                self._child.kill()  # only reached on our own error: never leave it behind
                self._child.wait()
            io.finish(selector, time.monotonic() + self._opt.drain_seconds)
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._remove_folder()
            selector.close()
            os.close(wake_r)
            os.close(wake_w)

    def _stop_signal(self, io: ChildIO) -> int | None:
        stops = [s for s in self._signals if s in STOPPING]
        self._handle_signals(io)
        return stops[0] if stops else None

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals.append(signum)

    # -- the loop --------------------------------------------------------------------------
    def _loop(self, io: ChildIO, selector: selectors.BaseSelector, wake_r: int,
              delivery: Delivery) -> ChildExit:
        child = self._child
        assert child is not None
        next_poll = time.monotonic() + self._opt.poll_seconds
        kill_at: float | None = None  # set while a restart waits for the old child
        pending: Delivery | None = None
        while True:
            now = time.monotonic()
            waits = [t for t in (kill_at, io.next_release()) if t is not None]
            if self._opt.restart_on_change and pending is None and not self._stopping:
                waits.append(next_poll)
            timeout = max(0.0, min(waits) - now) if waits else 1.0
            for key, _ in selector.select(min(timeout, 1.0)):
                if key.data == "wake":
                    with contextlib.suppress(BlockingIOError):
                        while os.read(wake_r, 512):
                            pass
                else:
                    io.on_ready(selector, int(key.fd))
            io.release_quiet(selector, time.monotonic())
            self._handle_signals(io)
            code = child.poll()
            if code is not None:
                if pending is None or self._stopping:
                    return ChildExit(code, None) if code >= 0 else ChildExit(128 - code, -code)
                self._remove_folder()
                io.add_values(_encoded(pending))
                self._start(io, pending)
                child, delivery, pending, kill_at = self._child, pending, None, None
                assert child is not None
                next_poll = time.monotonic() + self._opt.poll_seconds
                continue
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                self._notify(f"the command did not stop within {self._opt.stop_timeout:g}s "
                             "of SIGTERM: sending SIGKILL")
                child.kill()
                kill_at = None
            if (self._opt.restart_on_change and pending is None and not self._stopping
                    and now >= next_poll):
                next_poll = now + self._opt.poll_seconds
                pending = self._check_for_change(delivery)
                if pending is not None:
                    child.send_signal(signal.SIGTERM)
                    kill_at = time.monotonic() + self._opt.stop_timeout

    def _handle_signals(self, io: ChildIO) -> None:
        caught, self._signals = self._signals, []  # a handler now appends to the new list
        child = self._child
        for signum in caught:
            if signum == signal.SIGCHLD:
                continue
            if signum == signal.SIGWINCH:
                io.resize()
                continue
            if signum in STOPPING:
                self._stopping = True
            if signum in KEYBOARD and io.child_uses_our_terminal:
                continue  # the terminal sent it to the child's (our) process group already
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    def _check_for_change(self, delivery: Delivery) -> Delivery | None:
        """The new delivery when a delivered secret has a newer version, else None."""
        try:
            now = self._versions(list(delivery.versions))
            changed = [(name, old, now.get(name, 0)) for name, old in delivery.versions.items()
                       if now.get(name, 0) > old]
            if not changed:
                self._store_trouble = False
                return None
            fresh = self._fetch()
        except OpsError as exc:
            if not self._store_trouble:  # once per outage, not once per poll
                self._notify(f"cannot check the store for new versions ({exc.diagnostics()}); "
                             "the command keeps running with the values it has")
            self._store_trouble = True
            return None
        self._store_trouble = False
        what = ", ".join(f"{name} v{old} -> v{new}" for name, old, new in changed)
        self._notify(f"new version of {what}: restarting the command (SIGTERM, then "
                     f"SIGKILL after {self._opt.stop_timeout:g}s)")
        return fresh

    # -- starting --------------------------------------------------------------------------
    def _start(self, io: ChildIO, delivery: Delivery) -> None:
        extra = {k: v.reveal() for k, v in delivery.values.items()}
        if self._opt.files_parent is not None:
            self._folder = childenv.private_folder(self._opt.files_parent)
            extra = childenv.write_secret_files(self._folder, delivery.values)
        env = childenv.child_environment(self._base_env, extra)
        stdin, stdout, stderr = io.child_fds
        own_group = not io.child_uses_our_terminal
        try:
            self._child = subprocess.Popen(  # the operator's own command
                list(self._opt.argv), env=env, stdin=stdin, stdout=stdout, stderr=stderr,
                start_new_session=io.uses_pty,
                process_group=0 if own_group and not io.uses_pty else None,
                preexec_fn=_child_setup(io.ctty_fd))  # noqa: PLW1509 - single-threaded
        except (OSError, subprocess.SubprocessError) as exc:  # as before: exit 65, one line
            self._remove_folder()
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise InputError(f"cannot run {self._opt.argv[0]!r}: {why}") from None

    def _remove_folder(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _encoded(delivery: Delivery) -> list[bytes]:
    return [v.reveal().encode("utf-8") for v in delivery.values.values()]
