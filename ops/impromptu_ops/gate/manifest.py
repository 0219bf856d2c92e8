"""Private: The skill manifest ``impromptu.skill.json``: strict parsing, path rules, version order.

Shape (contract §7, [ours])::

    {"name": str, "version": str, "publishedAt": ISO-8601 str,
     "files": [{"path": str, "sha256": hex64, "size": int, "mode"?: int|"0755",
                "prompt"?: bool}],
     "signature"?: base64 str, ...other top-level keys are kept for the policy to judge}

Every file path must be a plain relative POSIX path: no absolute path, no ``..`` or ``.``
segment, no empty segment, no backslash, no control, format or bidi character, NFC form,
no two paths equal after case folding, no path that is both a file and a folder, and not
the manifest's own name. Modes are permission bits only (no setuid, setgid, sticky, no
group/other write). File entries have no other keys: in particular no link targets, so a
manifest cannot describe a symlink or a device.

This module is pure: bytes in, values or :class:`~impromptu_ops.errors.IntegrityError` out.
It does not fetch, verify hashes (see :mod:`.tree`) or judge content (see :mod:`.policy`).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from impromptu_ops import contract
from impromptu_ops.errors import IntegrityError

MANIFEST_NAME: Final = contract.MANIFEST_PATH.lstrip("/")
DEFAULT_MODE: Final = 0o644
MAX_PATH_CHARS: Final = 1024
MAX_SEGMENT_CHARS: Final = 255
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_VERSION_RE: Final = re.compile(
    r"^v?(\d{1,9}(?:\.\d{1,9}){0,3})(?:-([0-9A-Za-z.-]{1,40}))?(?:\+[0-9A-Za-z.-]{1,40})?$"
)
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_FILE_KEYS: Final = frozenset({"path", "sha256", "size", "mode", "prompt"})


@dataclass(frozen=True)
class FileEntry:
    """One file the manifest promises."""

    path: str
    sha256: str
    size: int
    mode: int = DEFAULT_MODE
    prompt: bool = False

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest. ``raw`` is the whole object as published."""

    name: str
    version: str
    published_at: datetime
    files: tuple[FileEntry, ...]
    raw: Mapping[str, Any] = field(compare=False, repr=False)

    def entry(self, path: str) -> FileEntry | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    @property
    def prompt_paths(self) -> frozenset[str]:
        """Paths that become system prompts: the contract's names, and any marked ``prompt``."""
        return frozenset(
            f.path for f in self.files if f.prompt or is_prompt_name(f.path)
        )


def is_prompt_name(path: str) -> bool:
    """True for files the platform turns into system prompts (SKILL.md, HEARTBEAT.md)."""
    base = path.rsplit("/", 1)[-1]
    return base.casefold() in {p.casefold() for p in contract.PROMPT_FILES}


def _bad_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # Cc: controls (NUL, ESC, DEL, C1); Cf: format (zero-width, bidi overrides); Zl/Zp.
    return cat in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def validate_path(path: object, *, allow_manifest: bool = False) -> str:
    """Return ``path`` if it is a safe relative file path, else raise.

    Args:
        path: the candidate path.
        allow_manifest: accept the manifest's own name (for reading the manifest itself).

    Raises:
        IntegrityError: naming the rule the path breaks (never echoing control characters).
    """
    if not isinstance(path, str):
        raise IntegrityError("manifest file path is not a string")
    shown = path.encode("unicode_escape").decode("ascii")[:120]
    if not path or len(path) > MAX_PATH_CHARS:
        raise IntegrityError(f"manifest path {shown!r}: empty or too long")
    if any(_bad_char(c) for c in path):
        raise IntegrityError(f"manifest path {shown!r}: control, format or bidi character")
    if "\\" in path:
        raise IntegrityError(f"manifest path {shown!r}: backslash")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise IntegrityError(f"manifest path {shown!r}: absolute path refused")
    if unicodedata.normalize("NFC", path) != path:
        raise IntegrityError(f"manifest path {shown!r}: not in Unicode NFC form")
    for seg in path.split("/"):
        if seg in ("", ".", ".."):
            raise IntegrityError(f"manifest path {shown!r}: path traversal or empty segment")
        if len(seg) > MAX_SEGMENT_CHARS:
            raise IntegrityError(f"manifest path {shown!r}: segment too long")
    if not allow_manifest and path.casefold() == MANIFEST_NAME.casefold():
        raise IntegrityError(f"manifest path {shown!r}: a file may not replace the manifest")
    return path


def collision_key(path: str) -> str:
    """The key under which two paths collide on a case-insensitive, normalising filesystem."""
    return unicodedata.normalize("NFKC", path).casefold()


def check_path_set(paths: list[str]) -> None:
    """Refuse duplicate, case-colliding or file-versus-folder paths.

    Raises:
        IntegrityError: naming the two colliding paths.
    """
    seen: dict[str, str] = {}
    for p in paths:
        key = collision_key(p)
        if key in seen:
            raise IntegrityError(
                f"manifest paths {seen[key]!r} and {p!r} collide (duplicate or differ only in case)"
            )
        seen[key] = p
    for key, p in seen.items():
        parts = key.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in seen:
                raise IntegrityError(
                    f"manifest path {seen[prefix]!r} is a file and also a folder of {p!r}"
                )


def parse_mode(value: object, where: str) -> int:
    """A permission mode from an int or an octal string; refuse special bits and g/o write."""
    if value is None:
        return DEFAULT_MODE
    mode: int
    if isinstance(value, bool):
        raise IntegrityError(f"{where}: mode is not a number")
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and re.fullmatch(r"0?o?[0-7]{3,4}", value):
        mode = int(value.replace("o", ""), 8)
    else:
        raise IntegrityError(f"{where}: mode is not an octal permission")
    if mode & ~0o777:
        raise IntegrityError(f"{where}: mode {mode:o} has setuid/setgid/sticky or type bits")
    if mode & 0o022:
        raise IntegrityError(f"{where}: mode {mode:o} is group/world writable")
    if not mode & 0o400:
        raise IntegrityError(f"{where}: mode {mode:o} is not readable by its owner")
    return mode


def _parse_file(i: int, obj: object) -> FileEntry:
    where = f"manifest files[{i}]"
    if not isinstance(obj, dict):
        raise IntegrityError(f"{where} is not an object")
    extra = set(obj) - _FILE_KEYS
    if extra:
        raise IntegrityError(
            f"{where} has unsupported keys {sorted(extra)} (only regular files can be shipped)"
        )
    path = validate_path(obj.get("path"))
    sha = obj.get("sha256")
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        raise IntegrityError(f"{where} ({path}): sha256 is not 64 lowercase hex digits")
    size = obj.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IntegrityError(f"{where} ({path}): size is not a non-negative integer")
    prompt = obj.get("prompt", False)
    if not isinstance(prompt, bool):
        raise IntegrityError(f"{where} ({path}): prompt is not a boolean")
    return FileEntry(path, sha, size, parse_mode(obj.get("mode"), f"{where} ({path})"), prompt)


def parse_published_at(value: object) -> datetime:
    if not isinstance(value, str):
        raise IntegrityError("manifest publishedAt is missing or not a string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise IntegrityError(f"manifest publishedAt {value[:40]!r} is not ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def parse_manifest(data: bytes, *, max_files: int) -> Manifest:
    """Parse and validate manifest bytes.

    Args:
        data: the manifest as fetched (already size-capped by the caller).
        max_files: the most file entries accepted (``settings.gate.max_files``).

    Raises:
        IntegrityError: not JSON, wrong shape, a bad path, mode, hash, version or date.
    """
    try:
        obj = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntegrityError(f"manifest is not valid UTF-8 JSON: {str(exc)[:80]}") from None
    if not isinstance(obj, dict):
        raise IntegrityError("manifest is not a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise IntegrityError("manifest name is missing or not a plain name")
    version = obj.get("version")
    if not isinstance(version, str) or not _VERSION_RE.match(version):
        raise IntegrityError("manifest version is missing or not a version like 1.2.3")
    files = obj.get("files")
    if not isinstance(files, list):
        raise IntegrityError("manifest files is missing or not a list")
    if len(files) > max_files:
        raise IntegrityError(f"manifest lists {len(files)} files, more than the cap {max_files}")
    entries = tuple(_parse_file(i, f) for i, f in enumerate(files))
    check_path_set([e.path for e in entries])
    return Manifest(name, version, parse_published_at(obj.get("publishedAt")), entries, obj)


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def version_key(version: str) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
    """A sort key: numeric parts, then release after pre-release, then pre-release parts.

    Raises:
        IntegrityError: not a version string.
    """
    m = _VERSION_RE.match(version)
    if not m:
        raise IntegrityError(f"not a version: {version[:40]!r}")
    nums = tuple(int(p) for p in m.group(1).split("."))
    nums = nums + (0,) * (4 - len(nums))
    pre = m.group(2)
    if pre is None:
        return nums, 1, ()
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return nums, 0, parts


def is_newer(candidate: Manifest, installed: Manifest | None) -> tuple[bool, str]:
    """Whether ``candidate`` moves forward from ``installed``; the reason when it does not."""
    if installed is None:
        return True, ""
    if version_key(candidate.version) <= version_key(installed.version):
        return False, (
            f"candidate version {candidate.version} is not newer than installed "
            f"{installed.version}"
        )
    if candidate.published_at < installed.published_at:
        return False, (
            f"candidate publishedAt {candidate.published_at.isoformat()} is older than the "
            f"installed one {installed.published_at.isoformat()}"
        )
    return True, ""
