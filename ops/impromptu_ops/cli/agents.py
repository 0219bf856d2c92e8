"""``impromptu-ops agents list``: every agent of this configuration and where its keys live.

Thin: the roster (:mod:`impromptu_ops.fleet.roster`) decides which agents exist and where
their keys, state and wallet are; this module renders it. It opens no store: "where the keys
live" is the configured location, not a claim that keys are there.
"""

from __future__ import annotations

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import out, out_json, table


@click.group("agents")
def agents() -> None:
    """The agents this configuration serves (`default` and each [agents.NAME] table)."""


@agents.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per agent, as a list.")
@pass_app
def list_cmd(app: App, as_json: bool) -> None:
    """List every agent: its keys' location, state folder and wallet (from the config)."""
    from impromptu_ops.fleet.roster import agent_settings, fleet_names, keys_location

    base = app.file_settings()
    rows = []
    for name in fleet_names(base):
        s = agent_settings(base, name)
        rows.append({"agent": name, "keys": keys_location(s),
                     "state": str(s.paths.state_dir),
                     "wallet": s.chain.wallet_address or "(not recorded)"})
    if as_json:
        out_json(rows)
        return
    out(table([(r["agent"], r["keys"], r["state"], r["wallet"]) for r in rows],
              ("agent", "keys", "state", "wallet")))
