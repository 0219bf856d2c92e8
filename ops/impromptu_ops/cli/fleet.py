"""``impromptu-ops fleet``: health, heartbeat and rotation for every agent at once.

Thin: the roster (:mod:`impromptu_ops.roster`) names the agents and this process's
shard of them (``JOB_COMPLETION_INDEX`` of ``IMPROMPTU_FLEET_SHARDS`` in a Kubernetes
Indexed Job; all of them otherwise); :mod:`impromptu_ops.fleet` runs the work; this module
renders it and picks the exit code.

Exit codes: ``fleet health`` speaks Nagios (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN — our own
failure, a usage error included, is 3); ``fleet heartbeat`` and ``fleet rotate`` exit 0 when
every agent's run did, else the most severe agent's code (as ``heartbeat`` / ``rotate``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from impromptu_ops.cli import exitcodes
from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.health import _CheckCommand, _unknown
from impromptu_ops.cli.output import err, out, out_json
from impromptu_ops.errors import OpsError
from impromptu_ops.fleet.run import AgentRun
from impromptu_ops.settings import Settings


def _roster(app: App) -> tuple[Settings, list[str]]:
    """The unselected settings and this process's agents (its shard of the fleet)."""
    from impromptu_ops.roster import this_shard

    base = app.file_settings()
    return base, this_shard(base, os.environ)


@click.group("fleet")
def fleet() -> None:
    """Serve every agent of this configuration in one run (see `agents list`).

    In a Kubernetes Indexed Job each pod serves the agents whose SHA-256 shard is its
    JOB_COMPLETION_INDEX out of IMPROMPTU_FLEET_SHARDS.
    """


@fleet.command("health", cls=_CheckCommand)
@click.option("--format", "fmt", type=click.Choice(["text", "nagios", "json", "prometheus"]),
              default="text", show_default=True,
              help="text (one row per agent), nagios (one line naming the failing agents, "
                   "perfdata per agent), json, prometheus (every metric labelled agent).")
@click.option("--check", "checks", multiple=True, metavar="NAME",
              help="Run only this check (repeatable). Default: all.")
@click.option("-t", "--timeout", type=click.FloatRange(0.1, 300), default=None,
              help="Bound every check's timeout to this many seconds.")
@pass_app
@click.pass_context
def health_cmd(ctx: click.Context, app: App, fmt: str, checks: tuple[str, ...],
               timeout: float | None) -> None:
    """Every agent's health checks, concurrently; exit with the worst agent's status."""
    from impromptu_ops.fleet import health as fleet_health
    from impromptu_ops.policy.health import load_policy

    try:
        base, names = _roster(app)
        policy = load_policy(base.paths.policies_dir, base.jobs.health_check_timeout)
        if timeout is not None:
            policy = policy.capped(timeout)
        report = fleet_health.run_fleet_health(base, names, policy, checks)
        text, code = fleet_health.render(report, fmt), fleet_health.exit_code(report)
    except OpsError as exc:
        text, code = "", _unknown(fmt, exc.diagnostics())
    except Exception as exc:  # a bug of ours is UNKNOWN for a monitor, never 70
        text, code = "", _unknown(fmt, f"internal error: {type(exc).__name__}: {exc}")
    if text:
        out(text)
    ctx.exit(code)


health_cmd.usage_exit_code = 3  # type: ignore[attr-defined]


@fleet.command("heartbeat")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: the fleet's exit code and each agent's run.")
@click.option("--metrics-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write every agent's heartbeat metrics (labelled agent) here, atomically "
                   "(default: jobs.metrics_file).")
@pass_app
@click.pass_context
def heartbeat_cmd(ctx: click.Context, app: App, as_json: bool,
                  metrics_file: Path | None) -> None:
    """One heartbeat per agent, concurrently: each with its own lock, state, notifications,
    pause and ping; one agent's delay or failure does not hold the others."""
    from impromptu_ops.fleet import jobs

    base, names = _roster(app)
    runs = jobs.fleet_heartbeat(base, names)
    target = metrics_file or base.jobs.metrics_file
    if target is not None:
        jobs.write_fleet_metrics(target, runs)
    code = exitcodes.fleet_heartbeat({jobs.heartbeat_code(r) for r in runs}, bool(runs))
    if as_json:
        out_json({"exitCode": code, "agents": [_heartbeat_json(r) for r in runs]})
    else:
        for run in runs:
            out(_heartbeat_line(run))
    ctx.exit(code)


def _heartbeat_json(run: AgentRun[Any]) -> dict[str, Any]:
    from impromptu_ops.fleet.jobs import heartbeat_code

    if run.value is not None:
        return {"localAgent": run.agent, **run.value.to_json()}
    return {"localAgent": run.agent, "exitCode": heartbeat_code(run), "outcome": "failed",
            "error": run.error.diagnostics() if run.error else "not run"}


def _heartbeat_line(run: AgentRun[Any]) -> str:
    from impromptu_ops.fleet.jobs import heartbeat_code

    code = heartbeat_code(run)
    tag = "[OK]" if code == 0 else "[SKIP]" if code == 75 else "[FAIL]"
    # a hint's `impromptu-ops ...` command is this agent's with --agent NAME before it
    where = f" [for agent {run.agent}: impromptu-ops --agent {run.agent} ...]" \
        if code not in (0, 75) and run.agent != "default" else ""
    if run.value is None:
        return (f"{tag} {run.agent}: {run.error.diagnostics() if run.error else 'not run'}"
                + where)
    report = run.value
    detail = report.skip_reason or next(
        (s.summary for s in report.steps if s.status in ("fail", "skipped")), "")
    new = len(report.new_notifications)
    return (f"{tag} {run.agent}: {report.outcome}"
            + (f", {new} new notification(s)" if new else "")
            + (f" ({detail})" if detail and code else "") + where)


@fleet.command("rotate")
@click.option("--if-due", "if_due", is_flag=True, required=True,
              help="Rotate only what is due (required: a fleet never rotates everything at "
                   "once on a whim).")
@click.option("--provider", "providers", multiple=True,
              type=click.Choice(["impromptu", "openrouter"]),
              help="Providers to rotate (repeatable; default: impromptu, as the scheduled "
                   "job).")
@click.option("--no-canary", is_flag=True,
              help="Start every agent at once instead of the first one alone first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object for the run.")
@pass_app
@click.pass_context
def rotate_cmd(ctx: click.Context, app: App, if_due: bool, providers: tuple[str, ...],
               no_canary: bool, as_json: bool) -> None:
    """Rotate what is due across the fleet: a canary agent first (the run stops when its
    rotation fails), then the others with bounded concurrency; each agent crash-safe as
    `rotate --if-due`. Exit codes as `rotate`: 0 done, 1 failed safe, 2 key at risk, 75 busy.
    """
    from impromptu_ops.fleet import jobs

    base, names = _roster(app)
    runs = jobs.fleet_rotate(base, names, providers or jobs.ROTATE_PROVIDERS,
                             canary=not no_canary)
    code = exitcodes.rotate(jobs.fleet_rotate_verdict(runs))
    if as_json:
        out_json({"exitCode": code, "agents": [_rotate_json(r) for r in runs]})
    else:
        for run in runs:
            for line in _rotate_lines(run):
                out(line)
        if any(r.skipped for r in runs):
            err(f"impromptu-ops fleet rotate: the canary agent {runs[0].agent} failed; "
                f"{sum(r.skipped for r in runs)} other agent(s) not started")
    ctx.exit(code)


def _rotate_json(run: AgentRun[list[Any]]) -> dict[str, Any]:
    from impromptu_ops.fleet.jobs import rotate_verdict

    verdict = rotate_verdict(run)
    return {"localAgent": run.agent, "exitCode": exitcodes.rotate(verdict),
            "verdict": verdict.value,
            "started": not run.skipped,
            "error": run.error.diagnostics() if run.error else None,
            "outcomes": [o.as_dict() for o in run.value or []]}


def _rotate_lines(run: AgentRun[list[Any]]) -> list[str]:
    if run.skipped:
        return [f"{run.agent}: not started (the canary failed)"]
    if run.error is not None:
        return [f"{run.agent}: failed: {run.error.diagnostics()}"]
    return [f"{run.agent}: {o.provider}: {o.message}" for o in run.value or []]


def _add_reconcile() -> None:
    """``fleet reconcile`` lives in its own module (issue 17, one chain scan)."""
    from impromptu_ops.cli.fleet_reconcile import reconcile_cmd

    fleet.add_command(reconcile_cmd)


_add_reconcile()
