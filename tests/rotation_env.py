"""A rotation test bench over real servers: the sandbox (platform + OpenRouter subset) and
a secret store (the local encrypted file, or OpenBao), driven through the real CLI in
child processes so that a crash is a real SIGKILL.

:class:`Watcher` runs in a thread during a rotation and checks, again and again, that the
key currently in the store works against the sandbox. A failure counts only when the
store still held that same value after the check: an agent that read the key a moment
before the cut-over is not "without a working key", one whose store holds a dead key is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from impromptu_ops.errors import OpsError
from impromptu_ops.rotation.record import RecordStore, RotationRecord
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.factory import open_store

OPENROUTER = "openrouter-api-key"
IMPROMPTU = "impromptu-api-key"
PROVISIONING = "openrouter-provisioning-key"


def _verdict(resp: httpx.Response) -> bool | None:
    if resp.status_code == 200:
        return True
    return False if resp.status_code in (401, 403) else None


@dataclass
class Bench:
    sandbox: SandboxServer
    env: dict[str, str]
    agent_id: str = ""
    provisioning: str = ""
    generation: int = 0
    _store: SecretStore | None = None

    # -- wiring ------------------------------------------------------------------------------
    def settings(self) -> Settings:
        return load_settings(env=self.env, config_file=Path(self.env["HOME"]) / "none.toml")

    @property
    def store(self) -> SecretStore:
        if self._store is None:
            self._store = open_store(self.settings())
        return self._store

    def cli(self, *args: str, crash_at: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if crash_at:
            env["IMPROMPTU_TEST_CRASH_AT"] = crash_at
        return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)

    def repoint(self, env: dict[str, str]) -> None:
        """Change the environment (e.g. the Vault address after a failover)."""
        self.env.update(env)
        self._store = None
        self.generation += 1

    # -- the store ---------------------------------------------------------------------------
    def put(self, name: str, value: str) -> None:
        try:
            cas = self.store.metadata(name).current_version
        except OpsError:
            cas = 0
        self.store.write(name, {"value": Secret(value, name)}, cas=cas)

    def current(self, name: str) -> str:
        return self.store.read(name).value("value").reveal()

    def record(self, provider: str) -> RotationRecord | None:
        return RecordStore(self.store).load(provider)[0]

    # -- the sandbox -------------------------------------------------------------------------
    def openrouter_works(self, key: str) -> bool | None:
        """True (200), False (401: refused), None (anything else: an injected fault)."""
        return _verdict(httpx.get(f"{self.sandbox.openrouter_url}/key",
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10))

    def impromptu_works(self, key: str) -> bool | None:
        return _verdict(httpx.get(f"{self.sandbox.base_url}/v1/agent/heartbeat",
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10))

    def openrouter_keys(self) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.sandbox.openrouter_url}/keys",
                         headers={"Authorization": f"Bearer {self.provisioning}"}, timeout=10)
        resp.raise_for_status()
        keys: list[dict[str, Any]] = resp.json()["data"]
        return keys

    def mint_openrouter(self, name: str) -> str:
        resp = httpx.post(f"{self.sandbox.openrouter_url}/keys", json={"name": name},
                          headers={"Authorization": f"Bearer {self.provisioning}"}, timeout=10)
        resp.raise_for_status()
        key: str = resp.json()["key"]
        return key

    def impromptu_keys(self) -> list[dict[str, Any]]:
        state = self.sandbox.control("GET", "state")
        return [k for k in state["keys"].values() if k["agentId"] == self.agent_id]

    def byok_active_sha(self) -> list[str]:
        creds = self.sandbox.control("GET", "state")["credentials"].get(self.agent_id, [])
        return [c["sha256"] for c in creds if c["provider"] == "openrouter" and c["isActive"]]

    def fault(self, **rule: Any) -> None:
        self.sandbox.control("POST", "faults", rule)

    def clear_faults(self) -> None:
        self.sandbox.control("DELETE", "faults")


def make_bench(sandbox: SandboxServer, home: Path, store_env: dict[str, str] | None = None
               ) -> Bench:
    """An agent with a platform key, a provisioning key and one OpenRouter key, all stored."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMPROMPTU_", "VAULT_", "BAO_", "OPENROUTER_"))}
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
        "IMPROMPTU_API_URL": sandbox.base_url,
        "IMPROMPTU_OPENROUTER_URL": sandbox.openrouter_url,
        "IMPROMPTU_PLATFORM_DEADLINE": "20", "IMPROMPTU_PLATFORM_READ_TIMEOUT": "3",
        "IMPROMPTU_PLATFORM_BACKOFF_BASE": "0.05", "IMPROMPTU_PLATFORM_BACKOFF_CAP": "0.2",
        "IMPROMPTU_PLATFORM_MAX_RETRIES": "3",
    })
    env.update(store_env or {"IMPROMPTU_STORE_BACKEND": "local",
                             "IMPROMPTU_STORE_LOCAL_PATH": str(home / "store" / "s.store"),
                             "IMPROMPTU_STORE_LOCAL_KEY_FILE": str(home / "store" / "s.key")})
    bench = Bench(sandbox, env)
    agent = sandbox.control("POST", "agents", {"name": "rot-" + home.name[-8:]})
    bench.agent_id = agent["agentId"]
    bench.provisioning = sandbox.control("POST", "openrouter/provisioning-key")["key"]
    Secret(bench.provisioning)
    Secret(agent["apiKey"])
    bench.put(IMPROMPTU, agent["apiKey"])
    bench.put(PROVISIONING, bench.provisioning)
    bench.put(OPENROUTER, bench.mint_openrouter("initial-by-hand"))
    return bench


@dataclass
class Watcher:
    """Polls "does the store's current key work?" in a thread; collects violations."""

    bench: Bench
    name: str
    violations: list[str] = field(default_factory=list)
    checks: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _works(self, value: str) -> bool | None:
        if self.name == OPENROUTER:
            return self.bench.openrouter_works(value)
        return self.bench.impromptu_works(value)

    def run(self) -> None:
        store = open_store(self.bench.settings())  # its own instance: no shared state
        generation = self.bench.generation
        while not self._stop.is_set():
            if generation != self.bench.generation:  # the bench was repointed
                store, generation = open_store(self.bench.settings()), self.bench.generation
            try:
                before = store.read(self.name).value("value").reveal()
                ok = self._works(before)
                after = store.read(self.name).value("value").reveal()
            except (OpsError, httpx.HTTPError) as exc:  # a torn read is not a verdict
                if "not found" in str(exc).lower():
                    self.violations.append(f"{self.name} missing from the store")
                self._stop.wait(0.1)
                continue
            self.checks += 1
            if ok is False and before == after:
                self.violations.append(f"the store's current {self.name} did not work")
            self._stop.wait(0.02)

    @contextmanager
    def watching(self) -> Iterator[Watcher]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=30)
