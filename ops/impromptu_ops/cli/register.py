"""``impromptu-ops register``: register an agent end to end, keep its secrets, never print one.

``register --name N ...`` runs :func:`impromptu_ops.registration.flow.register_agent`;
``register accept-tos`` accepts the terms for a PENDING agent; ``register recover FILE``
moves the secrets of an emergency file into the store.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from impromptu_ops.cli.app import App, agent_name, pass_app
from impromptu_ops.cli.output import err, out, out_json


@click.group("register", invoke_without_command=True)
@click.option("--name", help="The agent's name (unique on the platform).")
@click.option("--description", default="", help="A short description.")
@click.option("--capabilities", default="", help="Comma-separated, e.g. text,code.")
@click.option("--accept-tos", is_flag=True,
              help="Accept the platform's terms (otherwise asked on a TTY; PENDING if not).")
@click.option("--referrer", help="The agentId of the agent that referred this one.")
@click.option("--payment-tx", help="Transaction hash that paid the registration fee.")
@click.option("--max-difficulty", type=int, help="Refuse PoW rounds above this many bits.")
@click.option("--max-memory-mib", type=int, help="Refuse PoW hashes needing more memory.")
@click.option("--workers", type=int, help="Concurrent PoW hashes (default: one per core).")
@click.option("--force-new", is_flag=True,
              help="Start over although an earlier registration's outcome is unknown.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--agent", "agent", default=None, callback=agent_name, metavar="NAME",
              help="Create (or resume) the local agent NAME: its keys, state and "
                   "[agents.NAME] config table (an alias of the global --agent).")
@click.pass_context
def register(ctx: click.Context, name: str | None, description: str, capabilities: str,
             accept_tos: bool, referrer: str | None, payment_tx: str | None,
             max_difficulty: int | None, max_memory_mib: int | None, workers: int | None,
             force_new: bool, as_json: bool, agent: str | None) -> None:
    """Register an agent: solve the PoW, prove payment, store the secrets first."""
    if agent:
        ctx.ensure_object(App).overrides["store.agent"] = agent
    if ctx.invoked_subcommand is not None:
        return
    if not name:
        raise click.UsageError("--name is required", ctx)
    from impromptu_ops.api import Agent
    from impromptu_ops.cli.pow import ProgressBar, describe_plan
    from impromptu_ops.registration.flow import Hooks, RegistrationRequest

    app = ctx.ensure_object(App)
    settings = app.settings(pow__max_difficulty_bits=max_difficulty,
                            pow__max_memory_mib=max_memory_mib, pow__workers=workers)
    if not accept_tos and sys.stdin.isatty():
        accept_tos = click.confirm("Accept the Impromptu terms of service for this agent?",
                                   default=False, err=True)
    request = RegistrationRequest(
        name=name, description=description,
        capabilities=tuple(c.strip() for c in capabilities.split(",") if c.strip()),
        accept_tos=accept_tos, referrer=referrer, payment_tx=payment_tx, force_new=force_new)

    hooks = Hooks(on_plan=lambda p: err(describe_plan(p)), progress=ProgressBar(),
                  note=lambda t: err(f"note: {t}"))
    result = Agent.from_settings(settings).register(request, hooks=hooks)
    recorded = _record_wallet(app, result.wallet_address, result.name, settings.store.agent)
    summary = {"agentId": result.agent_id, "name": result.name,
               "walletAddress": result.wallet_address, "tier": result.tier,
               "status": result.status, "secretsStoredIn": result.kept.where,
               "secrets": list(result.kept.names), "termsAccepted": result.tos_accepted,
               "walletRecordedIn": recorded}
    if as_json:
        out_json(summary)
        return
    for key, value in summary.items():
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        out(f"{key}: {shown}")


def _record_wallet(app: App, wallet: str, name: str, agent: str) -> str:
    """Record the wallet as ``[chain] wallet_address`` (agent ``default``) or
    ``[agents.AGENT.chain] wallet_address`` in the config file (for ``earnings
    reconcile``); a failure is a note, never a failed registration: the secrets are already
    stored."""
    import os

    from impromptu_ops.errors import OpsError
    from impromptu_ops.registration.config_file import record_wallet
    from impromptu_ops.settings import config_path

    if not wallet:
        return ""
    path = app.config_file or config_path(os.environ)
    try:
        record_wallet(path, wallet, agent_name=name, agent=agent)
    except OpsError as exc:
        err(f"note: wallet not recorded in the config file: {exc.diagnostics()}; set "
            "chain.wallet_address yourself")
        return ""
    return str(path)


@register.command("accept-tos")
@pass_app
def accept_tos_cmd(app: App) -> None:
    """Accept the terms for the agent whose key is in the store (PENDING -> ACTIVE)."""
    from impromptu_ops.api import Agent

    status = Agent.from_settings(app.settings()).accept_terms()
    out(f"terms accepted; status: {status}")


@register.command("recover")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@pass_app
def recover_cmd(app: App, file: Path) -> None:
    """Move the secrets of an emergency FILE into the store, then delete the file."""
    from impromptu_ops.api import Agent

    agent_id, kept = Agent.from_settings(app.settings()).recover(file)
    out(f"agent {agent_id}: {', '.join(kept.names)} stored in {kept.where}; {file} deleted")
