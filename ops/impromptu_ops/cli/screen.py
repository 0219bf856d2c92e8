"""``impromptu-ops screen FILE|-``: the prompt-content rules on any text.

Use it on text that will become a system prompt (a thread's content fetched from the
platform, a draft SKILL.md). Prints the findings; exits 1 when any is a deny finding.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import out, out_json
from impromptu_ops.cli.update import findings_table
from impromptu_ops.errors import PolicyDenied
from impromptu_ops.gate.gate import UpdateGate
from impromptu_ops.gate.policy import deny_rules


@click.command("screen")
@click.argument("source", type=click.Path(path_type=Path, allow_dash=True, exists=True,
                                          dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print {findings, deny} as JSON.")
@pass_app
def screen(app: App, source: Path, as_json: bool) -> None:
    """Screen FILE (or - for stdin) with the prompt-content rules of the update policy."""
    from impromptu_ops import files

    settings = app.settings()
    name = str(source)
    if name == "-":
        stream = sys.stdin.buffer
    else:  # a regular file only, opened without blocking (a FIFO must not hang us)
        stream = io.BytesIO(files.read_regular(source, what="file", head=True,
                                               limit=settings.gate.max_file_bytes + 1))
    findings = UpdateGate(settings).screen(stream, name)
    denied = deny_rules(findings)
    if as_json:
        out_json({"findings": [f.as_dict() for f in findings], "deny": denied})
    else:
        out(findings_table(findings))
    if denied:
        raise PolicyDenied(f"{name}: deny findings: {', '.join(denied)}")
