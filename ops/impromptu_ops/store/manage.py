"""Private: What the ``secrets`` commands do with a store: put, history, rollback, import.

Every write here is check-and-set against the version just read, so two operators (or an
operator and a rotation job) cannot silently overwrite each other. Values are checked
against the known key shapes before they are stored, so a truncated paste or the wrong
key in the wrong slot is refused (``force`` overrides).

This module owns those small workflows; it does not prompt, print or parse flags (the
CLI does) and it does not know which backend it talks to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from impromptu_ops import contract, files
from impromptu_ops.errors import InputError, SecretNotFound
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore, VersionInfo, check_name

_SHAPES: Mapping[str, re.Pattern[str]] = {
    contract.IMPROMPTU_API_KEY: contract.API_KEY_RE,
    contract.OPENROUTER_API_KEY: re.compile(r"^sk-or-[A-Za-z0-9_-]{16,}$"),
    contract.OPENROUTER_MANAGEMENT_KEY: re.compile(r"^sk-or-[A-Za-z0-9_-]{16,}$"),
    contract.OPENROUTER_PROVISIONING_KEY: re.compile(r"^sk-or-[A-Za-z0-9_-]{16,}$"),
    contract.WALLET_PRIVATE_KEY: re.compile(r"^(0x)?[0-9a-fA-F]{64}$"),
}
_ENV_LINE = re.compile(
    r"^\s*(?:export\s+)?(?P<env>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")
MAX_VALUE_BYTES = 64 * 1024


def canonical(name: str) -> str:
    """Accept a canonical secret name (or an internal ``_``-prefixed one).

    Raises:
        InputError: anything else, listing the canonical names.
    """
    if name in contract.SECRET_NAMES or (name.startswith("_") and check_name(name)):
        return name
    raise InputError(f"unknown secret name {name[:40]!r}: use one of "
                     + ", ".join(contract.SECRET_NAMES))


def value_problem(value: Secret) -> str | None:
    """Why ``value`` cannot be any secret (always refused), or ``None``. Pure."""
    raw = value.reveal()
    if not raw or raw != raw.strip():
        return "the value is empty or has surrounding whitespace"
    if len(raw.encode()) > MAX_VALUE_BYTES:
        return "the value is implausibly long"
    if "\n" in raw or "\0" in raw:
        return "the value contains a newline or NUL"
    return None


def shape_problem(name: str, value: Secret) -> str | None:
    """Why ``value`` does not look like a ``name`` (refused unless forced), or ``None``."""
    shape = _SHAPES.get(name)
    if shape is not None and not shape.match(value.reveal()):
        return f"the value does not have the shape of {name}"
    return None


def current_version(store: SecretStore, name: str) -> int:
    """The version a check-and-set write must name (0 when the secret does not exist)."""
    try:
        return store.metadata(name).current_version
    except SecretNotFound:
        return 0


def put(store: SecretStore, name: str, value: Secret, *, force: bool = False) -> int:
    """Store ``value`` as the new version of ``name``. Returns the version.

    Raises:
        InputError: unknown name, or a value of the wrong shape (unless ``force``).
        CasConflict: someone wrote between our read and our write.
    """
    canonical(name)
    problem = value_problem(value)
    if problem:
        raise InputError(f"refusing to store {name}: {problem}")
    problem = None if force else shape_problem(name, value)
    if problem:
        raise InputError(f"refusing to store {name}: {problem}",
                         hint="use --force if you are sure")
    return store.write(name, {"value": value}, cas=current_version(store, name))


def history(store: SecretStore, name: str) -> tuple[int, tuple[VersionInfo, ...]]:
    """``(current version, versions oldest first)``."""
    meta = store.metadata(canonical(name))
    return meta.current_version, meta.versions


def rollback(store: SecretStore, name: str, version: int) -> int:
    """Make ``version``'s value current again (as a new version). Returns that version."""
    return store.rollback(canonical(name), version)


@dataclass
class ImportReport:
    stored: list[tuple[str, int]] = field(default_factory=list)  # name, version
    unchanged: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # name, why


def import_values(store: SecretStore, found: Mapping[str, Secret],
                  force: bool = False) -> ImportReport:
    """Store each ``{secret name: value}``; identical current values are left alone."""
    report = ImportReport()
    for name, value in found.items():
        try:
            if store.read(name).data.get("value") == value:
                report.unchanged.append(name)
                continue
        except SecretNotFound:
            pass
        try:
            report.stored.append((name, put(store, name, value, force=force)))
        except InputError as exc:
            report.refused.append((name, exc.message))
    return report


def values_from_env(env: Mapping[str, str]) -> dict[str, Secret]:
    """The canonical secrets present in an environment, by the original scripts' names."""
    return {name: Secret(env[var], name) for name, var in contract.SECRET_ENV.items()
            if env.get(var)}


def parse_env_file(text: str) -> dict[str, Secret]:
    """Read ``NAME=value`` / ``export NAME="value"`` lines; keep the known names. Pure.

    Quotes are removed (single quotes literally, double quotes without expansion); values
    that reference something else (``$VAR``, ``$(cmd)``) are ignored.
    """
    wanted = {var: name for name, var in contract.SECRET_ENV.items()}
    found: dict[str, Secret] = {}
    for line in text.splitlines():
        m = _ENV_LINE.match(line)
        if not m or m.group("env") not in wanted or line.lstrip().startswith("#"):
            continue
        value = m.group("value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if not value or value.startswith("$"):
            continue
        found[wanted[m.group("env")]] = Secret(value, wanted[m.group("env")])
    return found


def read_env_file(path: Path) -> dict[str, Secret]:
    """:func:`parse_env_file` on a file.

    Raises:
        InputError: missing, unreadable or oversized file.
    """
    text = files.read_text(path, what="env file", limit=1024 * 1024)
    return parse_env_file(text)
