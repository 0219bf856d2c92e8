"""Private: Prometheus text exposition for the node_exporter textfile collector.

A scheduled job (the heartbeat) leaves its metrics in a ``*.prom`` file that node_exporter
reads on each scrape. The collector may read at any instant, so the file is written the
way ``prometheus_client.write_to_textfile`` does: temp file in the same folder, fsync,
rename (:mod:`impromptu_ops.atomic`). It is world-readable (0644): metrics are not
secrets, and node_exporter usually runs as another user.

This module renders and writes; it does not decide which metrics a job exports.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from impromptu_ops import atomic

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TEXTFILE_MODE = 0o644
TEXTFILE_DIR_MODE = 0o755


@dataclass(frozen=True)
class Sample:
    """One sample of a gauge or counter family."""

    name: str
    value: float
    help: str = ""
    kind: str = "gauge"
    labels: Mapping[str, str] = field(default_factory=dict)


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _escape(value: str) -> str:
    # The format escapes only backslash, quote and newline; other control characters are
    # legal but break line-oriented tools (and our own tests), so they become spaces.
    value = _CONTROL.sub(" ", value)
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


def render(samples: Iterable[Sample]) -> str:
    """The exposition text; samples of one family are grouped under one HELP/TYPE.

    Raises:
        ValueError: a metric or label name that Prometheus would reject (a bug, not input).
    """
    families: dict[str, list[Sample]] = {}
    for s in samples:
        if not _NAME_RE.match(s.name) or any(not _LABEL_RE.match(k) for k in s.labels):
            raise ValueError(f"invalid metric or label name in {s.name!r}")
        families.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, group in families.items():
        first = group[0]
        if first.help:
            lines.append(f"# HELP {name} {first.help.replace(chr(10), ' ')}")
        lines.append(f"# TYPE {name} {first.kind}")
        for s in group:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            lines.append(f"{name}{{{labels}}} {_value(s.value)}" if labels
                         else f"{name} {_value(s.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def write_textfile(path: Path, samples: Iterable[Sample]) -> None:
    """Atomically replace ``path`` with the rendered samples (mode 0644).

    A missing folder is created 0755 (not private): the collector (node_exporter) runs as
    another user and must read the file; metrics hold no secret.
    """
    folder = path.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(TEXTFILE_DIR_MODE)  # explicit: a unit's UMask=0077 would hide it
    atomic.write_text(path, render(samples), mode=TEXTFILE_MODE)
