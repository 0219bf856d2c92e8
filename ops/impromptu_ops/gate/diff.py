"""Private: The reviewable diff between the installed tree and the candidate, and its summary
(pure).

:func:`render_diff` produces one unified diff in git's layout (``diff --git``, mode lines,
``---``/``+++`` headers, hunks). Every control, format, bidi or invisible character is shown
as ``<U+XXXX>`` (see :func:`~.scan.visible`), so a terminal escape or a zero-width
character in the candidate cannot hide or rewrite a line on the reviewer's screen. A file
that lacks a final newline shows ``<no newline at end of file>`` on its last line. Binary
files are described by size and SHA-256.

The rendered text is an input of the review digest: it must depend on the two trees only
(no colours, no dates, no terminal width). :func:`colourize` adds ANSI colours for a TTY.

This module does not decide anything (see :mod:`.policy`) and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from impromptu_ops.gate.linediff import unified_diff
from impromptu_ops.gate.scan import visible
from impromptu_ops.gate.tree import Tree, TreeFile

CONTEXT_LINES: Final = 3
NO_EOL: Final = " <no newline at end of file>"
_UNLIMITED: Final = 10**9


@dataclass(frozen=True)
class Summary:
    """What the change does, in counts and names."""

    from_version: str | None
    to_version: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    mode_changes: tuple[tuple[str, int, int], ...]
    new_executables: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fromVersion": self.from_version,
            "toVersion": self.to_version,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "modeChanges": [{"path": p, "old": f"{o:o}", "new": f"{n:o}"}
                            for p, o, n in self.mode_changes],
            "newExecutables": list(self.new_executables),
        }


def summarize(old: Tree, new: Tree, from_version: str | None, to_version: str) -> Summary:
    """Count and name the files added, removed, changed, re-moded, newly executable."""
    added = tuple(p for p in new if old.get(p) is None)
    removed = tuple(p for p in old if new.get(p) is None)
    changed: list[str] = []
    modes: list[tuple[str, int, int]] = []
    new_exec: list[str] = []
    for p in new:
        nf, of = new.get(p), old.get(p)
        assert nf is not None
        if of is None:
            if nf.executable:
                new_exec.append(p)
            continue
        if of.data != nf.data:
            changed.append(p)
        if of.mode != nf.mode:
            modes.append((p, of.mode, nf.mode))
            if nf.executable and not of.executable:
                new_exec.append(p)
    return Summary(from_version, to_version, added, removed, tuple(changed), tuple(modes),
                   tuple(new_exec))


def _lines(f: TreeFile | None) -> list[str] | None:
    """Display lines of a text file, or ``None`` when it is binary."""
    if f is None:
        return []
    try:
        text = f.data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text == "":
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    else:
        parts[-1] += "\x00NOEOL"
    return [
        visible(p.removesuffix("\x00NOEOL"), _UNLIMITED) + (NO_EOL if p.endswith("\x00NOEOL")
                                                           else "")
        for p in parts
    ]


def _file_diff(path: str, of: TreeFile | None, nf: TreeFile | None) -> list[str]:
    shown = visible(path, _UNLIMITED)
    out = [f"diff --git a/{shown} b/{shown}"]
    if of is None and nf is not None:
        out.append(f"new file mode 100{nf.mode:o}")
    elif nf is None and of is not None:
        out.append(f"deleted file mode 100{of.mode:o}")
    elif of is not None and nf is not None and of.mode != nf.mode:
        out += [f"old mode 100{of.mode:o}", f"new mode 100{nf.mode:o}"]
    if of is not None and nf is not None and of.data == nf.data:
        return out
    a, b = _lines(of), _lines(nf)
    if a is None or b is None:
        osz = f"{len(of.data)} bytes sha256 {of.sha256[:16]}" if of else "nothing"
        nsz = f"{len(nf.data)} bytes sha256 {nf.sha256[:16]}" if nf else "nothing"
        out.append(f"Binary files differ: {osz} -> {nsz}")
        return out
    out += list(unified_diff(
        a, b,
        fromfile="/dev/null" if of is None else f"a/{shown}",
        tofile="/dev/null" if nf is None else f"b/{shown}",
        n=CONTEXT_LINES,
    ))
    if of is not None and nf is not None and len(out) and not any(
        line.startswith("@@") for line in out
    ):
        out.append(f"(bytes differ but render alike: sha256 {of.sha256[:16]} -> {nf.sha256[:16]})")
    if (of is None or nf is None) and not a and not b:
        out.append("(empty file)")
    return out


def render_diff(old: Tree, new: Tree) -> str:
    """The unified diff from ``old`` to ``new``, every file in path order; ``""`` if equal."""
    paths = sorted(set(old.files) | set(new.files))
    out: list[str] = []
    for p in paths:
        of, nf = old.get(p), new.get(p)
        if of is not None and nf is not None and of.data == nf.data and of.mode == nf.mode:
            continue
        out += _file_diff(p, of, nf)
    return "\n".join(out) + ("\n" if out else "")


_COLOURS: Final = (
    ("diff --git", "\x1b[1m"), ("+++", "\x1b[1m"), ("---", "\x1b[1m"), ("@@", "\x1b[36m"),
    ("+", "\x1b[32m"), ("-", "\x1b[31m"), ("old mode", "\x1b[33m"), ("new mode", "\x1b[33m"),
    ("new file mode", "\x1b[33m"), ("deleted file mode", "\x1b[33m"),
)


def colourize(diff_text: str) -> str:
    """ANSI colours for a terminal. Safe: the diff holds no raw control characters."""
    out: list[str] = []
    for line in diff_text.split("\n"):
        shown = line
        for prefix, code in _COLOURS:
            if line.startswith(prefix):
                shown = f"{code}{line}\x1b[0m"
                break
        out.append(shown)
    return "\n".join(out)
