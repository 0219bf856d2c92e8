"""Private: ``secrets scan``: find plaintext keys in shell, env, cron and systemd files; move them.

Two signals per line: a literal value assigned to one of the environment names the
original scripts read (:data:`impromptu_ops.contract.SECRET_ENV`: ``IMPROMPTU_API_KEY``,
``OPENROUTER_API_KEY``...), and any key *shape* of :data:`impromptu_ops.contract.KEY_SHAPES`
(platform keys, OpenRouter keys, Vault tokens, 32-byte hex keys). References such as
``$(impromptu-ops secrets get ...)`` or ``${VAR}`` are not findings. Findings carry the
file, the line and a masked value.

``--fix`` (:func:`fix`) moves what has a canonical name into the store, then rewrites the
file with each such line replaced by a comment that holds only the masked value:

1. the value is written to the store (check-and-set; an identical value already there is
   fine; a *different* value there is a conflict and that line is left alone);
2. the whole original file is backed up *into the store* (``_scan-backup/...``), so the
   backup holds no plaintext on disk either;
3. the file is replaced atomically (same mode, symlinks followed), and only if it did not
   change since it was read.

Vault tokens and unnamed hex keys are reported but not moved (they have no canonical
name); revoke or move them by hand. The pure part (:func:`find_in_text`,
:func:`rewrite`) takes text and returns values; :func:`scan` and :func:`fix` do the I/O.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from impromptu_ops import atomic, contract, files
from impromptu_ops.errors import CasConflict, OpsError, SecretNotFound
from impromptu_ops.secret import MASK, Secret, mask
from impromptu_ops.store.base import SecretStore

MAX_FILE_BYTES = 1024 * 1024
MARKER = "# impromptu-ops: moved to the secret store as"
ENV_TO_NAME = {env: name for name, env in contract.SECRET_ENV.items()}
_ASSIGN = re.compile(
    r"(?<![A-Za-z0-9_])(?P<env>[A-Z][A-Z0-9_]{2,63})\s*=\s*(?P<q>[\"']?)"
    r"(?P<value>[^\s\"'#;`]+)(?P=q)"
)
_GENERIC_ENV = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD|PRIVATE_KEY)$")
HOME_FILES = (
    ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zshenv", ".zprofile",
    ".kshrc", ".envrc", ".env", ".impromptu/env", ".config/fish/config.fish",
)
SCANNED_SUFFIXES = (".env", ".service", ".conf", ".timer", ".sh", "rc", "crontab", "env")


@dataclass(frozen=True)
class Finding:
    """One plaintext secret on one line. ``value`` is a :class:`Secret`."""

    path: Path
    line: int  # 1-based
    kind: str  # impromptu-api-key | openrouter-key | vault-token | hex-key | env:<NAME>
    env: str  # the variable it was assigned to, or ""
    name: str | None  # the canonical secret name --fix would use; None = report only
    value: Secret

    @property
    def masked(self) -> str:
        return mask(self.value.reveal())


def _kind_of(value: str) -> tuple[str, str | None]:
    if value.startswith(contract.API_KEY_PREFIX):
        return "impromptu-api-key", contract.IMPROMPTU_API_KEY
    if value.startswith(contract.OPENROUTER_KEY_PREFIX):
        return "openrouter-key", contract.OPENROUTER_API_KEY
    if value.startswith(("hvs.", "hvb.", "hvr.", "s.")):
        return "vault-token", None
    return "hex-key", None


def find_in_text(text: str, path: Path) -> list[Finding]:
    """All findings in ``text`` (the contents of ``path``). Pure."""
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), start=1):
        # A line we already moved holds masked assignments; still check it for key shapes.
        ours = line.lstrip().startswith(MARKER)
        taken: list[tuple[int, int]] = []
        for m in () if ours else _ASSIGN.finditer(line):
            env, value = m.group("env"), m.group("value")
            if value.startswith("$") or len(value) < 8 or MASK in value:
                continue
            if env in ENV_TO_NAME:
                found.append(Finding(path, number, f"env:{env}", env, ENV_TO_NAME[env],
                                     Secret(value, ENV_TO_NAME[env])))
            elif contract.KEY_SHAPES.fullmatch(value):
                kind, name = _kind_of(value)
                if kind == "hex-key" and re.search(r"PRIVATE|WALLET", env):
                    name = contract.WALLET_PRIVATE_KEY
                found.append(Finding(path, number, kind, env, name, Secret(value)))
            elif _GENERIC_ENV.search(env) and len(value) >= 12:
                found.append(Finding(path, number, f"env:{env}", env, None, Secret(value)))
            else:
                continue
            taken.append(m.span("value"))
        for m in contract.KEY_SHAPES.finditer(line):
            if any(a <= m.start() < b for a, b in taken):
                continue
            kind, name = _kind_of(m.group(0))
            found.append(Finding(path, number, kind, "", name, Secret(m.group(0))))
    return found


def rewrite(text: str, moved: Sequence[Finding], note: str) -> str:
    """``text`` with every line holding a moved finding replaced by a masked comment. Pure.

    The comment keeps the line's indentation and shape with every secret masked, so the
    operator can see what was there; the values themselves are gone.
    """
    by_line: dict[int, list[Finding]] = {}
    for f in moved:
        by_line.setdefault(f.line, []).append(f)
    out: list[str] = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        if number not in by_line:
            out.append(line)
            continue
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        for f in by_line[number]:
            body = body.replace(f.value.reveal(), f.masked)
        body = contract.KEY_SHAPES.sub(lambda m: mask(m.group(0)), body)
        indent = body[: len(body) - len(body.lstrip())]
        names = ", ".join(sorted({f.name or "" for f in by_line[number]}))
        out.append(f"{indent}{MARKER} {names} "
                   f"({note}); was: {body.strip()}{ending or chr(10)}")
    return "".join(out)


def default_paths(home: Path, cwd: Path, system: bool = True) -> list[Path]:
    """Where plaintext keys usually hide: shell rc files, env files, user and system
    systemd units, crontabs. Only existing paths are returned."""
    paths = [home / f for f in HOME_FILES]
    paths.append(cwd / ".env")
    paths.append(home / ".config" / "systemd" / "user")
    paths.append(home / ".config" / "environment.d")
    if system:
        user = getpass.getuser()
        paths += [Path("/var/spool/cron/crontabs") / user, Path("/var/spool/cron") / user,
                  Path("/etc/crontab"), Path("/etc/cron.d"), Path("/etc/systemd/system"),
                  Path("/etc/environment")]
    seen: list[Path] = []
    for p in paths:
        if p.exists() and p not in seen:
            seen.append(p)
    return seen


def _files(paths: Iterable[Path]) -> Iterable[Path]:
    for p in paths:
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if d not in (".git", "node_modules", ".venv")]
                for f in sorted(files):
                    yield Path(root) / f
        else:
            yield p


@dataclass
class ScanReport:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _read(path: Path) -> str | None:
    try:
        data = files.read_regular(path, what="file", limit=MAX_FILE_BYTES)
    except OpsError:  # a FIFO, a device, too large, unreadable: skipped, never a hang
        return None
    if b"\0" in data[:4096]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def scan(paths: Sequence[Path]) -> ScanReport:
    """Scan files and folders (recursively) for plaintext secrets.

    Unreadable, binary or oversized files are listed in ``skipped``, never an error.
    """
    report = ScanReport()
    for path in _files(paths):
        text = _read(path)
        if text is None:
            if path.exists():
                report.skipped.append((path, "unreadable, binary or too large"))
            continue
        report.files += 1
        report.findings.extend(find_in_text(text, path))
    return report


@dataclass
class FixReport:
    moved: list[Finding] = field(default_factory=list)
    left: list[tuple[Finding, str]] = field(default_factory=list)  # finding, why
    backups: list[tuple[Path, str]] = field(default_factory=list)  # file, backup secret
    stored: list[tuple[str, int]] = field(default_factory=list)  # name, version


def _put_if_absent(store: SecretStore, name: str, value: Secret) -> tuple[str, int | None]:
    """Store ``value`` unless the store already has it. ``("conflict", None)`` when the
    store holds a different current value (we never overwrite a possibly newer key)."""
    try:
        current = store.read(name)
    except SecretNotFound:
        try:
            meta_version = store.metadata(name).current_version
        except SecretNotFound:
            meta_version = 0
        return "stored", store.write(name, {"value": value}, cas=meta_version)
    if current.data.get("value") == value:
        return "same", None
    return "conflict", None


def _backup_name(path: Path, data: bytes) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", path.name.lower()).strip("-")[:40] or "file"
    return f"_scan-backup/{slug}-{hashlib.sha256(data).hexdigest()[:12]}"


def fix(store: SecretStore, report: ScanReport, now: datetime | None = None) -> FixReport:
    """Move named findings into ``store`` and rewrite their files (see the module doc).

    A file that cannot be read or rewritten (permissions) is reported in ``left`` and the
    others are still processed.

    Raises:
        StoreError: the store failed; files not yet rewritten are left untouched.
    """
    now = now or datetime.now(UTC)
    result = FixReport()
    by_file: dict[Path, list[Finding]] = {}
    for f in report.findings:
        if f.name is None:
            result.left.append((f, "no canonical name: move or revoke it by hand"))
        else:
            by_file.setdefault(f.path, []).append(f)
    for path, findings in by_file.items():
        real = path.resolve()
        try:
            got = files.read_with_stat(real, what="file", limit=MAX_FILE_BYTES)
        except OpsError as exc:
            result.left += [(f, exc.message) for f in findings]
            continue
        if got is None:
            result.left += [(f, "the file is gone") for f in findings]
            continue
        original, st = got
        mode = stat.S_IMODE(st.st_mode)
        moved: list[Finding] = []
        for f in findings:
            assert f.name is not None
            try:
                outcome, version = _put_if_absent(store, f.name, f.value)
            except CasConflict:
                outcome, version = "conflict", None
            if outcome == "conflict":
                result.left.append((f, f"the store already holds a different {f.name}"))
                continue
            if version is not None:
                result.stored.append((f.name, version))
            moved.append(f)
        if not moved:
            continue
        backup = _backup_name(real, original)
        with contextlib.suppress(CasConflict):  # the same content was backed up before
            store.write(backup, {"value": Secret(original.decode("utf-8", "replace"))}, cas=0)
        store.set_custom_metadata(backup, {"path": str(real), "taken": now.isoformat()})
        result.backups.append((real, backup))
        text = original.decode("utf-8", errors="replace")
        new = rewrite(text, moved, f"{now:%Y-%m-%d}; backup {backup}")
        try:
            unchanged = files.read_optional(real, what="file", limit=MAX_FILE_BYTES) == original
        except OpsError:
            unchanged = False
        if not unchanged:
            result.left += [(f, "the file changed while we worked; run the fix again")
                            for f in moved]
            continue
        try:
            atomic.write_bytes(real, new.encode("utf-8"), mode=mode)
        except OSError as exc:
            result.left += [(f, f"stored, but the file cannot be rewritten ({exc.strerror}): "
                                "remove the line by hand") for f in moved]
            continue
        result.moved += moved
    return result
