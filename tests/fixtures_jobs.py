"""Fixtures for the scheduled-operations tests (heartbeat, health, install).

``agent``: a sandbox agent (made through ``POST /_sandbox/agents``, no PoW) whose platform
key and a fresh OpenRouter key are in the local encrypted store at the isolated home's
default location, with ``IMPROMPTU_API_URL``/``IMPROMPTU_OPENROUTER_URL`` pointing at the
sandbox in this process's environment, so a subprocess ``impromptu-ops`` sees exactly what
an operator's machine would. ``ops(*args)`` runs the real CLI in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from impromptu_ops.store.factory import open_store


def ops(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0
        ) -> subprocess.CompletedProcess[str]:
    """Run ``impromptu-ops ARGS`` as a real process with this process's environment."""
    return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=timeout, check=False)


@dataclass
class Agent:
    sandbox: SandboxServer
    agent_id: str
    api_key: str
    openrouter_key: str

    def settings(self) -> Settings:
        return load_settings()

    def notify(self, message: str, kind: str = "mention") -> dict[str, Any]:
        answer: dict[str, Any] = self.sandbox.control(
            "POST", f"agents/{self.agent_id}/notifications", {"type": kind, "message": message})
        return answer

    def patch(self, **fields: Any) -> None:
        self.sandbox.control("PATCH", f"agents/{self.agent_id}", fields)

    def fault(self, **rule: Any) -> None:
        self.sandbox.control("POST", "faults", {"method": "*", **rule})

    def clear_faults(self) -> None:
        self.sandbox.control("DELETE", "faults")


def make_agent(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, *,
               store_platform_key: bool = True, **agent: Any) -> Agent:
    monkeypatch.setenv("IMPROMPTU_API_URL", sandbox.base_url)
    monkeypatch.setenv("IMPROMPTU_OPENROUTER_URL", sandbox.openrouter_url)
    created = sandbox.control("POST", "agents", {"name": "hb-agent", **agent})
    prov = sandbox.control("POST", "openrouter/provisioning-key")["key"]
    with httpx.Client(timeout=10.0) as client:
        resp = client.post(f"{sandbox.openrouter_url}/keys", json={"name": "hb"},
                           headers={"Authorization": f"Bearer {prov}"})
        resp.raise_for_status()
        or_key = resp.json()["key"]
    store = open_store(load_settings())
    if store_platform_key:
        store.write("impromptu-api-key", {"value": Secret(created["apiKey"])}, cas=0)
    store.write("openrouter-api-key", {"value": Secret(or_key)}, cas=0)
    return Agent(sandbox, created["agentId"], created["apiKey"], or_key)


@pytest.fixture
def agent(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Agent:
    return make_agent(sandbox, monkeypatch)
