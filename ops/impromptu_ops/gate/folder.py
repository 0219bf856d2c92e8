"""Private: The skill folder on disk: versions, the ``current`` link, quarantine, approvals.

Layout (``settings.skill_dir``, 0700)::

    current -> versions/<slot>        the installed skill (a symlink switched by one rename)
    versions/<slot>/...               every applied version, kept (slot = <version>-<tree12>)
    meta/<slot>.json                  version, publishedAt, tree hash, previous slot, digest
    meta/<slot>.manifest.json         the manifest bytes that version was applied from
    candidate -> quarantine/<id>      the fetched candidate under review
    quarantine/<id>/manifest.json     its manifest bytes, exactly as fetched
    quarantine/<id>/files/...         its files, 0600, never executable
    quarantine/<id>/fetch.json        origin, time, whether a downgrade was allowed
    approvals/<digest>.json           who approved which digest, with which overrides
    audit.jsonl                       the hash-chained log (written by :mod:`.gate`)
    .lock                             one gate action at a time

Every write is atomic: a version folder is written under a temporary name, read back and
renamed; ``current`` and ``candidate`` are switched by renaming a fresh symlink over them.
A process killed at any instant leaves the old installed version or the new one. Links are
read back and checked (``versions/<slot>``, ``quarantine/<id>``) before use, and trees are
read without following any symlink.

This class reads and writes; it decides nothing (see :class:`~.gate.UpdateGate`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from impromptu_ops.atomic import create_exclusive, fsync_dir, private_dir, write_bytes, write_json
from impromptu_ops.errors import InputError, IntegrityError
from impromptu_ops.gate.manifest import Manifest, parse_manifest
from impromptu_ops.gate.tree import (
    Caps,
    Tree,
    read_file_strict,
    read_listed,
    read_tree_dir,
    verify_blobs,
)
from impromptu_ops.locks import ProcessLock

_SLOT_RE: Final = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,119}$")
_ID_RE: Final = re.compile(r"^[0-9a-f]{16}$")
_DIGEST_RE: Final = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Installed:
    """The version ``current`` points at."""

    slot: str
    version: str
    manifest: Manifest | None
    tree: Tree
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """The quarantined candidate, re-verified against its manifest on every read."""

    cid: str
    manifest_bytes: bytes
    manifest: Manifest
    tree: Tree
    meta: dict[str, Any] = field(default_factory=dict)


def slot_name(manifest: Manifest, tree: Tree) -> str:
    return f"{manifest.version}-{tree.hash()[:12]}"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"{what} {path} is unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"{what} {path} is not a JSON object")
    return data


class SkillFolder:
    """The on-disk state of one installed skill.

    Args:
        root: the skill folder.
        caps: size caps for reading trees back.
        max_manifest_bytes: the cap for reading a stored manifest back.
    """

    def __init__(self, root: Path, caps: Caps, max_manifest_bytes: int) -> None:
        self.root = root
        self.caps = caps
        self.max_manifest_bytes = max_manifest_bytes

    def _manifest(self, folder: Path, name: str) -> tuple[bytes, Manifest]:
        raw = read_file_strict(folder, name, self.max_manifest_bytes)
        return raw, parse_manifest(raw, max_files=self.caps.max_files)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder's lock (raises LockBusy, exit 75, if another run has it)."""
        private_dir(self.root)
        with ProcessLock(self.root / ".lock", "update gate"):
            yield

    def _link(self, name: str, parent: str, pattern: re.Pattern[str]) -> str | None:
        link = self.root / name
        if not link.is_symlink():
            if link.exists():
                raise IntegrityError(f"{link} is not a symlink; refusing to touch it")
            return None
        target = os.readlink(link)
        parts = target.split("/")
        if len(parts) != 2 or parts[0] != parent or not pattern.match(parts[1]):
            raise IntegrityError(f"{link} points outside {parent}/: {target!r}")
        return parts[1]

    def switch(self, name: str, target: str) -> None:
        """Point symlink ``name`` at ``target`` with one atomic rename."""
        tmp = self.root / f".{name}.{secrets.token_hex(4)}"
        os.symlink(target, tmp)
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)

    # --- installed versions ------------------------------------------------------------------

    def current_slot(self) -> str | None:
        return self._link("current", "versions", _SLOT_RE)

    def meta(self, slot: str) -> dict[str, Any]:
        return _read_json(self.root / "meta" / f"{slot}.json", "installed version record")

    def installed(self) -> Installed | None:
        """The installed version (tree read strictly from disk), or ``None`` before any."""
        slot = self.current_slot()
        if slot is None:
            return None
        tree = read_tree_dir(self.root / "versions" / slot, self.caps)
        meta = self.meta(slot)
        manifest = self._manifest(self.root / "meta", f"{slot}.manifest.json")[1] \
            if (self.root / "meta" / f"{slot}.manifest.json").exists() else None
        return Installed(slot, str(meta.get("version", "?")), manifest, tree, meta)

    def has_version(self, slot: str) -> bool:
        return bool(_SLOT_RE.match(slot)) and (self.root / "versions" / slot).is_dir()

    def version_tree(self, slot: str) -> Tree:
        return read_tree_dir(self.root / "versions" / slot, self.caps)

    def kept(self) -> tuple[str, ...]:
        vdir = self.root / "versions"
        if not vdir.is_dir():
            return ()
        return tuple(sorted(p.name for p in vdir.iterdir() if not p.name.startswith(".")))

    def write_version(self, cand: Candidate, record: dict[str, Any]) -> str:
        """Write the candidate's tree as a new version folder and its records; its slot.

        The folder is written under a temporary name, read back and compared, then renamed.
        An existing folder with the very same tree is reused (a re-apply after a crash).

        Raises:
            IntegrityError: the slot exists with other content, or the read-back differs.
        """
        slot = slot_name(cand.manifest, cand.tree)
        versions = self.root / "versions"
        versions.mkdir(mode=0o755, exist_ok=True)
        final = versions / slot
        if final.exists():
            if read_tree_dir(final, self.caps).hash() != cand.tree.hash():
                raise IntegrityError(f"{final} exists with other content; refusing to overwrite")
        else:
            tmp = versions / f".{slot}.{secrets.token_hex(4)}.tmp"
            tmp.mkdir(mode=0o755)
            for path in cand.tree:
                f = cand.tree.get(path)
                assert f is not None
                target = tmp / path
                target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                try:
                    os.write(fd, f.data)
                    os.fchmod(fd, f.mode)  # the manifest's mode, applied only now
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if read_tree_dir(tmp, self.caps).hash() != cand.tree.hash():  # pragma: no cover
                raise IntegrityError(f"{tmp}: the written tree does not read back identically")
            os.rename(tmp, final)
            fsync_dir(versions)
        meta = private_dir(self.root / "meta")
        write_bytes(meta / f"{slot}.manifest.json", cand.manifest_bytes)
        write_json(meta / f"{slot}.json", {**record, "slot": slot})
        return slot

    # --- the candidate -----------------------------------------------------------------------

    def quarantine(self, manifest_bytes: bytes, tree: Tree, meta: dict[str, Any]) -> str:
        """Write a verified candidate into quarantine (files 0600) and point ``candidate``
        at it; an earlier candidate is removed, never merged. Returns its id."""
        qroot = private_dir(self.root / "quarantine")
        cid = secrets.token_hex(8)
        tmp = qroot / f".{cid}.tmp"
        private_dir(tmp)
        for path in tree:
            f = tree.get(path)
            assert f is not None
            target = tmp / "files" / path
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            create_exclusive(target, f.data, 0o600)
        create_exclusive(tmp / "manifest.json", manifest_bytes, 0o600)
        write_json(tmp / "fetch.json", meta)
        os.rename(tmp, qroot / cid)
        self.switch("candidate", f"quarantine/{cid}")
        for old in qroot.iterdir():
            if old.name != cid:
                shutil.rmtree(old, ignore_errors=True)
        return cid

    def candidate(self) -> Candidate:
        """Read the candidate back and verify it against its own manifest.

        Raises:
            InputError: there is no candidate.
            IntegrityError: a file changed, went missing or became a link since the fetch.
        """
        cid = self._link("candidate", "quarantine", _ID_RE)
        if cid is None:
            raise InputError("no candidate under review", hint="run `impromptu-ops update fetch`")
        qdir = self.root / "quarantine" / cid
        raw, manifest = self._manifest(qdir, "manifest.json")
        tree = verify_blobs(manifest, read_listed(qdir / "files", manifest, self.caps),
                            self.caps)
        return Candidate(cid, raw, manifest, tree, _read_json(qdir / "fetch.json",
                                                              "candidate record"))

    def verdict(self, cid: str) -> dict[str, Any] | None:
        """The scan verdict stored with candidate ``cid`` at fetch, or ``None`` (absent or
        unreadable: the caller scans again)."""
        try:
            return _read_json(self.root / "quarantine" / cid / "verdict.json", "verdict")
        except IntegrityError:
            return None

    def save_verdict(self, cid: str, record: dict[str, Any]) -> None:
        write_json(self.root / "quarantine" / cid / "verdict.json", record)

    def drop_candidate(self, cid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / "candidate").unlink()
        shutil.rmtree(self.root / "quarantine" / cid, ignore_errors=True)

    # --- approvals ---------------------------------------------------------------------------

    def approval(self, digest: str) -> dict[str, Any] | None:
        if not _DIGEST_RE.match(digest):
            return None
        path = self.root / "approvals" / f"{digest}.json"
        if not path.exists():
            return None
        data = _read_json(path, "approval")
        return data if data.get("digest") == digest else None

    def save_approval(self, record: dict[str, Any]) -> None:
        write_json(private_dir(self.root / "approvals") / f"{record['digest']}.json", record)

    def recorded_actions(self) -> list[tuple[str, str, str]]:
        """``(event, digest, time)`` of every applied version and every approval on disk.

        The audit log must hold a matching ``apply``/``approve`` entry for each: the gate
        cross-checks them to notice lines dropped from the end of the log, which the hash
        chain alone cannot show.
        """
        found: list[tuple[str, str, str]] = []
        for slot in self.kept():
            with contextlib.suppress(IntegrityError):
                meta = self.meta(slot)
                found.append(("apply", str(meta.get("digest", "")),
                              str(meta.get("appliedAt", ""))))
        folder = self.root / "approvals"
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            with contextlib.suppress(IntegrityError):
                record = _read_json(p, "approval")
                found.append(("approve", str(record.get("digest", "")),
                              str(record.get("approvedAt", ""))))
        return found

    def approvals_for(self, cid: str) -> list[str]:
        """Digests approved for candidate ``cid`` (to explain a mismatch)."""
        folder = self.root / "approvals"
        out: list[str] = []
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            with contextlib.suppress(IntegrityError, OSError):
                d = _read_json(p, "approval")
                if d.get("candidate") == cid:
                    out.append(str(d.get("digest")))
        return out
