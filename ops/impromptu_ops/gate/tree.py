"""Private: A skill tree as a value, its verification against a manifest, and strict reads from
disk.

A :class:`Tree` maps relative paths to bytes and a permission mode. The installed version,
the quarantined candidate and the fetched blobs are all trees, so the policy, the diff and
the digest work on values and never touch the disk.

:func:`verify_blobs` is the pure integrity check of a fetch: every promised file present,
with exactly the promised size and SHA-256, within the caps. The disk readers refuse
symlinks (at any component), devices, FIFOs and sockets, and read at most a capped number
of bytes; they never follow a link out of the folder they were given.

This module does not parse manifests (:mod:`.manifest`) or write trees (:mod:`.gate`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from impromptu_ops.errors import IntegrityError
from impromptu_ops.gate.manifest import Manifest, check_path_set, validate_path


@dataclass(frozen=True)
class TreeFile:
    data: bytes
    mode: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


@dataclass(frozen=True)
class Tree:
    """An immutable mapping of relative path -> :class:`TreeFile`."""

    files: Mapping[str, TreeFile]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def get(self, path: str) -> TreeFile | None:
        return self.files.get(path)

    def listing(self) -> list[list[object]]:
        """``[[path, mode, sha256, size], ...]`` sorted by path: the canonical description."""
        return [[p, f.mode, f.sha256, len(f.data)] for p, f in sorted(self.files.items())]

    def hash(self) -> str:
        """SHA-256 over the canonical JSON of :meth:`listing`."""
        body = json.dumps(self.listing(), separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


EMPTY = Tree({})


@dataclass(frozen=True)
class Caps:
    """Size caps for one candidate (from ``settings.gate``)."""

    max_file_bytes: int
    max_total_bytes: int
    max_files: int


def verify_blobs(manifest: Manifest, blobs: Mapping[str, bytes], caps: Caps) -> Tree:
    """Check fetched bytes against the manifest and build the candidate tree.

    Args:
        manifest: the parsed manifest.
        blobs: path -> bytes as fetched (extra paths are ignored: only listed files count).
        caps: size caps.

    Raises:
        IntegrityError: a file is missing, has the wrong size or hash, or a cap is exceeded.
    """
    if len(manifest.files) > caps.max_files:
        raise IntegrityError(f"candidate has {len(manifest.files)} files, cap {caps.max_files}")
    total = 0
    files: dict[str, TreeFile] = {}
    for entry in manifest.files:
        if entry.size > caps.max_file_bytes:
            raise IntegrityError(
                f"{entry.path}: {entry.size} bytes exceeds the file cap {caps.max_file_bytes}"
            )
        total += entry.size
        if total > caps.max_total_bytes:
            raise IntegrityError(f"candidate exceeds the total size cap {caps.max_total_bytes}")
        data = blobs.get(entry.path)
        if data is None:
            raise IntegrityError(f"{entry.path}: listed in the manifest but not delivered")
        if len(data) != entry.size:
            raise IntegrityError(
                f"{entry.path}: size {len(data)} does not match the manifest's {entry.size}"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256:
            raise IntegrityError(
                f"{entry.path}: sha256 mismatch (manifest {entry.sha256[:12]}…, "
                f"got {digest[:12]}…)",
                hint="the file was altered in transit or at the source; refusing the update",
            )
        files[entry.path] = TreeFile(data, entry.mode)
    return Tree(files)


# --- strict disk reads ---------------------------------------------------------------------

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _read_fd(fd: int, what: str, cap: int) -> bytes:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise IntegrityError(f"{what}: not a regular file (device, FIFO, socket or folder)")
    if st.st_size > cap:
        raise IntegrityError(f"{what}: {st.st_size} bytes exceeds the cap {cap}")
    chunks: list[bytes] = []
    got = 0
    while True:
        chunk = os.read(fd, min(65536, cap + 1 - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
        if got > cap:
            raise IntegrityError(f"{what}: grew past the cap {cap} while being read")
    return b"".join(chunks)


def read_file_strict(root: Path, rel: str, cap: int) -> bytes:
    """Read ``root/rel`` without following any symlink on the way, at most ``cap`` bytes.

    Raises:
        IntegrityError: a component is a symlink, the file is not regular, or it is too big.
        FileNotFoundError: the file does not exist.
    """
    validate_path(rel, allow_manifest=True)
    parts = rel.split("/")
    fd = os.open(root, os.O_RDONLY | _DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise IntegrityError(
                        f"{rel}: a path component is a symlink or a file") from None
                raise
            os.close(fd)
            fd = nxt
        try:
            leaf = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IntegrityError(f"{rel}: is a symlink; links are refused") from None
            raise
        try:
            return _read_fd(leaf, rel, cap)
        finally:
            os.close(leaf)
    finally:
        os.close(fd)


def read_tree_dir(root: Path, caps: Caps) -> Tree:
    """Read every file under ``root`` as a tree (modes from disk), refusing anything odd.

    Raises:
        IntegrityError: a symlink, special file, bad name, collision, or a cap exceeded.
    """
    files: dict[str, TreeFile] = {}
    total = 0

    def walk(folder: Path, prefix: str) -> None:
        nonlocal total
        with os.scandir(folder) as it:
            for de in sorted(it, key=lambda d: d.name):
                rel = f"{prefix}{de.name}"
                if de.is_symlink():
                    raise IntegrityError(f"{rel}: is a symlink; links are refused")
                if de.is_dir(follow_symlinks=False):
                    walk(Path(de.path), rel + "/")
                    continue
                if len(files) >= caps.max_files:
                    raise IntegrityError(f"{root}: more than {caps.max_files} files")
                data = read_file_strict(root, validate_path(rel), caps.max_file_bytes)
                total += len(data)
                if total > caps.max_total_bytes:
                    raise IntegrityError(f"{root}: exceeds the total cap {caps.max_total_bytes}")
                mode = stat.S_IMODE(os.lstat(de.path).st_mode)
                files[rel] = TreeFile(data, mode)

    walk(root, "")
    check_path_set(list(files))
    return Tree(files)


def read_listed(root: Path, manifest: Manifest, caps: Caps) -> dict[str, bytes]:
    """Read the files a manifest lists from a folder (strictly); missing ones are skipped.

    :func:`verify_blobs` then reports a missing file as a broken promise.
    """
    blobs: dict[str, bytes] = {}
    for entry in manifest.files:
        with contextlib.suppress(FileNotFoundError):
            blobs[entry.path] = read_file_strict(root, entry.path, caps.max_file_bytes)
    return blobs
