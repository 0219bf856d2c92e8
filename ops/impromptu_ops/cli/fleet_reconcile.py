"""``impromptu-ops fleet reconcile``: every agent's ledger against ONE chain scan.

Thin: the roster (:mod:`impromptu_ops.fleet.roster`) names the agents (this process's
shard of them, as the other ``fleet`` commands) and gives each its settings;
:func:`impromptu_ops.reconcile.fleet.run_fleet_reconciliation` does the work;
:mod:`impromptu_ops.reconcile.fleet_render` writes one report per agent into
``--output-dir`` and renders the fleet summary printed here.

Exit codes (as ``earnings reconcile``): 0 every agent reconciled, 1 discrepancies (the
summary names the agents; this wins over an agent that could not be checked, which the
summary names too), 3 could not check (no discrepancy found but an agent could not be
checked, or the run failed: configuration, chain, bad arguments).

Reports carry full tx hashes (public chain data, see :mod:`.earnings`): they go to files
written atomically, never through the redacting ``out()``; the summary does.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from impromptu_ops.cli import exitcodes
from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.earnings import scan_window
from impromptu_ops.cli.output import err, out
from impromptu_ops.errors import OpsError

EXIT_UNKNOWN = exitcodes.RECONCILE_UNKNOWN


@click.command("reconcile")
@click.option("--from-block", type=click.IntRange(min=0), help="First block to scan.")
@click.option("--since", help="Scan from the first block at or after this date (UTC).")
@click.option("--to-block", default="latest", show_default=True,
              help="Last block to scan: a number or 'latest'.")
@click.option("--until", help="End the period with this UTC day (included whole).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="The fleet summary's format.")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Write each agent's report to DIR/<agent>.<ext> (the folder must exist).")
@click.option("--report-format", type=click.Choice(["table", "json", "csv", "koinly", "html"]),
              default="json", show_default=True, help="Format of the per-agent reports.")
@pass_app
@click.pass_context
def reconcile_cmd(ctx: click.Context, app: App, from_block: int | None, since: str | None,
                  to_block: str, until: str | None, fmt: str, output_dir: Path | None,
                  report_format: str) -> None:
    """Reconcile every agent's ledger with one scan of the chain for all their wallets.

    Exit 0 when every agent reconciles, 1 when any has discrepancies (named), 3 when it
    could not check.
    """
    from impromptu_ops.api import Agent
    from impromptu_ops.fleet.roster import agent_settings
    from impromptu_ops.reconcile import fleet_render
    from impromptu_ops.reconcile.fleet import run_fleet_reconciliation, verdict
    from impromptu_ops.roster import this_shard

    window = scan_window(ctx, from_block, to_block, since, until)
    try:
        if output_dir is not None:
            fleet_render.check_folder(output_dir)  # before a long scan, not after it
        base = app.file_settings()
        names = this_shard(base, os.environ)  # this process's shard: all unless sharded
        agents = [Agent.from_settings(agent_settings(base, name)) for name in names]
        result = run_fleet_reconciliation(agents, window)
        written = fleet_render.write_reports(result, output_dir, report_format) \
            if output_dir is not None else None
        out(fleet_render.render_summary(result, fmt, written), nl=False)
    except Exception as exc:  # "could not check" is this command's exit 3, bugs too
        why = exc.diagnostics() if isinstance(exc, OpsError) else \
            f"internal error: {type(exc).__name__}: {exc} (run again with --debug for details)"
        if app.debug and not isinstance(exc, OpsError):
            raise
        err(f"impromptu-ops: UNKNOWN: could not reconcile the fleet: {why}")
        ctx.exit(EXIT_UNKNOWN)
    ctx.exit(exitcodes.reconcile(verdict(result)))


# Usage errors (bad flags) mean "could not check" for this command: exit 3, not click's 2.
reconcile_cmd.usage_exit_code = EXIT_UNKNOWN  # type: ignore[attr-defined]
