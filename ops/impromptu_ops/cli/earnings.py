"""``impromptu-ops earnings reconcile``: the ledger against what arrived on chain.

Exit codes (this command's own contract): 0 reconciled, 1 discrepancies found, 3 could not
check (configuration, store, platform or chain failure, bad arguments). The work is
:func:`impromptu_ops.reconcile.service.run_reconciliation`; rendering is
:mod:`impromptu_ops.reconcile.render`.

Output and redaction: the table shows tx hashes abbreviated (``contract.show_tx_hash``)
and goes through the redacting ``out()``. JSON, CSV, Koinly CSV and HTML (its explorer
links) carry full tx hashes, which have the shape of a private key and would be masked by
``out()``; they are written to ``--output`` by the library's atomic writer, or echoed to
stdout unredacted.
That is safe because the report is built only from public chain data and ledger amounts:
no value from the secret store or the settings' secrets ever enters a Report.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from impromptu_ops.cli import exitcodes
from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out
from impromptu_ops.errors import OpsError

if TYPE_CHECKING:
    from impromptu_ops.reconcile.service import Window


def _since(ctx: click.Context, value: str | None, hint: str = "--since") -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use YYYY-MM-DD or an RFC 3339 time", ctx=ctx,
                                 param_hint=hint) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _until(ctx: click.Context, value: str | None) -> datetime | None:
    """``--until DAY`` includes the whole UTC day: the period ends before the next midnight.
    A full time (``2026-01-31T12:00:00Z``) includes that second."""
    if value is None:
        return None
    if len(value) == 10:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise click.BadParameter("use YYYY-MM-DD or an RFC 3339 time", ctx=ctx,
                                     param_hint="--until") from None
        return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    when = _since(ctx, value, "--until")
    assert when is not None
    return when.replace(microsecond=0) + timedelta(seconds=1)


def scan_window(ctx: click.Context, from_block: int | None, to_block: str,
                since: str | None, until: str | None) -> Window:
    """The period to reconcile from the four options (blocks or UTC dates, not both at an
    end); a contradiction is a usage error."""
    from impromptu_ops.reconcile.service import Window

    if from_block is not None and since is not None:
        raise click.UsageError("give --from-block or --since, not both", ctx=ctx)
    if until is not None and to_block != "latest":
        raise click.UsageError("give --to-block or --until, not both", ctx=ctx)
    window = Window(from_block=from_block, to_block=_to_block(ctx, to_block),
                    since=_since(ctx, since), until=_until(ctx, until))
    if window.since is not None and window.until is not None and window.until <= window.since:
        raise click.UsageError("--until is before --since", ctx=ctx)
    return window


def _to_block(ctx: click.Context, value: str) -> int | None:
    if value == "latest":
        return None
    if not value.isdigit():
        raise click.BadParameter("a block number or 'latest'", ctx=ctx, param_hint="--to-block")
    return int(value)


class _Progress:
    """A progress bar over block ranges, on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="scanning blocks",
                                         file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@click.group("earnings")
def earnings() -> None:
    """Earnings, payouts and referral credits."""


@earnings.command("reconcile")
@click.option("--from-block", type=click.IntRange(min=0), help="First block to scan.")
@click.option("--since", help="Scan from the first block at or after this date (UTC).")
@click.option("--to-block", default="latest", show_default=True,
              help="Last block to scan: a number or 'latest'.")
@click.option("--until", help="End the period with this UTC day (included whole), e.g. "
              "--since 2026-01-01 --until 2026-12-31 for a tax year.")
@click.option("--format", "fmt",
              type=click.Choice(["table", "json", "csv", "koinly", "html"]),
              default="table", show_default=True,
              help="csv: one row per movement; koinly: Koinly's universal CSV; html: a "
              "self-contained statement.")
@click.option("--prices", type=click.Path(path_type=Path, dir_okay=False),
              help="CSV of daily token prices (date,price,currency or date,EUR) for the "
              "fiat columns.")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the report to this file (atomically) instead of stdout.")
@click.option("--rpc-url", help="Chain JSON-RPC URL (default: chain.rpc_url). A URL that "
              "carries a provider key belongs in the config or IMPROMPTU_CHAIN_RPC, not argv.")
@click.option("--wallet", help="The agent's wallet address (default: chain.wallet_address).")
@pass_app
@click.pass_context
def reconcile(ctx: click.Context, app: App, from_block: int | None, since: str | None,
              to_block: str, until: str | None, fmt: str, prices: Path | None,
              output: Path | None, rpc_url: str | None, wallet: str | None) -> None:
    """Reconcile the platform's ledger against the IMPRMPT transfers on Base.

    Exit 0 when everything reconciles, 1 when discrepancies are found, 3 when it could not
    check. Reruns reuse a local cache of scanned blocks and are fast.
    """
    from impromptu_ops.api import Agent
    from impromptu_ops.reconcile import render
    window = scan_window(ctx, from_block, to_block, since, until)
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        if output is not None:
            render.check_output(output)  # before a long scan, not after it
        settings = app.settings(chain__rpc_url=rpc_url, chain__wallet_address=wallet)
        price_list = None
        if prices is not None:  # a bad price file is refused before a long scan
            from impromptu_ops.reconcile.prices import load_prices
            price_list = load_prices(prices, settings.chain.max_price_file_bytes)
        report = Agent.from_settings(settings).reconcile(window, progress=progress)
        if output is not None:
            render.write_report(report, fmt, output, price_list)
            err(f"{render.verdict(report)}: report written to {output}")
        elif fmt != "table":
            # Deliberately unredacted: full tx hashes are public chain data (see module doc).
            click.echo(render.render(report, fmt, price_list), nl=False)
        else:
            out(render.render(report, fmt), nl=False)
    except Exception as exc:  # "could not check" is this command's exit 3, bugs too
        if progress is not None:
            progress.close()  # end the bar's line before the message
            progress = None
        why = exc.diagnostics() if isinstance(exc, OpsError) else \
            f"internal error: {type(exc).__name__}: {exc} (run again with --debug for details)"
        if app.debug and not isinstance(exc, OpsError):
            raise  # main prints the redacted traceback
        err(f"impromptu-ops: UNKNOWN: could not reconcile: {why}")
        ctx.exit(exitcodes.reconcile(None))
    finally:
        if progress is not None:
            progress.close()
    ctx.exit(exitcodes.reconcile(bool(report.reconciled)))


# Usage errors (bad flags) mean "could not check" for this command: exit 3, not click's 2.
reconcile.usage_exit_code = exitcodes.RECONCILE_UNKNOWN  # type: ignore[attr-defined]
earnings.usage_exit_code = exitcodes.RECONCILE_UNKNOWN  # type: ignore[attr-defined]
