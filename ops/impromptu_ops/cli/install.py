"""``impromptu-ops install``: replace install.sh (see :mod:`impromptu_ops.schedule.install`).

``--dry-run`` prints exactly what would be created or written, and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out
from impromptu_ops.schedule.spec import SCHEDULERS


def _offer_scan_fix(app: App, assume_yes: bool) -> None:
    """Report plaintext keys in shell files; offer ``secrets scan --fix`` when interactive."""
    import sys

    from impromptu_ops import secretscan

    report = secretscan.scan(secretscan.default_paths(Path.home(), Path.cwd(), system=False))
    if not report.findings:
        out("secrets scan: no plaintext keys in shell files")
        return
    for f in report.findings:
        out(f"secrets scan: {f.path}:{f.line}: {f.kind} {f.masked}")
    if not (assume_yes or (sys.stdin.isatty() and click.confirm(
            f"Move {len(report.findings)} plaintext key(s) into the store now "
            "(secrets scan --fix)?", default=False))):
        err("secrets scan: not fixed; run `impromptu-ops secrets scan --fix` when ready")
        return
    from impromptu_ops.api import Agent

    fixed = secretscan.fix(Agent.from_settings(app.settings()).store, report)
    out(f"secrets scan: moved {len(fixed.moved)} key(s) into the store")
    for finding, why in fixed.left:
        err(f"secrets scan: left {finding.path}:{finding.line}: {why}")


@click.command("install")
@click.option("--scheduler", type=click.Choice(SCHEDULERS), default=None,
              help="Default: systemd when it runs this machine, launchd on macOS, else cron.")
@click.option("--scope", type=click.Choice(["user", "system"]), default=None,
              help="systemd: a user unit (default unless root) or a system unit.")
@click.option("--run-as", "run_as", default="", metavar="USER",
              help="systemd system scope: the account that runs the jobs (User=). The "
                   "folders are given to it, and checked as it.")
@click.option("--create-user", is_flag=True,
              help="systemd system scope: create the system user 'impromptu' (no login "
                   "shell) and run the jobs as it.")
@click.option("--image", default="impromptu-ops:latest", show_default=True,
              help="kubernetes: the container image.")
@click.option("--fleet-shards", type=click.IntRange(1, 1000), default=None, metavar="N",
              help="Schedule the fleet commands (every agent) instead of the one agent's "
                   "jobs; kubernetes: as Indexed Jobs of N pods, each serving its shard of "
                   "the agents (N > 1 needs Vault).")
@click.option("--output", "output_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write the schedule files here instead of their usual place.")
@click.option("--dry-run", is_flag=True,
              help="Print exactly what would be written; change nothing.")
@click.option("--yes", "assume_yes", is_flag=True,
              help="Answer yes to moving plaintext keys into the store.")
@pass_app
def install(app: App, scheduler: str | None, scope: str | None, run_as: str,
            create_user: bool, image: str, fleet_shards: int | None, output_dir: Path | None,
            dry_run: bool, assume_yes: bool) -> None:
    """Create the private folders, check the store, scan for plaintext keys and write the
    schedules of the four jobs: heartbeat (every 30 min), rotate --if-due (daily), earnings
    reconcile (weekly) and health (every 5 min) as systemd timers, crontab lines, launchd
    plists or a Kubernetes bundle. A system unit never runs as root: give --run-as USER or
    --create-user."""
    from impromptu_ops.api import Agent
    from impromptu_ops.schedule.install import (
        apply,
        check_store,
        describe,
        detect_scheduler,
        plan_install,
    )

    settings = app.settings()
    plan = plan_install(settings, scheduler or detect_scheduler(), scope=scope, user=run_as,
                        image=image, output_dir=output_dir, create_user=create_user,
                        fleet_shards=fleet_shards or 0)
    if dry_run:
        for line in describe(plan):
            out(line)
        for line in check_store(lambda: Agent.from_settings(settings).store):  # read-only
            out(line)
        out("dry run: nothing was changed")
        return
    for line in apply(plan):
        out(line)
    for line in check_store(lambda: Agent.from_settings(settings).store):
        out(line)
    _offer_scan_fix(app, assume_yes)
    for line in plan.notes:
        out(f"validation: {line}")
    for step in plan.next_steps:
        out(f"next: {step}")
