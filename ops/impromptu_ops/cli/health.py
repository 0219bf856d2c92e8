"""``impromptu-ops health``: run the checks, render them, exit with the verdict.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN in every format but ``legacy`` (the
original script's 0 healthy / 2 degraded / 1 unhealthy). Our own failure — a bad config or
policy, a bad flag (click's usage error is mapped through ``usage_exit_code``) — is
UNKNOWN, never CRITICAL: the platform is not down because we are misconfigured. A usage
error is still written in the format asked for when it can be read (``IMPROMPTU UNKNOWN -``
on stdout for nagios, where the monitor looks; the legacy lines and exit 1 for the drop-in).
"""

from __future__ import annotations

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out
from impromptu_ops.errors import OpsError
from impromptu_ops.health.render import FORMATS


def _unknown(fmt: str, message: str) -> int:
    import json

    if fmt == "nagios":
        out(f"IMPROMPTU UNKNOWN - {message.replace('|', '/')}")
    elif fmt == "json":
        out(json.dumps({"status": "UNKNOWN", "code": 3, "error": message, "checks": []}))
    elif fmt == "prometheus":
        out("# TYPE impromptu_health_status gauge\nimpromptu_health_status 3")
        err(f"impromptu-ops health: {message}")
    elif fmt == "legacy":
        out(f"[FAIL] {message}")
        out("Status: unhealthy")
        return 1
    else:
        err(f"impromptu-ops health: {message}")
    return 3


def _format_in(args: list[str]) -> str | None:
    """The ``--format`` asked for in raw arguments (usage errors stop parsing before it)."""
    for i, arg in enumerate(args):
        if arg == "--format" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--format="):
            return arg.split("=", 1)[1]
    return None


class _CheckCommand(click.Command):
    """A usage error still speaks the monitor's format: ``IMPROMPTU UNKNOWN - ...`` on stdout
    (Nagios shows stdout, not stderr) and exit 3, or the legacy lines and exit 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        fmt = _format_in(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if fmt not in FORMATS or fmt == "text":
                raise  # main prints one line and exits with usage_exit_code (3)
            message = " ".join(exc.format_message().split())
            raise click.exceptions.Exit(_unknown(fmt, f"usage: {message}")) from None


@click.command("health", cls=_CheckCommand)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text (a table), nagios (one line + perfdata), json, prometheus, or legacy "
                   "(one [OK]/[WARN]/[FAIL] line per check and the original's exit codes "
                   "0/2/1; the original script's full output is scripts/impromptu-health).")
@click.option("--check", "checks", multiple=True, metavar="NAME",
              help="Run only this check (repeatable). Default: all.")
@click.option("-w", "--warning", multiple=True, metavar="METRIC=RANGE",
              help="Override a warning threshold (Nagios range syntax), e.g. budget=30:")
@click.option("-c", "--critical", multiple=True, metavar="METRIC=RANGE",
              help="Override a critical threshold, e.g. key_age_days=~:120")
@click.option("-t", "--timeout", type=click.FloatRange(0.1, 300), default=None,
              help="Bound every check's timeout (policies/health.toml [timeouts]) to this "
                   "many seconds: the whole run ends within it.")
@pass_app
@click.pass_context
def health(ctx: click.Context, app: App, fmt: str, checks: tuple[str, ...],
           warning: tuple[str, ...], critical: tuple[str, ...], timeout: float | None) -> None:
    """Check the config, the store, both keys, the platform, budget, key age, heartbeat
    freshness, folder permissions and shell files for plaintext keys."""
    from impromptu_ops.api import Agent
    from impromptu_ops.health.policy import load_policy
    from impromptu_ops.health.render import exit_code, render

    try:
        settings = app.settings()
        policy = load_policy(settings.paths.policies_dir, settings.jobs.health_check_timeout)
        policy = policy.with_overrides(warning, critical)
        if timeout is not None:
            policy = policy.capped(timeout)
        report = Agent.from_settings(settings).health(checks=checks, policy=policy)
        text, code = render(report, fmt), exit_code(report, fmt)
    except OpsError as exc:
        text, code = "", _unknown(fmt, exc.diagnostics())
    except Exception as exc:  # a bug of ours is still UNKNOWN for a monitor, never 70
        text, code = "", _unknown(fmt, f"internal error: {type(exc).__name__}: {exc}")
    if text:
        out(text)
    ctx.exit(code)


# Nagios: a usage error must be UNKNOWN (3), not click's 2 (which would read as CRITICAL).
health.usage_exit_code = 3  # type: ignore[attr-defined]
