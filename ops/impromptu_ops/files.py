"""Private: Reading local files that may be hostile: one way, used for every file we read.

A path an operator (or an attacker with write access to a folder) points us at can be a
folder, a FIFO that blocks ``open()`` forever, a device that never ends, a symlink into
``/proc``, or a regular file of gigabytes. :func:`read_regular` opens with ``O_NONBLOCK``
(so a FIFO cannot hang the open), then checks the *opened* descriptor with ``fstat`` (no
window between a check and the use), refuses anything that is not a regular file, and
reads at most ``limit`` bytes. Every failure is one :class:`~impromptu_ops.errors.OpsError`
of the class the caller chooses (a config file is a :class:`ConfigError`, the store a
:class:`StoreError`, an operator's input file an :class:`InputError`) with the path in it.

:func:`parse_json` and :func:`parse_toml` turn the parsers' own failures (including the
``RecursionError`` of a deeply nested document) into the same kind of error.

:func:`os_failure` maps an ``OSError`` from a write (disk full, read-only, permissions) to
:class:`~impromptu_ops.errors.LocalIOError` (exit 74) naming the path.

This module owns the read discipline; the write discipline is :mod:`impromptu_ops.atomic`.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from impromptu_ops.errors import InputError, LocalIOError, OpsError

# Size caps of the small files we read (a larger one is refused, never cut): policies and
# templates, and our own state files. Callers with a format of their own pass their own.
MAX_POLICY_BYTES = 1024 * 1024
MAX_STATE_BYTES = 16 * 1024 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_optional(path: Path, *, what: str, limit: int, error: type[OpsError] = InputError,
                  nofollow: bool = False, head: bool = False) -> bytes | None:
    """The bytes of the regular file ``path``, or ``None`` when it does not exist.

    Args:
        path: the file.
        what: how to name it in a message (``"config file"``, ``"the local store"``).
        limit: the most bytes accepted; a larger file is refused, not cut.
        error: the error class to raise (its exit code is the caller's contract).
        nofollow: refuse a symbolic link as the last path component (state files we
            created ourselves; not a config file, which dotfile managers symlink).
        head: read only the first ``limit`` bytes of a larger file instead of refusing it.

    Raises:
        OpsError: of class ``error``: not a regular file, unreadable, or too large.
    """
    got = read_with_stat(path, what=what, limit=limit, error=error, nofollow=nofollow,
                         head=head)
    return None if got is None else got[0]


def read_with_stat(path: Path, *, what: str, limit: int, error: type[OpsError] = InputError,
                   nofollow: bool = False, head: bool = False
                   ) -> tuple[bytes, os.stat_result] | None:
    """:func:`read_optional`, with the ``fstat`` of the descriptor that was read (for mode
    and owner checks that must apply to the very file read)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC | (_NOFOLLOW if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP and nofollow:
            raise error(f"{what} {path} is a symbolic link; refusing to follow it") from None
        if exc.errno == errno.ENOTDIR:  # a parent is a file
            raise error(f"{what} {path}: a parent of it is not a folder") from None
        raise error(f"cannot open {what} {path}: {_why(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {path} is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit and not head:
            raise error(f"{what} {path} is too large ({st.st_size} bytes; the limit is "
                        f"{limit})")
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {_why(exc)}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if total > limit:
        if head:
            return data[:limit], st
        raise error(f"{what} {path} is too large (over {limit} bytes)")  # it grew meanwhile
    return data, st


def read_regular(path: Path, *, what: str, limit: int, error: type[OpsError] = InputError,
                 nofollow: bool = False, head: bool = False) -> bytes:
    """Like :func:`read_optional`, but a missing file is an error too."""
    data = read_optional(path, what=what, limit=limit, error=error, nofollow=nofollow,
                         head=head)
    if data is None:
        raise error(f"cannot read {what} {path}: it does not exist")
    return data


def decode_text(data: bytes, *, what: str, error: type[OpsError] = InputError) -> str:
    """Strict UTF-8 (a leading BOM is dropped); anything else is ``error``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8 text (byte {exc.start})") from None


def read_text(path: Path, *, what: str, limit: int, error: type[OpsError] = InputError,
              nofollow: bool = False) -> str:
    """The UTF-8 text of the regular file ``path`` (see :func:`read_regular`)."""
    data = read_regular(path, what=what, limit=limit, error=error, nofollow=nofollow)
    return decode_text(data, what=f"{what} {path}", error=error)


def parse_json(data: bytes | str, *, what: str, error: type[OpsError] = InputError) -> Any:
    """Parse JSON; bad syntax, bad encoding, non-finite numbers or deep nesting are ``error``.

    ``NaN`` and ``Infinity`` are not JSON (RFC 8259 section 6) although Python accepts them.
    """

    def no_constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(data, parse_constant=no_constant)
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what} is not valid JSON: {str(exc)[:120]}") from None


def parse_toml(text: str, *, what: str, error: type[OpsError] = InputError) -> dict[str, Any]:
    """Parse TOML; bad syntax or deep nesting are ``error``."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{what}: {exc}") from None


def os_failure(exc: OSError, path: Path | str | None, doing: str) -> LocalIOError:
    """The error to raise for an ``OSError`` while ``doing`` (``"write"``) ``path``.

    Disk full and quota get a hint; the path is always named.
    """
    where = path if path is not None else (exc.filename or "a local file")
    hint = None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space on that disk; nothing was replaced"
    elif exc.errno == errno.EROFS:
        hint = "the file system is read-only"
    return LocalIOError(f"cannot {doing} {where}: {_why(exc)}", errno=exc.errno,
                        path=str(where), reason=_why(exc), hint=hint)
