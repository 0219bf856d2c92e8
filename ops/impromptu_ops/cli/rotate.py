"""``impromptu-ops rotate``: crash-safe key rotation for schedulers and people.

Exit codes (the issue's contract, for unattended runs): 0 done (or nothing to do, a
retirement not due yet, or rotation not supported: the report says when the key
expires), 75 another rotation holds the lock or the record, or a new rotation waits for
the previous old key's retirement (try later), 1 failed (or the reload hook failed) with
the agent still on a working key, 2 the agent may be without a working key (page
someone). A usage error exits 64 so that it can never be mistaken for 2.
"""

from __future__ import annotations

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out, out_json, table
from impromptu_ops.errors import OpsError
from impromptu_ops.secret import clip

PROVIDER_NAMES = ("openrouter", "impromptu", "vault-secret-id")
EX_USAGE = 64


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    from impromptu_ops.rotation.policy import parse_duration

    try:
        return parse_duration(value)
    except OpsError as exc:
        raise click.BadParameter(exc.message) from None


def _finish(outcomes: list[object], as_json: bool) -> None:
    from impromptu_ops.rotation.engine import Outcome
    from impromptu_ops.rotation.service import combined_exit

    got = [o for o in outcomes if isinstance(o, Outcome)]
    for o in got:
        if as_json:
            out_json(o.as_dict())
        else:
            line = o.message if o.provider == "-" else f"{o.provider}: {o.message}"
            (out if o.exit_code == 0 else err)(line)
    raise click.exceptions.Exit(combined_exit(got))


def _mapped(exc: OpsError) -> int:
    """Errors before or around a run: 75 stays 75; anything else changed nothing: 1."""
    return 75 if exc.exit_code == 75 else 1


class RotateGroup(click.Group):
    usage_exit_code = EX_USAGE


@click.group("rotate", cls=RotateGroup)
def rotate() -> None:
    """Rotate a key without ever leaving the agent without a working one.

    Steps: intent recorded, new key created and stored as pending, verified with a real
    call, handed over, made current (the reload hook runs), then after the grace period
    (the old key keeps working meanwhile) a later run disables and deletes the old key.
    Every step is in the audit log and `rotate status`. After a crash: `rotate resume`.
    """


def _provider_command(name: str) -> click.Command:
    @click.command(name, help=f"Rotate the {name} key now.")
    @click.option("--grace", callback=_duration, metavar="DURATION",
                  help="Keep the old key WORKING this long after the new one is current; a "
                       "later run (resume, --if-due) then disables and deletes it (24h, 90m; "
                       "0 = at once). Default: policies/rotation.toml.")
    @click.option("--on-rotate", metavar="CMD",
                  help="Run CMD (no shell; the key is not passed) once the new key is "
                       "current, so running consumers reload, e.g. 'systemctl reload "
                       "my-agent'. '' disables the policy's on_rotate.")
    @click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
    @click.option("--if-due", is_flag=True,
                  help="Rotate only when the key is older than the policy's max_age_days.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per outcome.")
    @pass_app
    def command(app: App, grace: float | None, on_rotate: str | None, dry_run: bool,
                if_due: bool, as_json: bool, old_key_hash: str | None = None) -> None:
        from impromptu_ops.api import Agent

        try:
            outcome = Agent.from_settings(app.settings()).rotate(
                name, grace=grace, dry_run=dry_run, if_due=if_due, on_rotate=on_rotate,
                old_key_hash=old_key_hash)
        except OpsError as exc:
            err(f"impromptu-ops: rotate {name}: {exc.diagnostics()}")
            raise click.exceptions.Exit(_mapped(exc)) from None
        _finish([outcome], as_json)

    if name == "openrouter":  # OpenRouter's key hash is opaque: the user may have to name it
        command = click.option(
            "--old-key-hash", metavar="HASH",
            help="The current key's OpenRouter hash, when the store does not record it and "
                 "GET /key cannot be matched to exactly one listed key.")(command)
    return command


for _name in PROVIDER_NAMES:
    rotate.add_command(_provider_command(_name))


@rotate.command("resume")
@click.argument("provider", required=False, type=click.Choice(PROVIDER_NAMES))
@click.option("--force", is_flag=True,
              help="Take over a record another host still holds (only if that host is gone).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per outcome.")
@pass_app
def resume(app: App, provider: str | None, force: bool, as_json: bool) -> None:
    """Continue every interrupted rotation (or PROVIDER's) from its recorded step."""
    from impromptu_ops.api import Agent

    try:
        outcomes = Agent.from_settings(app.settings()).resume_rotations(provider, force=force)
    except OpsError as exc:
        err(f"impromptu-ops: rotate resume: {exc.diagnostics()}")
        raise click.exceptions.Exit(_mapped(exc)) from None
    _finish(list(outcomes), as_json)


@rotate.command("rollback")
@click.argument("provider", required=False, type=click.Choice(PROVIDER_NAMES))
@click.option("--force", is_flag=True, help="Take over a record another host still holds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@pass_app
def rollback(app: App, provider: str | None, force: bool, as_json: bool) -> None:
    """Undo an unfinished rotation: the old key becomes current again, the new one dies."""
    from impromptu_ops.api import Agent

    try:
        outcome = Agent.from_settings(app.settings()).roll_back_rotation(provider, force=force)
    except OpsError as exc:
        err(f"impromptu-ops: rotate rollback: {exc.diagnostics()}")
        raise click.exceptions.Exit(_mapped(exc)) from None
    _finish([outcome], as_json)


@rotate.command("status")
@click.argument("provider", required=False, type=click.Choice(PROVIDER_NAMES))
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option("--lines", default=10, show_default=True, type=click.IntRange(0, 10_000),
              help="Audit entries per provider.")
@pass_app
def status(app: App, provider: str | None, as_json: bool, lines: int) -> None:
    """Show each rotation's record (ids, step, times; never values) and its audit trail."""
    from impromptu_ops.api import Agent

    try:
        views = Agent.from_settings(app.settings()).rotation_status(provider,
                                                                    audit_lines=lines)
    except OpsError as exc:
        err(f"impromptu-ops: rotate status: {exc.diagnostics()}")
        raise click.exceptions.Exit(_mapped(exc)) from None
    if as_json:
        out_json(views)
        return
    if not views:
        out("no rotation has run yet")
    for view in views:
        rec = view["record"]
        out(f"== {view['provider']} (audit chain {view['audit_chain']})")
        if rec is None:
            out("no rotation record")
        else:
            out(table([(k, "" if v is None else str(v)) for k, v in rec.items()]))
        rows = [(str(e.get("ts", "")), str(e.get("event", "")),
                 str(e.get("step", e.get("at_step", ""))),
                 clip(str(e.get("reason", e.get("error", ""))), 80)) for e in view["audit"]]
        if rows:
            out(table(rows, ("time", "event", "step", "note")))
