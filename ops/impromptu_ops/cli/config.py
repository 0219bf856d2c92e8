"""``impromptu-ops config``: show the effective settings (secrets masked) and their sources."""

from __future__ import annotations

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import out, out_json, table
from impromptu_ops.settings import config_path, describe


@click.group("config")
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_app
def show(app: App, as_json: bool) -> None:
    """Print every setting, its value (secrets masked) and where it came from."""
    import os

    settings = app.settings()
    rows = describe(settings)
    if as_json:
        out_json({k: {"value": v, "source": s} for k, v, s in rows})
        return
    out(f"config file: {app.config_file or config_path(os.environ)}")
    out(table([(k, v, s) for k, v, s in rows], ("setting", "value", "source")))


@config.command("path")
@pass_app
def path(app: App) -> None:
    """Print the config file path that is read."""
    import os

    out(str(app.config_file or config_path(os.environ)))
