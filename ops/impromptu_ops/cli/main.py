"""The ``impromptu-ops`` entry point: global options, lazy command groups, one error catch.

Command groups are imported only when invoked (``hvac`` alone costs ~160 ms to import), so
``impromptu-ops health`` pays only for what it uses. Each group lives in its own module;
register it in :data:`COMMANDS`.

Errors: every :class:`~impromptu_ops.errors.OpsError` becomes one redacted line on stderr
and its exit code; a click usage error exits 2 (or the command's own ``usage_exit_code``,
which Nagios-style checks set to 3); an ``OSError`` that no layer turned into an OpsError
(a file the OS refused) exits 74 naming the path; anything else is a bug: one line plus a pointer to
``--debug``, exit 70 (EX_SOFTWARE). Tracebacks only with ``--debug``, and redacted.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from impromptu_ops import __version__
from impromptu_ops.cli import examples, jobrun, nextsteps
from impromptu_ops.cli.app import App, agent_name
from impromptu_ops.errors import OpsError, Terminated
from impromptu_ops.logs import configure
from impromptu_ops.secret import REDACTOR

log = logging.getLogger(__name__)

# name -> "module:attribute". Keep sorted; one line per command group.
COMMANDS: dict[str, str] = {
    "agents": "impromptu_ops.cli.agents:agents",
    "api": "impromptu_ops.cli.api:api",
    "config": "impromptu_ops.cli.config:config",
    "earnings": "impromptu_ops.cli.earnings:earnings",
    "fleet": "impromptu_ops.cli.fleet:fleet",
    "health": "impromptu_ops.cli.health:health",
    "heartbeat": "impromptu_ops.cli.heartbeat:heartbeat",
    "install": "impromptu_ops.cli.install:install",
    "legacy": "impromptu_ops.cli.legacy:legacy",
    "pow": "impromptu_ops.cli.pow:pow_group",
    "quickstart": "impromptu_ops.cli.quickstart:quickstart",
    "register": "impromptu_ops.cli.register:register",
    "rotate": "impromptu_ops.cli.rotate:rotate",
    "sandbox": "impromptu_ops.cli.sandbox:sandbox",
    "screen": "impromptu_ops.cli.screen:screen",
    "secrets": "impromptu_ops.cli.secrets:secrets",
    "update": "impromptu_ops.cli.update:update",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        cmd = getattr(importlib.import_module(module_name), attr)
        assert isinstance(cmd, click.Command)
        # one place adds what every command shares: help examples, job pings and skips
        examples.apply(cmd, (cmd_name,))
        jobrun.apply(cmd, (cmd_name,))
        return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="impromptu-ops")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: $XDG_CONFIG_HOME/impromptu-ops/config.toml).")
@click.option("--api-url", help="Platform base URL (default: env IMPROMPTU_API_URL, config).")
@click.option("--agent", metavar="NAME", callback=agent_name,
              help="The agent to act for (default: env IMPROMPTU_AGENT, else 'default'): "
                   "its keys, state, wallet and [agents.NAME] settings.")
@click.option("--debug", is_flag=True, help="Show (redacted) tracebacks.")
@click.option("--log-format", type=click.Choice(["auto", "human", "json"]), default="auto",
              show_default=True, help="Logs on stderr: human on a TTY, JSON lines otherwise.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, api_url: str | None,
        agent: str | None, debug: bool, log_format: str, verbose: int) -> None:
    """Operate AI agents on the Impromptu platform safely.

    Start with `impromptu-ops quickstart`: the whole lifecycle against the local sandbox.
    """
    level = "debug" if verbose >= 2 or debug else "info" if verbose == 1 else "warning"
    configure(level, log_format)
    app = ctx.ensure_object(App)
    app.debug = debug
    app.config_file = config_file
    if api_url:
        app.overrides["platform.api_url"] = api_url
    if agent:
        app.overrides["store.agent"] = agent


examples.apply(cli, ())


def _usage_exit_code(exc: click.ClickException) -> int:
    ctx = getattr(exc, "ctx", None)
    while ctx is not None:
        code = getattr(ctx.command, "usage_exit_code", None)
        if isinstance(code, int):
            return code
        ctx = ctx.parent
    return exc.exit_code


def _usage_line(exc: click.UsageError) -> str:
    """One line for a usage error: what was wrong and where to look, e.g.
    ``impromptu-ops register: No such option: --bogus (see 'impromptu-ops register --help')``."""
    where = exc.ctx.command_path if exc.ctx is not None else "impromptu-ops"
    message = " ".join(exc.format_message().split())
    return f"{where}: {message} (see '{where} --help')"


_GLOBAL_VALUES = frozenset({"--config", "--api-url", "--agent", "--log-format"})


def _command_path(argv: list[str]) -> str:
    """``impromptu-ops secrets get`` for ``[--debug, secrets, get, NAME]`` (for messages)."""
    path = ["impromptu-ops"]
    group: click.Command = cli
    ctx = click.Context(cli)
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg in _GLOBAL_VALUES
            continue
        sub = group.get_command(ctx, arg) if isinstance(group, click.Group) else None
        if sub is None:
            break
        path.append(arg)
        group = sub
    return " ".join(path)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (never raises, never prints a raw traceback)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv: Any = cli.main(args=argv, prog_name="impromptu-ops", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except OpsError as exc:
        if debug:
            click.echo(REDACTOR.redact(traceback.format_exc()), err=True)
        where = _command_path(argv if argv is not None else sys.argv[1:])
        click.echo(REDACTOR.redact(f"impromptu-ops: {nextsteps.line(exc, where)}"), err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort as exc:  # click turns a KeyboardInterrupt (and so SIGTERM) into Abort
        if isinstance(exc.__cause__, Terminated):
            click.echo("impromptu-ops: terminated (SIGTERM)", err=True)
            return 143
        click.echo("impromptu-ops: aborted", err=True)
        return 130
    except click.UsageError as exc:
        click.echo(REDACTOR.redact(_usage_line(exc)), err=True)
        return _usage_exit_code(exc)
    except click.ClickException as exc:
        click.echo(REDACTOR.redact(f"impromptu-ops: {exc.format_message()}"), err=True)
        return exc.exit_code
    except Terminated:
        click.echo("impromptu-ops: terminated (SIGTERM)", err=True)
        return 143
    except KeyboardInterrupt:
        click.echo("impromptu-ops: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 141
    except OSError as exc:  # a file or folder the OS refused: name it, exit 74 (EX_IOERR)
        from impromptu_ops.files import os_failure

        if debug:
            click.echo(REDACTOR.redact(traceback.format_exc()), err=True)
        failure = os_failure(exc, None, "use")
        click.echo(REDACTOR.redact(f"impromptu-ops: {failure.diagnostics()}"), err=True)
        return failure.exit_code
    except Exception as exc:  # a bug: still one line, and no secret in it
        if debug:
            click.echo(REDACTOR.redact(traceback.format_exc()), err=True)
        click.echo(
            REDACTOR.redact(
                f"impromptu-ops: internal error: {type(exc).__name__}: {exc}"
                " (run again with --debug for details)"
            ),
            err=True,
        )
        return 70


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    # SIGTERM unwinds like Ctrl-C (one line, cleanup runs) instead of killing the process
    # mid-write; commands that manage signals themselves (sandbox serve, secrets exec)
    # install their own handlers over this one.
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.exit(run())
