"""``impromptu-ops update``: fetch, review, approve, apply and roll back skill updates.

Thin: each command builds an :class:`~impromptu_ops.gate.gate.UpdateGate`, calls one
method, renders the result. All decisions live in :mod:`impromptu_ops.gate`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out, out_json, stdout_is_tty, table
from impromptu_ops.errors import IntegrityError
from impromptu_ops.gate.diff import colourize
from impromptu_ops.gate.gate import Review, UpdateGate
from impromptu_ops.gate.policy import Finding
from impromptu_ops.secret import REDACTOR


def _gate(app: App) -> UpdateGate:
    from impromptu_ops.api import Agent

    return Agent.from_settings(app.settings()).updates


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def findings_table(findings: tuple[Finding, ...] | list[Finding]) -> str:
    if not findings:
        return "no policy findings"
    return table([(f.severity.upper(), f.rule, f.where(), f.message, f.excerpt)
                  for f in findings], ("severity", "rule", "where", "what", "excerpt"))


def summary_text(rev: Review) -> str:
    s = rev.summary
    lines = [
        f"candidate {s.to_version} (installed: {s.from_version or 'nothing'}) from {rev.origin}",
        f"signature: {rev.signature}" + ("; DOWNGRADE explicitly allowed"
                                         if rev.allow_downgrade else ""),
        f"files: {len(s.added)} added, {len(s.removed)} removed, {len(s.changed)} changed, "
        f"{len(s.mode_changes)} mode changes",
    ]
    for label, names in (("added", s.added), ("removed", s.removed), ("changed", s.changed),
                         ("new executables", s.new_executables)):
        if names:
            lines.append(f"  {label}: {', '.join(names)}")
    for path, old, new in s.mode_changes:
        lines.append(f"  mode {path}: {old:o} -> {new:o}")
    deny = rev.deny_rules
    lines.append(findings_table(rev.findings))
    lines.append(f"deny rules: {', '.join(deny)}" if deny else "deny rules: none")
    lines.append(f"digest: {rev.digest}")
    return "\n".join(lines)


@click.group("update")
@click.option("--skill-dir", type=click.Path(path_type=Path, file_okay=False),
              help="The installed skill's folder (default: <data dir>/skill).")
@pass_app
def update(app: App, skill_dir: Path | None) -> None:
    """Review-gated skill updates: nothing lands unless you approved that exact diff.

    Flow: `fetch` -> `diff` -> `approve` -> `apply` (and `rollback`). The gate never runs
    anything from an update: no hooks, no scripts.
    """
    if skill_dir is not None:
        app.overrides["gate.skill_dir"] = skill_dir


@update.command("fetch")
@click.argument("source", required=False)
@click.option("--allow-downgrade", is_flag=True,
              help="Accept a candidate that is not newer than the installed one (logged).")
@click.option("--json", "as_json", is_flag=True, help="Print {digest, summary, findings}.")
@pass_app
def fetch(app: App, source: str | None, allow_downgrade: bool, as_json: bool) -> None:
    """Download SOURCE (default: the platform manifest; or a folder or tarball) into quarantine."""
    rev = _gate(app).fetch(source, allow_downgrade=allow_downgrade)
    if as_json:
        out_json(rev.as_json())
        return
    out(summary_text(rev))
    err("quarantined; review with `impromptu-ops update diff`")


@update.command("diff")
@click.option("--json", "as_json", is_flag=True, help="Print {digest, summary, findings}.")
@click.option("--color/--no-color", "colour", default=None,
              help="Colour the diff on a terminal (default: on).")
@click.option("--pager/--no-pager", default=None, help="Page a long diff (default: on a TTY).")
@pass_app
def diff(app: App, as_json: bool, colour: bool | None, pager: bool | None) -> None:
    """Show the unified diff installed -> candidate, its summary, findings and digest."""
    gate = _gate(app)
    rev = gate.review()
    if as_json:
        out_json(rev.as_json())
        return
    tty = stdout_is_tty()
    body = rev.diff or "(no file changes)\n"
    if colour if colour is not None else tty:
        body = colourize(body)
    text = body.rstrip("\n") + "\n\n" + summary_text(rev)
    long = text.count("\n") > gate.settings.gate.pager_lines
    if (pager if pager is not None else tty) and long:
        click.echo_via_pager(REDACTOR.redact(text))  # redacted like every other output
    else:
        out(text)


@update.command("approve")
@click.option("--digest", help="The digest you reviewed; must match exactly.")
@click.option("--yes", is_flag=True, help="Non-interactive; requires --digest.")
@click.option("--override", "overrides", multiple=True, metavar="RULE",
              help="Approve despite deny findings of RULE (one flag per rule; logged).")
@pass_app
def approve(app: App, digest: str | None, yes: bool, overrides: tuple[str, ...]) -> None:
    """Approve the reviewed candidate: binds an approval to one digest."""
    if yes and not digest:
        raise click.UsageError("--yes needs --digest D: the digest you reviewed")

    def ask(rev: Review) -> bool:
        out(summary_text(rev))
        for rule in overrides:
            err(f"WARNING: overriding deny rule {rule!r}; this is logged")
        typed = click.prompt("Type the first 12 characters of the digest to approve",
                             default="", show_default=False, err=True)
        return bool(typed.strip()) and rev.digest.startswith(typed.strip().lower()) \
            and len(typed.strip()) >= 12

    confirm = None if yes else ask
    if confirm is not None and not _interactive():
        raise click.UsageError("not a terminal: pass --yes --digest D (from `update diff`)")
    record = _gate(app).approve(digest=digest, overrides=overrides, confirm=confirm)
    for rule in record["overrides"]:
        err(f"OVERRIDE {rule}: deny findings approved by {record['approvedBy']} (logged)")
    out(f"approved {record['toVersion']} digest {record['digest']}")


@update.command("apply")
@click.option("--json", "as_json", is_flag=True, help="Print the applied version record.")
@pass_app
def apply(app: App, as_json: bool) -> None:
    """Apply the approved candidate (refused if anything changed since approval)."""
    record = _gate(app).apply()
    if as_json:
        out_json(record)
        return
    prev = record["previous"] or "nothing"
    out(f"applied {record['version']} ({record['slot']}); previous: {prev}")


@update.command("rollback")
@click.option("--to", "to", metavar="SLOT", help="A kept version (see `update status`).")
@pass_app
def rollback(app: App, to: str | None) -> None:
    """Switch back to the previous (or a named) kept version."""
    record = _gate(app).rollback(to)
    out(f"rolled back to {record['version']} ({record['slot']}) from {record['from']}")


@update.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_app
def status(app: App, as_json: bool) -> None:
    """The installed version, the candidate under review, the kept versions."""
    st = _gate(app).status()
    data = {"installed": st.installed, "installedVersion": st.installed_version,
            "candidateVersion": st.candidate_version, "versions": list(st.versions)}
    if as_json:
        out_json(data)
        return
    out(table([(k, str(v)) for k, v in data.items()]))


@update.command("log")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: entries and chain.")
@pass_app
def log(app: App, as_json: bool) -> None:
    """Show the gate's audit log and verify its hash chain (exit 65 if broken)."""
    entries, report = _gate(app).log()
    if as_json:
        out_json({"entries": entries, "chain": {"ok": report.ok, "entries": report.entries,
                                                 "firstBadLine": report.first_bad_line,
                                                 "reason": report.reason}})
    else:
        rows: list[tuple[str, ...]] = []
        for e in entries:
            detail = ", ".join(f"{k}={v}" for k, v in sorted(e.items())
                               if k not in ("seq", "ts", "event", "prev", "hash"))
            rows.append((str(e.get("seq")), str(e.get("ts")), str(e.get("event")), detail))
        out(table(rows, ("seq", "time", "event", "details")) if rows else "(empty log)")
    if not report.ok:
        where = (f"broken at line {report.first_bad_line}" if report.first_bad_line
                 else "incomplete")
        raise IntegrityError(f"audit log {where}: {report.reason}")
    if not as_json:
        err(f"chain verified: {report.entries} entries")
