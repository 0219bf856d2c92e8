"""``impromptu-ops heartbeat``: one scheduled check-in (see :mod:`impromptu_ops.jobs.heartbeat`).

Exit codes: 0 ok, 1 failed, 65 malformed answer, 69 unavailable, 75 skipped (lock busy or
paused by RATE_003/BUDG_001), 77 key refused, 78 configuration error.
"""

from __future__ import annotations

from pathlib import Path

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import out, out_json


@click.command("heartbeat")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line for the run.")
@click.option("--metrics-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write Prometheus metrics here (atomically), for the textfile collector.")
@click.option("--ping-url", metavar="URL",
              help="Healthchecks-style URL: /start, then success (a skipped run too, with "
                   "the reason) or /fail with the output. Default: jobs.ping_url.")
@pass_app
@click.pass_context
def heartbeat(ctx: click.Context, app: App, as_json: bool, metrics_file: Path | None,
              ping_url: str | None) -> None:
    """Check in with the platform: heartbeat, new notifications, wallet sync,
    recommendations and budget. Safe to run from cron, systemd or Kubernetes."""
    from impromptu_ops.api import Agent
    from impromptu_ops.errors import OpsError
    from impromptu_ops.jobs.heartbeat import lines

    try:
        settings = app.settings(jobs__metrics_file=metrics_file, jobs__ping_url=ping_url)
        report = Agent.from_settings(settings).heartbeat()
    except OpsError as exc:
        if as_json:  # a log shipper still gets its one line per run
            out_json({"exitCode": exc.exit_code, "outcome": "failed",
                      "error": exc.diagnostics()})
            raise
        # the original's interface: a [FAIL] line on stdout, like every other failure
        out(f"[FAIL] heartbeat: {exc.diagnostics()}")
        ctx.exit(exc.exit_code)
    if as_json:
        out_json(report.to_json())
    else:
        for line in lines(report):
            out(line)
    ctx.exit(report.exit_code)
