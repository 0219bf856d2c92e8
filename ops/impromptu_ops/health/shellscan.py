"""Find plaintext keys in the operator's shell start-up files (read-only).

The original scripts told operators to ``export IMPROMPTU_API_KEY=...`` in their shell rc
files; health reports any key left there. Two signals: a key *shape* from
:data:`impromptu_ops.contract.KEY_SHAPES` anywhere in the file, or an assignment of a
literal value to one of the secret environment names of
:data:`impromptu_ops.contract.SECRET_ENV` (``$(...)`` and ``${...}`` references are fine:
they fetch the value from somewhere else at run time).

This module only finds; fixing (moving the value into the store and removing the line) is
``impromptu-ops secrets scan --fix``. Findings carry the file, the line and what matched,
never the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from impromptu_ops import contract

SHELL_FILES = (
    ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zshenv", ".zprofile",
    ".kshrc", ".config/fish/config.fish", ".envrc", ".env",
)
MAX_FILE_BYTES = 2 * 1024 * 1024
_ASSIGN = re.compile(
    r"^\s*(?:export\s+|set\s+-[gx]+\s+|setenv\s+)?(?P<name>"
    + "|".join(re.escape(n) for n in contract.SECRET_ENV.values())
    + r")(?:=|\s+)(?P<value>\S+)"
)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    what: str  # the variable name or the key kind; never the value


def _kind(match: str) -> str:
    for prefix in contract.KEY_PREFIXES:
        if match.startswith(prefix):
            return f"{prefix}… key"
    return "key-shaped value"


def scan_text(path: Path, text: str) -> list[Finding]:
    found: list[Finding] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        m = _ASSIGN.match(line)
        if m and not m["value"].lstrip("\"'").startswith(("$", "`")) and m["value"].strip(
                "\"'"):
            found.append(Finding(path, n, m["name"]))
            continue
        shape = contract.KEY_SHAPES.search(line)
        if shape:
            found.append(Finding(path, n, _kind(shape.group(0))))
    return found


def scan_shell_files(home: Path) -> list[Finding]:
    """Scan the usual start-up files under ``home``; unreadable files are skipped."""
    found: list[Finding] = []
    for rel in SHELL_FILES:
        path = home / rel
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_FILE_BYTES)
        except OSError:
            continue
        found += scan_text(path, data.decode("utf-8", "replace"))
    return found
