"""Private: Hash-chained, append-only JSON-lines audit logs.

Rotation and the update gate record every step here. Each line is a JSON object with the
event's fields plus ``seq``, ``ts``, ``prev`` (the previous line's hash) and ``hash`` (the
SHA-256 of the canonical JSON of the line without ``hash``). Editing, dropping or reordering
a line breaks the chain, and :func:`verify` names the first bad line.

Values must never be secrets: callers pass ids, hashes, masked forms. As a second line of
defence every string is passed through the process redactor before it is written.

Appends are ``O_APPEND`` writes of one line followed by fsync, under an ``flock`` so two
processes cannot interleave or fork the chain.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from impromptu_ops.atomic import PRIVATE_DIR
from impromptu_ops.errors import IntegrityError
from impromptu_ops.secret import REDACTOR

GENESIS = "0" * 64
# Far beyond any real log (an entry is a few hundred bytes); a larger file, or a longer
# line, is damage or an attack (a 3 GiB sparse file of zeros is one endless line).
MAX_LOG_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return REDACTOR.redact(value)
    if isinstance(value, Mapping):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def line_hash(entry: Mapping[str, Any]) -> str:
    """The hash of one entry: SHA-256 over its canonical JSON without the ``hash`` key."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify`."""

    ok: bool
    entries: int
    first_bad_line: int | None = None
    reason: str = ""


def _require_regular(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"audit log {path} is not a regular file")
    if st.st_size > MAX_LOG_BYTES:
        raise IntegrityError(f"audit log {path} is implausibly large ({st.st_size} bytes)",
                             hint="keep it as evidence and start a new log beside it")


def _lines(fh: Any, path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for each line, refusing a line longer than any entry."""
    lineno = 0
    while True:
        raw = fh.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > MAX_LINE_BYTES:
            raise IntegrityError(f"audit log {path} line {lineno} is implausibly long")
        yield lineno, raw


class AuditLog:
    """One hash-chained log file.

    Args:
        path: the log file (created 0600, folder 0700).
        clock: returns the current time (injected for tests).
    """

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self._clock = clock or (lambda: datetime.now(UTC))

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event; returns the entry as written."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK
                     | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            _require_regular(fd, self.path)
            fcntl.flock(fd, fcntl.LOCK_EX)
            prev, seq = GENESIS, 0
            with open(os.dup(fd), "rb") as fh:  # the very file we locked, from its start
                fh.seek(0)
                for lineno, raw in _lines(fh, self.path):
                    if raw.strip():
                        try:
                            last = json.loads(raw)
                            prev, seq = str(last["hash"]), int(last["seq"]) + 1
                        except (ValueError, KeyError, TypeError, RecursionError):
                            raise IntegrityError(
                                f"audit log {self.path} line {lineno} is not an entry; "
                                "refusing to extend a damaged log",
                                hint="run `update log --verify` and keep the file as evidence",
                            ) from None
            entry: dict[str, Any] = {
                "seq": seq,
                "ts": self._clock().astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "event": event,
                **_scrub(fields),
                "prev": prev,
            }
            entry["hash"] = line_hash(entry)
            os.write(fd, _canonical(entry) + b"\n")
            os.fsync(fd)
            return entry
        finally:
            os.close(fd)

    def _reader(self) -> BinaryIO | None:
        """The log opened for reading without blocking (``None`` when there is none)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        try:
            _require_regular(fd, self.path)
        except BaseException:
            os.close(fd)
            raise
        return open(fd, "rb")

    def entries(self) -> Iterator[dict[str, Any]]:
        """Yield the entries in order (no verification; see :func:`verify`)."""
        reader = self._reader()
        if reader is None:
            return
        with reader as fh:
            for lineno, raw in _lines(fh, self.path):
                if raw.strip():
                    try:
                        yield json.loads(raw)
                    except (ValueError, RecursionError):
                        raise IntegrityError(f"audit log {self.path} line {lineno} is not "
                                             "JSON", hint="run `update log --verify`") from None

    def lines(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(line number, parsed value)`` for each non-blank line; the value is
        ``ValueError`` when the line is not JSON (so listings can show it, not stop)."""
        reader = self._reader()
        if reader is None:
            return
        with reader as fh:
            for lineno, raw in _lines(fh, self.path):
                if not raw.strip():
                    continue
                try:
                    yield lineno, json.loads(raw)
                except RecursionError:
                    yield lineno, ValueError("nested too deeply")
                except ValueError as exc:
                    yield lineno, exc

    def verify(self) -> ChainReport:
        """Check every line's hash and link; report the first break."""
        prev, n = GENESIS, 0
        for lineno, entry in self.lines():
            if isinstance(entry, ValueError):
                return ChainReport(False, n, lineno, "not JSON")
            if not isinstance(entry, dict):
                return ChainReport(False, n, lineno, "not an object")
            if entry.get("prev") != prev:
                return ChainReport(False, n, lineno, "broken link to the previous line")
            if entry.get("hash") != line_hash(entry):
                return ChainReport(False, n, lineno, "hash does not match the content")
            if entry.get("seq") != n:
                return ChainReport(False, n, lineno, "sequence gap")
            prev, n = entry["hash"], n + 1
        return ChainReport(True, n)

    def require_intact(self) -> int:
        """Raise :class:`IntegrityError` unless the chain verifies; return the entry count."""
        rep = self.verify()
        if not rep.ok:
            raise IntegrityError(
                f"audit log {self.path} is broken at line {rep.first_bad_line}: {rep.reason}"
            )
        return rep.entries
