"""What every scheduled job command shares, applied in one place: pings and "skipped".

The four scheduled jobs (``heartbeat``, ``rotate <provider> --if-due``, ``earnings
reconcile``, ``health``) live in modules owned by their features. :func:`apply` (called by
the CLI's group when it loads a command) wraps each of them, listed in :data:`JOB_COMMANDS`
by command path, without touching their code. The wrapper adds two options:

- ``--ping-url URL``: healthchecks-style pings (:mod:`impromptu_ops.jobs.ping`). Default:
  ``jobs.ping_url``, where ``{job}`` stands for the job's name. A command that already has
  ``--ping-url`` (heartbeat) keeps its option: the wrapper reads its value.
- ``--skipped-exit-code N``: the exit code of a skipped run (default 75). Schedulers that
  treat any non-zero exit as a failure (cron, launchd, Kubernetes) are generated with
  ``--skipped-exit-code 0``: the reason is still written to stderr (the log), and the run
  counts as done, so nothing alerts and nothing is retried.

It sends ``/start``, runs the command while keeping the last bytes of what it writes
(stdout, stderr, log records), then sends success, "skipped" (a success with the reason) or
``/fail`` with that tail, redacted. The job's exit code is preserved except for the skip
mapping above.
"""

from __future__ import annotations

import functools
import io
import logging
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

import click

from impromptu_ops.errors import OpsError
from impromptu_ops.jobs.ping import EXIT_SKIPPED, Pinger, job_url
from impromptu_ops.secret import REDACTOR

# command path (below the root) -> the job's name ({job} in jobs.ping_url, unit names)
JOB_COMMANDS: dict[tuple[str, ...], str] = {
    ("heartbeat",): "heartbeat",
    ("rotate", "impromptu"): "rotate",
    ("rotate", "openrouter"): "rotate-openrouter",
    ("rotate", "vault-secret-id"): "rotate-vault-secret-id",
    ("earnings", "reconcile"): "reconcile",
    ("health",): "health",
    ("fleet", "heartbeat"): "fleet-heartbeat",
    ("fleet", "rotate"): "fleet-rotate",
    ("fleet", "health"): "fleet-health",
}
_MARK = "_impromptu_scheduled_job"


class _Tail:
    """The last ``limit`` characters written, from every stream and log record of a run."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._parts: deque[str] = deque()
        self._size = 0

    def add(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        self._size += len(text)
        while self._size - len(self._parts[0]) >= self.limit:
            self._size -= len(self._parts.popleft())

    def text(self) -> str:
        return "".join(self._parts)[-self.limit:]


class _Tee(io.TextIOBase):
    """A text stream that writes through to ``inner`` and keeps a copy in the tail."""

    def __init__(self, inner: TextIO, tail: _Tail) -> None:
        self._inner = inner
        self._tail = tail

    def write(self, s: str) -> int:
        self._tail.add(s)
        return self._inner.write(s)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True


class _TailHandler(logging.Handler):
    def __init__(self, tail: _Tail) -> None:
        super().__init__(logging.INFO)
        self._tail = tail
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._tail.add(self.format(record) + "\n")
        except Exception:  # a log line must never break the job
            self.handleError(record)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code
    if isinstance(exc, OpsError):
        return exc.exit_code
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 1
    if isinstance(exc, click.ClickException):
        return exc.exit_code
    return 70


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "another run holds the lock, or the platform paused us"


def _pinger(job: str, url: str | None) -> Pinger | None:
    """The run's pinger, or None (no URL configured, or settings that do not load: the
    command itself then reports the configuration error)."""
    from impromptu_ops.cli.app import App

    ctx = click.get_current_context()
    app = ctx.find_object(App)
    try:
        settings = app.settings() if app is not None else None
    except OpsError:
        return None
    if settings is None:
        return None
    # an explicit --ping-url is this job's; the setting is shared, {job} tells them apart
    base = url.replace("{job}", job) if url else job_url(settings.jobs.ping_url, job)
    return Pinger.from_settings(base, settings.jobs) if base else None


def _wrap(callback: Callable[..., Any], job: str, own_ping_option: bool) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        skipped_code: int = kwargs.pop("skipped_exit_code")
        url = kwargs.get("ping_url") if own_ping_option else kwargs.pop("ping_url")
        pinger = _pinger(job, url)
        if pinger is None and skipped_code == EXIT_SKIPPED:
            return callback(*args, **kwargs)
        tail = _Tail(pinger.body_bytes if pinger else 4096)
        handler = _TailHandler(tail)
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(old_out, tail), _Tee(old_err, tail)
        logging.getLogger().addHandler(handler)
        code, error = 0, None
        try:
            if pinger:
                pinger.start()
            try:
                callback(*args, **kwargs)
            except (Exception, SystemExit) as exc:
                code, error = _exit_code(exc), exc
                if isinstance(exc, OpsError):
                    tail.add(exc.diagnostics() + "\n")  # main prints it after we return
                elif not isinstance(exc, click.exceptions.Exit | SystemExit | OpsError):
                    tail.add(f"{type(exc).__name__}: {exc}\n")
            except BaseException as exc:  # Ctrl-C, SIGTERM: say so, then unwind
                if pinger:
                    pinger.fail(143 if type(exc).__name__ == "Terminated" else 130,
                                REDACTOR.redact(tail.text() + "interrupted\n"))
                raise
        finally:
            logging.getLogger().removeHandler(handler)
            sys.stdout, sys.stderr = old_out, old_err
        output = REDACTOR.redact(tail.text())
        if code == EXIT_SKIPPED:
            if pinger:
                pinger.skipped(_last_line(output))
            if skipped_code != EXIT_SKIPPED:
                click.echo(REDACTOR.redact(
                    f"impromptu-ops {job}: skipped ({_last_line(output)}); exit "
                    f"{skipped_code} as asked by --skipped-exit-code"), err=True)
                raise click.exceptions.Exit(skipped_code)
        elif pinger and code == 0:
            pinger.success(output)
        elif pinger:
            pinger.fail(code, output)
        if error is not None:
            raise error
        return None

    return run


def scheduled(cmd: click.Command, job: str) -> click.Command:
    """Add the ping and skip options to ``cmd`` and wrap its callback (idempotent)."""
    if getattr(cmd, _MARK, False) or cmd.callback is None:
        return cmd
    names = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    own = "--ping-url" in names
    if not own:
        cmd.params.append(click.Option(
            ["--ping-url"], metavar="URL",
            help="Healthchecks-style URL: /start, then success (or skipped) or /fail with "
                 "the output. Default: jobs.ping_url ({job} = the job's name). A token: "
                 "prefer the config file to argv."))
    cmd.params.append(click.Option(
        ["--skipped-exit-code"], type=click.IntRange(0, 255), default=EXIT_SKIPPED,
        show_default=True, metavar="N",
        help="Exit code of a skipped run (lock held, or paused by RATE_003/BUDG_001). "
             "0 for schedulers that alert on any non-zero exit (cron, Kubernetes)."))
    cmd.callback = _wrap(cmd.callback, job, own)
    setattr(cmd, _MARK, True)
    return cmd


def apply(cmd: click.Command, path: tuple[str, ...]) -> None:
    """Wrap every job command at or below ``cmd`` (whose path is ``path``)."""
    job = JOB_COMMANDS.get(path)
    if job is not None:
        scheduled(cmd, job)
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            apply(sub, (*path, name))
