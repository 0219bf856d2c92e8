"""Private: Crash-safe file writes and private folders.

A job killed at any instant leaves either the old file or the new one, never a mix:
write to a temp file in the same folder, fsync it, ``os.replace`` it over the target, then
fsync the folder so the rename itself is durable. State files are 0600 in folders 0700.

A failed write (disk full, read-only file system, permissions) leaves the old file in place
and raises :class:`~impromptu_ops.errors.LocalIOError` (exit 74, still an ``OSError``) naming
the target path, never a bare ``OSError`` from a temporary file's name.

This module owns the write discipline; it knows nothing of what is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from impromptu_ops.errors import ConfigError, LocalIOError
from impromptu_ops.files import os_failure

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700 if missing; tighten it if it is looser.

    Parents this call creates are 0700 too (``mkdir(parents=True)`` would leave them to the
    umask): a per-agent folder such as ``<data_dir>/agents/NAME`` must not create a
    readable ``<data_dir>`` on the way.

    Raises:
        ConfigError: the path exists and is not a folder.
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for parent in reversed(missing[1:]):
        with contextlib.suppress(FileExistsError):
            parent.mkdir(mode=PRIVATE_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} exists and is not a folder")
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        path.chmod(PRIVATE_DIR)
    return path


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Atomically replace ``path`` with ``data`` (temp file, fsync, rename, fsync dir).

    Raises:
        LocalIOError: the folder or the file could not be written (the old file stays).
    """
    try:
        _write_bytes(path, data, mode)
    except LocalIOError:
        raise
    except OSError as exc:
        raise os_failure(exc, path, "write") from None


def _write_bytes(path: Path, data: bytes, mode: int) -> None:
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)


def write_text(path: Path, text: str, mode: int = PRIVATE_FILE) -> None:
    """Atomically replace ``path`` with UTF-8 ``text``."""
    write_bytes(path, text.encode("utf-8"), mode)


def write_json(path: Path, value: Any, mode: int = PRIVATE_FILE) -> None:
    """Atomically replace ``path`` with ``value`` as sorted, indented JSON."""
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n", mode)


def create_exclusive(path: Path, data: bytes, mode: int = PRIVATE_FILE) -> None:
    """Create ``path`` with ``data``; fail if it exists (O_EXCL), never follow a symlink.

    Raises:
        FileExistsError: the path exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
