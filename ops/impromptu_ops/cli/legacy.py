"""``impromptu-ops legacy``: the original scripts' interfaces, for the drop-ins in scripts/.

Hidden from ``--help``: people use ``scripts/impromptu-health``, ``scripts/heartbeat`` and
``scripts/install`` (which call these), or the native commands. Each command renders what
:mod:`impromptu_ops.legacy` returns and exits with the original's codes: health 0/2/1,
heartbeat 0/1, install 0 (1 only when ``~/.impromptu`` cannot be created).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out
from impromptu_ops.errors import OpsError


@click.group("legacy", hidden=True)
def legacy() -> None:
    """The original skill scripts' output (used by the drop-ins in scripts/)."""


@legacy.command("health")
@pass_app
@click.pass_context
def health_cmd(ctx: click.Context, app: App) -> None:
    """impromptu-health.sh: sections of [OK]/[WARN]/[FAIL] lines; exit 0, 2 or 1."""
    from impromptu_ops.api import Agent
    from impromptu_ops.legacy.health import LegacyHealth, Line, Section, render, run_checks

    try:
        agent = Agent.from_settings(app.settings())
        result = run_checks(agent.settings, os.environ, Path.home(), time.time(),
                            open_store=lambda: agent.store)
    except OpsError as exc:  # our configuration, not the platform: still the original's shape
        result = LegacyHealth((Section("Checking environment...", (
            Line("FAIL", "impromptu-ops configuration is invalid"),
            Line("", exc.diagnostics()))),))
    colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    out(render(result, colour))
    for note in result.notes:
        err(note)
    ctx.exit(result.exit_code)


@legacy.command("heartbeat")
@pass_app
@click.pass_context
def heartbeat_cmd(ctx: click.Context, app: App) -> None:
    """heartbeat.sh: timestamped lines on stdout and in ~/.impromptu/heartbeat.log; 0 or 1."""
    from impromptu_ops.api import Agent
    from impromptu_ops.legacy import heartbeat as hb
    from impromptu_ops.legacy.keys import PLATFORM_KEY, env_hint, find_key

    hint = None
    try:
        settings = app.settings()
        agent = Agent.from_settings(settings)
        found = find_key(lambda: agent.store, PLATFORM_KEY, os.environ)
        hint = env_hint("heartbeat", [found])
        if found.secret is not None:
            rendered = hb.messages(agent.heartbeat(key=found.secret))
        elif found.store_problem is not None:
            rendered = hb.config_failed(f"cannot read the secret store: {found.store_problem}")
        else:
            rendered = hb.missing_key()
    except OpsError as exc:
        rendered = hb.config_failed(exc.diagnostics())
    from impromptu_ops.secret import REDACTOR

    # the log file gets exactly what stdout shows: redacted like everything we print
    stamped = [REDACTOR.redact(line) for line in hb.stamp(rendered.lines, time.time())]
    for line in stamped:
        out(line)
    try:
        hb.append_log(Path.home(), stamped)
    except OSError as exc:
        err(f"heartbeat: cannot append to ~/.impromptu/heartbeat.log: {exc.strerror}")
    for note in (*rendered.notes, *([hint] if hint else [])):
        err(note)
    ctx.exit(rendered.exit_code)


@legacy.command("install")
@click.option("--heartbeat", "heartbeat_path", required=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="The drop-in heartbeat's path, for the crontab line.")
@click.option("--health", "health_path", required=True,
              type=click.Path(path_type=Path, dir_okay=False),
              help="The drop-in health check's path, for the next steps.")
@pass_app
@click.pass_context
def install_cmd(ctx: click.Context, app: App, heartbeat_path: Path, health_path: Path) -> None:
    """install.sh: create ~/.impromptu and print the setup advice; installs no schedule."""
    from impromptu_ops.api import Agent
    from impromptu_ops.legacy.install import advice, machine_kind, prepare_folder
    from impromptu_ops.legacy.keys import OPENROUTER_KEY, PLATFORM_KEY, env_hint, find_keys

    try:
        settings = app.settings()
        problem = None
    except OpsError as exc:
        settings, problem = None, exc.diagnostics()
        err(f"install: the configuration is invalid ({problem}); keys checked in the "
            "environment only")
    try:
        folder, _ = prepare_folder(Path.home())
    except OSError as exc:
        out(f"  ✗ Cannot create {Path.home() / '.impromptu'}: {exc.strerror}")
        ctx.exit(1)
    opener = None
    if settings is not None:
        agent = Agent.from_settings(settings)
        opener = lambda: agent.store  # noqa: E731 - opened inside find_keys, once
    keys = find_keys(opener, [PLATFORM_KEY, OPENROUTER_KEY], os.environ, problem)
    for line in advice(folder, keys, heartbeat_path, health_path, machine_kind()):
        out(line)
    hint = env_hint("install", keys)
    if hint:
        err(hint)
    ctx.exit(0)
