"""Everything the CLI prints goes through here, redacted.

``out`` writes results to stdout; ``err`` writes notes and warnings to stderr. Both pass
the text through the process redactor, so even a bug that formats a secret into a message
prints its mask. Commands never call ``print`` or ``click.echo`` directly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from impromptu_ops.secret import REDACTOR


def out(text: str = "", nl: bool = True) -> None:
    click.echo(REDACTOR.redact(text), nl=nl)


def err(text: str = "", nl: bool = True) -> None:
    click.echo(REDACTOR.redact(text), nl=nl, err=True)


def out_json(value: Any) -> None:
    """One JSON document on stdout (one line: friendly to ``jq`` and log shippers)."""
    out(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False))


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def table(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """A plain aligned text table (no colours: safe in logs and cron mail)."""
    allrows: list[Sequence[str]] = [header] if header else []
    allrows.extend(rows)
    if not allrows:
        return ""
    widths = [max(len(r[i]) for r in allrows) for i in range(len(allrows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in allrows]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
