"""A fleet on the sandbox: N agents made through the controls, each agent's platform and
OpenRouter keys in ITS local store (``agent_settings(...).local_store_path``), one
``[agents.NAME.chain]`` table per agent in the isolated home's config file, and
``fleet.include_default = false`` (the fleet is exactly these agents)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import httpx
import pytest

from impromptu_ops.fleet.roster import agent_settings
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, config_path, load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_jobs import Agent


@dataclass
class Fleet:
    sandbox: SandboxServer
    agents: dict[str, Agent] = field(default_factory=dict)

    def settings(self, name: str) -> Settings:
        return agent_settings(load_settings(), name)


def make_fleet(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, names: list[str],
               extra_config: str = "") -> Fleet:
    monkeypatch.setenv("IMPROMPTU_API_URL", sandbox.base_url)
    monkeypatch.setenv("IMPROMPTU_OPENROUTER_URL", sandbox.openrouter_url)
    fleet = Fleet(sandbox)
    tables = ["[fleet]\ninclude_default = false\n", extra_config]
    made = []
    prov = sandbox.control("POST", "openrouter/provisioning-key")["key"]
    with httpx.Client(timeout=10.0) as client:
        for name in names:
            created = sandbox.control("POST", "agents", {"name": f"fleet-{name}"})
            resp = client.post(f"{sandbox.openrouter_url}/keys", json={"name": name},
                               headers={"Authorization": f"Bearer {prov}"})
            resp.raise_for_status()
            made.append((name, created, resp.json()["key"]))
            tables.append(f"[agents.{name}.chain]\n"
                          f"wallet_address = \"{created['walletAddress']}\"\n")
    path = config_path(os.environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(tables))
    for name, created, or_key in made:
        store = open_store(fleet.settings(name))
        store.write("impromptu-api-key", {"value": Secret(created["apiKey"])}, cas=0)
        store.write("openrouter-api-key", {"value": Secret(or_key)}, cas=0)
        fleet.agents[name] = Agent(sandbox, created["agentId"], created["apiKey"], or_key)
    return fleet
