"""``impromptu-ops screen FILE|-``: the prompt-content rules on any text.

Use it on text that will become a system prompt (a thread's content fetched from the
platform, a draft SKILL.md). Prints the findings; exits 1 when any is a deny finding.
"""

from __future__ import annotations

from typing import BinaryIO

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import out, out_json
from impromptu_ops.cli.update import findings_table
from impromptu_ops.errors import PolicyDenied
from impromptu_ops.gate.gate import UpdateGate
from impromptu_ops.gate.policy import deny_rules


@click.command("screen")
@click.argument("source", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="Print {findings, deny} as JSON.")
@pass_app
def screen(app: App, source: BinaryIO, as_json: bool) -> None:
    """Screen FILE (or - for stdin) with the prompt-content rules of the update policy."""
    raw_name = str(getattr(source, "name", "-"))
    name = "-" if raw_name in ("<stdin>", "-") else raw_name
    findings = UpdateGate(app.settings()).screen(source, name)
    denied = deny_rules(findings)
    if as_json:
        out_json({"findings": [f.as_dict() for f in findings], "deny": denied})
    else:
        out(findings_table(findings))
    if denied:
        raise PolicyDenied(f"{name}: deny findings: {', '.join(denied)}")
