"""Private: Where a candidate comes from: the platform over HTTP, a local folder, or a tarball.

Each source returns the raw manifest bytes and the bytes of the files the manifest lists,
read under the caps of ``settings.gate``. No source writes anything or runs anything; a
source only refuses what it cannot read safely:

- HTTP (httpx, timeouts from ``settings.platform``): every body is streamed and the
  transfer stops at the cap (the manifest's cap, then each file's declared size); no
  redirects are followed.
- folder: files are opened relative to the folder with ``O_NOFOLLOW`` at every component,
  so a symlink (say, to ``~/.ssh``) is refused, never read; devices and FIFOs are refused.
- tarball: members are inspected one by one; any link, device, FIFO, absolute or
  traversing name, duplicate or case-colliding name refuses the whole archive. Nothing is
  extracted to disk; ``extractall`` is never used.

Hash, size and signature checks belong to the caller (:class:`~.gate.UpdateGate` via
:func:`~.tree.verify_blobs`): this module delivers bytes, it does not trust them.
"""

from __future__ import annotations

import lzma
import tarfile
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from impromptu_ops import contract
from impromptu_ops.errors import InputError, IntegrityError, TransportError
from impromptu_ops.gate.manifest import (
    MANIFEST_NAME,
    Manifest,
    collision_key,
    parse_manifest,
    validate_path,
)
from impromptu_ops.gate.tree import Caps, read_file_strict, read_listed


@dataclass(frozen=True)
class Fetched:
    """What a source delivered: the manifest (raw and parsed) and the listed files' bytes."""

    origin: str
    manifest_bytes: bytes
    manifest: Manifest
    blobs: dict[str, bytes]


class Source(Protocol):
    """A place a candidate can be read from."""

    origin: str

    def fetch(self, caps: Caps, max_manifest_bytes: int) -> Fetched: ...


class FolderSource:
    """A local folder holding ``impromptu.skill.json`` and the files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.origin = f"folder:{root}"

    def fetch(self, caps: Caps, max_manifest_bytes: int) -> Fetched:
        if not self.root.is_dir():
            raise InputError(f"{self.root} is not a folder")
        try:
            raw = read_file_strict(self.root, MANIFEST_NAME, max_manifest_bytes)
        except FileNotFoundError:
            raise InputError(f"{self.root} holds no {MANIFEST_NAME}") from None
        manifest = parse_manifest(raw, max_files=caps.max_files)
        return Fetched(self.origin, raw, manifest, read_listed(self.root, manifest, caps))


class TarballSource:
    """A tar archive (optionally compressed) holding the manifest and the files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.origin = f"tarball:{path}"

    def _members(self, tar: tarfile.TarFile, caps: Caps) -> dict[str, tarfile.TarInfo]:
        members: dict[str, tarfile.TarInfo] = {}
        seen: dict[str, str] = {}
        total = 0
        count = 0
        for m in tar:
            count += 1
            if count > 4 * caps.max_files + 16:
                raise IntegrityError(f"{self.path}: too many archive members")
            name = m.name
            while name.startswith("./"):
                name = name[2:]
            name = name.rstrip("/")
            if not name or name == ".":
                continue
            if m.issym() or m.islnk():
                raise IntegrityError(f"{self.path}: member {name!r} is a link; links are refused")
            if not (m.isfile() or m.isdir()):
                raise IntegrityError(
                    f"{self.path}: member {name!r} is a device, FIFO or special file; refused"
                )
            if name.startswith("/") or m.name.startswith("/"):
                raise IntegrityError(f"{self.path}: member {name!r} has an absolute path")
            if ".." in name.split("/"):
                raise IntegrityError(f"{self.path}: member {name!r} traverses out of the archive")
            if name.casefold() != MANIFEST_NAME.casefold() and not name.casefold().endswith(
                "/" + MANIFEST_NAME.casefold()
            ):
                validate_path(name)
            key = collision_key(name)
            if key in seen:
                raise IntegrityError(
                    f"{self.path}: members {seen[key]!r} and {name!r} collide "
                    "(duplicate or differ only in case)"
                )
            seen[key] = name
            if m.isdir():
                continue
            if m.size > max(caps.max_file_bytes, 0):
                raise IntegrityError(f"{self.path}: member {name!r} exceeds the file cap")
            total += m.size
            if total > caps.max_total_bytes:
                raise IntegrityError(f"{self.path}: members exceed the total size cap")
            members[name] = m
        return members

    def fetch(self, caps: Caps, max_manifest_bytes: int) -> Fetched:
        if not self.path.is_file():
            raise InputError(f"{self.path} is not a file")
        if self.path.stat().st_size > caps.max_total_bytes + max_manifest_bytes:
            raise IntegrityError(f"{self.path}: archive larger than the total size cap")
        try:
            with tarfile.open(self.path, "r:*") as tar:
                members = self._members(tar, caps)
                manifests = [
                    n for n in members if n.rsplit("/", 1)[-1] == MANIFEST_NAME
                ]
                if len(manifests) != 1:
                    raise IntegrityError(
                        f"{self.path}: expected exactly one {MANIFEST_NAME}, found {len(manifests)}"
                    )
                prefix = manifests[0][: -len(MANIFEST_NAME)]
                if prefix.count("/") > 1:
                    raise IntegrityError(f"{self.path}: the manifest is nested too deep")
                raw = self._read(tar, members[manifests[0]], max_manifest_bytes)
                manifest = parse_manifest(raw, max_files=caps.max_files)
                blobs = {
                    e.path: self._read(tar, members[prefix + e.path], caps.max_file_bytes)
                    for e in manifest.files
                    if prefix + e.path in members
                }
        except tarfile.TarError as exc:
            raise IntegrityError(f"{self.path}: not a readable tar archive ({exc})") from None
        except (EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
            # gzip/lzma raise EOFError on an archive that ends early; left alone it would
            # reach click, which reads EOFError as "aborted" (exit 130) and logs nothing.
            why = "it ends early (truncated)" if isinstance(exc, EOFError) else str(exc)[:120]
            raise IntegrityError(
                f"{self.path}: malformed archive: {why}",
                hint="download the release again; nothing was installed") from None
        return Fetched(self.origin, raw, manifest, blobs)

    def _read(self, tar: tarfile.TarFile, member: tarfile.TarInfo, cap: int) -> bytes:
        if member.size > cap:
            raise IntegrityError(f"{self.path}: member {member.name!r} exceeds its cap")
        fh = tar.extractfile(member)
        if fh is None:  # pragma: no cover - only regular files reach here
            raise IntegrityError(f"{self.path}: member {member.name!r} is not a file")
        data = fh.read(cap + 1)
        if len(data) > cap:
            raise IntegrityError(f"{self.path}: member {member.name!r} exceeds its cap")
        return data


class HttpSource:
    """The platform: the manifest at ``manifest_url``, files at ``<base>/skill/{v}/{path}``.

    Args:
        manifest_url: the manifest's URL (``settings.manifest_url``).
        connect_timeout, read_timeout: from ``settings.platform``.
        user_agent: from ``settings.platform``.
        deadline: the most seconds one GET may take in all (``settings.platform.deadline``):
            a server that drips bytes just under the read timeout is cut off.
        transport: an httpx transport (tests); default: the real network.
    """

    def __init__(
        self,
        manifest_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        user_agent: str,
        deadline: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not manifest_url.startswith(("http://", "https://")):
            raise InputError(f"{manifest_url!r} is not an http(s) URL")
        self.manifest_url = manifest_url
        self.origin = manifest_url
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._headers = {"User-Agent": user_agent, "Accept": "application/json, */*"}
        self._transport = transport
        self._deadline = deadline

    def file_url(self, version: str, path: str) -> str:
        base = self.manifest_url
        if base.endswith(contract.MANIFEST_PATH):
            base = base[: -len(contract.MANIFEST_PATH)]
        else:
            base = base.rsplit("/", 1)[0]
        return base + contract.SKILL_FILE_PATH.format(
            version=urllib.parse.quote(version, safe=""),
            path=urllib.parse.quote(path, safe="/"),
        )

    def _get(self, client: httpx.Client, url: str, cap: int, exact: int | None) -> bytes:
        try:
            with client.stream("GET", url) as resp:
                if resp.status_code == 404:
                    raise TransportError(
                        f"GET {url}: HTTP 404: nothing is published there",
                        hint="check the source, or gate.manifest_url for the platform's")
                if resp.status_code != 200:
                    raise TransportError(f"GET {url}: HTTP {resp.status_code}")
                chunks: list[bytes] = []
                got = 0
                started = time.monotonic()
                for chunk in resp.iter_bytes():
                    if time.monotonic() - started > self._deadline:
                        raise TransportError(f"GET {url}: slower than the {self._deadline:g} "
                                             "s deadline; transfer stopped")
                    got += len(chunk)
                    if got > cap:
                        limit = f"the declared size {exact}" if exact is not None else f"cap {cap}"
                        raise IntegrityError(f"GET {url}: body exceeds {limit}; stopped")
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException:
            raise TransportError(f"GET {url}: timed out") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {url}: {type(exc).__name__}") from None

    def fetch(self, caps: Caps, max_manifest_bytes: int) -> Fetched:
        with httpx.Client(
            timeout=self._timeout,
            headers=self._headers,
            follow_redirects=False,
            transport=self._transport,
        ) as client:
            raw = self._get(client, self.manifest_url, max_manifest_bytes, None)
            manifest = parse_manifest(raw, max_files=caps.max_files)
            blobs: dict[str, bytes] = {}
            total = 0
            for e in manifest.files:
                if e.size > caps.max_file_bytes:
                    raise IntegrityError(f"{e.path}: declared size exceeds the file cap")
                total += e.size
                if total > caps.max_total_bytes:
                    raise IntegrityError("candidate exceeds the total size cap")
                blobs[e.path] = self._get(client, self.file_url(manifest.version, e.path),
                                          e.size, e.size)
        return Fetched(self.origin, raw, manifest, blobs)


def source_for(spec: str | None, *, default_url: str, connect_timeout: float,
               read_timeout: float, user_agent: str, deadline: float = 60.0,
               transport: httpx.BaseTransport | None = None) -> Source:
    """Choose the source for ``update fetch [SOURCE]``: URL, folder or tarball.

    Raises:
        InputError: the argument is neither an http(s) URL nor an existing path.
    """
    target = spec or default_url
    if target.startswith(("http://", "https://")):
        return HttpSource(target, connect_timeout=connect_timeout, read_timeout=read_timeout,
                          user_agent=user_agent, deadline=deadline, transport=transport)
    path = Path(target).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return TarballSource(path)
    raise InputError(f"{target!r} is not an http(s) URL, a folder or a tarball")
