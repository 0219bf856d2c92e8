"""Private: reading a shell or Python file as code, in a forked child (parser isolation).

The parsers (tree-sitter, ``ast``) are C code fed hostile input: :func:`code_events` runs
them in a forked child that sends its events back as JSON and leaves with ``os._exit``, so
a crash or a hang becomes an ``unparseable`` finding (fail closed), not the death of the
gate. The child reads the file; it never executes or imports anything from it.
"""

from __future__ import annotations

import faulthandler
import json
import os
import select
import signal
import time
from collections.abc import Callable

from impromptu_ops.gate import python_code, shell
from impromptu_ops.gate.capabilities import CommandJudge
from impromptu_ops.gate.policy import Policy
from impromptu_ops.gate.vocabulary import Context, Event, code_kind


def context_of(policy: Policy) -> Context:
    """The capability judge's view of the policy's allowlists."""
    return Context(egress_allow=policy.egress_allow, key_hosts=policy.key_hosts,
                   persistence_allow=policy.persistence_allow)


def code_events(path: str, text: str, ctx: Context, *, timeout: float = 60.0) -> list[Event]:
    """Capability events of a shell or Python file (``[]`` for other files).

    The reading runs in a forked child (where ``fork`` exists): the parsers are C code fed
    hostile input, and a crash or a hang there must become a finding (``unparseable``,
    fail closed), not the death of the gate. ``timeout`` bounds the child's work.
    """
    kind = code_kind(path, text)
    if not kind:
        return []
    if not hasattr(os, "fork"):  # pragma: no cover - every platform we support forks
        return _read_code(kind, text, ctx)
    events = _in_child(lambda: _read_code(kind, text, ctx), timeout)
    if events is None:
        return [Event("unparseable", 0, frozenset({0}),
                      "reading this file as code crashed or timed out: the gate cannot "
                      "tell what it runs (fail closed)")]
    return events


def _read_code(kind: str, text: str, ctx: Context) -> list[Event]:
    judge = CommandJudge(ctx)
    judge.run_shell = lambda t, line, depth: shell.analyse(t, judge, line, depth)
    judge.run_python = lambda t, line, depth: python_code.analyse(t, judge, line, depth)
    (shell.analyse if kind == "shell" else python_code.analyse)(text, judge)
    return judge.events


def _in_child(work: Callable[[], list[Event]], timeout: float) -> list[Event] | None:
    """``work()`` run in a forked child; ``None`` if it crashed, failed or ran too long."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: do the work, send JSON, leave without running any cleanup
        code = 1
        try:
            os.close(rfd)
            faulthandler.disable()  # a crash here is reported by the parent, in one line
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
            body = json.dumps([[e.cls, e.line, sorted(e.lines), e.message]
                               for e in work()]).encode("utf-8")
            view = memoryview(body)
            while view:
                view = view[os.write(wfd, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([rfd], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                break
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        _pid, status = os.waitpid(pid, 0)
    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
        return None
    try:
        rows = json.loads(b"".join(chunks))
        return [Event(str(c), int(line), frozenset(int(x) for x in lines), str(m))
                for c, line, lines, m in rows]
    except (ValueError, TypeError):
        return None
