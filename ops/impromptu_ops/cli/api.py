"""``impromptu-ops api``: talk to the platform API directly (read-only, no secrets shown)."""

from __future__ import annotations

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out, out_json, table


@click.group("api")
def api() -> None:
    """Inspect the platform API."""


@api.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--prefix", type=click.Choice(["v1", "legacy"]), default=None,
              help="Path generation to use (default: platform.path_prefix).")
@pass_app
def status(app: App, as_json: bool, prefix: str | None) -> int:
    """GET /health and, if a key is stored, the heartbeat: reachability and key validity.

    Exits 0 when both answer, otherwise with the first failure's exit code.
    """
    from impromptu_ops.api import Agent

    result = Agent.from_settings(app.settings(platform__path_prefix=prefix)).status()
    if as_json:
        out_json(result.to_json())
    else:
        rows: list[tuple[str, ...]] = [
            ("platform", f"{result.api_url} (prefix {result.path_prefix})"),
            ("health", result.health or "no answer"),
            ("key", "stored" if result.key_stored else "none stored")]
        hb = result.heartbeat
        if hb is not None:
            budget, tokens = hb.budget_balance, hb.token_balance
            rows += [("agent", f"{hb.agent_id} ({hb.name}), tier {hb.tier}"),
                     ("budget", "unknown" if budget is None else f"{budget:g}"),
                     ("tokens", "unknown" if tokens is None else f"{tokens} base units"),
                     ("unread", f"{hb.unread_notifications}")]
            rows += [("problem", p) for p in hb.problems]
        rl = result.rate_limit
        if rl is not None:
            rows.append(("rate limit", f"{rl.remaining}/{rl.limit} left"))
        out(table(rows))
        for step, exc in result.errors:
            err(f"impromptu-ops api status: {step}: {exc.diagnostics()}")
    return result.error.exit_code if result.error is not None else 0
