"""The library API: ``from impromptu_ops.api import Agent``, the README's runbook example run
against the sandbox, and the marking of private modules.

The sandbox follows the platform's public API docs (https://impromptusocial.ai, "Agent API":
``GET /health``, ``GET /agent/heartbeat``) and OpenRouter's key API docs
(https://openrouter.ai/docs/api-reference/api-keys); see :mod:`impromptu_ops.sandbox`.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import impromptu_ops
from impromptu_ops import contract
from impromptu_ops.api import PUBLIC_MODULES, Agent
from impromptu_ops.errors import ConfigError, ConnectFailed, SecretNotFound, StoreUnavailable
from impromptu_ops.health.model import Status
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.local import LocalStore
from tests.fixtures_jobs import Agent as SandboxAgent

REPO = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The ```python block of the README's "Library API" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Library API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Library API section has exactly one python example"
    return str(blocks[0])


def test_readme_runbook_example_runs_against_the_sandbox(agent: SandboxAgent) -> None:
    """The README's example, as a runbook author would run it: its own process, the
    environment the sandbox fixture set up (platform URL, the local store with the keys)."""
    code = readme_example()
    ast.parse(code)  # a syntax error is reported as such, not as a failed run
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    # what it printed is what the sandbox said: a working key, a healthy agent, a fresh key
    assert proc.stdout.strip() == "heartbeat ok; health OK; openrouter key: not-due", proc.stdout
    assert agent.api_key not in proc.stdout + proc.stderr


def test_agent_reports_what_the_platform_says(agent: SandboxAgent) -> None:
    """Results are typed values (no printing, no exit codes): a refused key is a finding in
    ``status()`` and a CRITICAL platform_key check, not an exception."""
    ops = Agent.from_settings(load_settings())
    assert ops.name == "default"
    status = ops.status()
    assert status.error is None and status.heartbeat is not None
    assert status.heartbeat.agent_id == agent.agent_id
    assert ops.api_key().reveal() == agent.api_key

    agent.patch(status="SUSPENDED")
    refused = ops.status()
    assert refused.error is not None and refused.errors[0][0] == "heartbeat"
    (check,) = ops.health(checks=("platform_key",)).results
    assert check.status is Status.CRITICAL


def test_injected_store_is_the_one_used(tmp_path: Path, agent: SandboxAgent) -> None:
    """With an injected store the agent reads its keys there, not from the configured
    store: an empty store means no key (and the heartbeat says so, it does not crash)."""
    empty = LocalStore(tmp_path / "s.store", tmp_path / "s.key", passphrase=None)
    ops = Agent(load_settings(), store=empty)
    with pytest.raises(SecretNotFound):
        ops.api_key()
    report = ops.heartbeat()
    assert report.outcome == "failed"
    assert any(contract.IMPROMPTU_API_KEY in s.summary for s in report.steps)

    empty.write(contract.IMPROMPTU_API_KEY, {"value": Secret(agent.api_key)}, cas=0)
    assert ops.heartbeat().outcome == "ok"


def test_building_an_agent_does_no_io(tmp_path: Path) -> None:
    """No store is opened (nor Vault contacted) until a method needs it; then the failure
    is the store's typed error, and ``status()`` records it instead of raising."""
    settings = load_settings({"store.vault_addr": "http://127.0.0.1:9",
                              "store.vault_token": "t", "store.vault_timeout": 2,
                              "platform.api_url": "http://127.0.0.1:9/api",
                              "platform.max_retries": 0, "paths.state_dir": str(tmp_path)})
    ops = Agent.from_settings(settings)  # nothing listens on port 9: no error yet
    assert ops.name == "default"
    with pytest.raises(StoreUnavailable):
        ops.api_key()
    status = ops.status()
    assert [step for step, _ in status.errors] == ["key", "health"]
    assert isinstance(status.errors[1][1], ConnectFailed)


def _modules() -> list[str]:
    found = pkgutil.walk_packages(impromptu_ops.__path__, "impromptu_ops.")
    return [*sorted(m.name for m in found), "impromptu_ops"]


def _docstring(name: str) -> str:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    return ast.get_docstring(tree) or ""


def _private(name: str) -> bool:
    """Marked private itself, or inside a package marked private."""
    parts = name.split(".")
    return any(_docstring(".".join(parts[:i])).startswith("Private:")
               for i in range(2, len(parts) + 1))


def test_every_module_is_public_or_marked_private() -> None:
    """The public surface is ``PUBLIC_MODULES``; everything else says ``Private:``, so a
    runbook author knows what may change without notice."""
    names = _modules()
    assert set(PUBLIC_MODULES) <= set(names), set(PUBLIC_MODULES) - set(names)
    unmarked = [n for n in names if n not in PUBLIC_MODULES and n != "impromptu_ops"
                and not _private(n)]
    assert not unmarked, f"mark these 'Private:' or list them in PUBLIC_MODULES: {unmarked}"
    marked_public = [n for n in PUBLIC_MODULES if _private(n)]
    assert not marked_public, marked_public


def test_importing_the_api_imports_no_use_case() -> None:
    """``import impromptu_ops.api`` stays cheap: the use cases load inside the methods."""
    code = "import sys, impromptu_ops.api; print(','.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    loaded = set(proc.stdout.strip().split(","))
    for heavy in ("impromptu_ops.platform.client", "impromptu_ops.store.factory",
                  "impromptu_ops.health.checks", "impromptu_ops.jobs.heartbeat",
                  "impromptu_ops.rotation.service", "impromptu_ops.gate.gate"):
        assert heavy not in loaded, heavy
    assert "httpx" not in loaded and "hvac" not in loaded


def test_an_agent_per_name_for_a_fleet(tmp_path: Path) -> None:
    """``from_settings(agent=NAME)`` gives that agent's settings: its ``[agents.NAME]``
    table when the config file has one, else the store's agent name; a bad name is a
    ConfigError, never a path."""
    cfg = tmp_path / "config.toml"
    cfg.write_text('[agents.alice.platform]\napi_url = "http://127.0.0.1:9/alice"\n',
                   encoding="utf-8")
    settings = load_settings(env={"HOME": str(tmp_path)}, config_file=cfg)
    alice = Agent.from_settings(settings, agent="alice")
    bob = Agent.from_settings(settings, agent="bob")
    assert (alice.name, alice.settings.platform.api_url) == ("alice", "http://127.0.0.1:9/alice")
    assert (bob.name, bob.settings.platform.api_url) == ("bob", settings.platform.api_url)
    assert Agent.from_settings(settings).name == "default"
    for bad in ("../x", "bob\n", "", "a" * 64):
        with pytest.raises(ConfigError):
            Agent.from_settings(settings, agent=bad)


def test_the_platform_package_does_not_import_the_store() -> None:
    """The platform client knows keys, not where they live: the Agent passes them in."""
    root = Path(impromptu_ops.__file__).parent / "platform"
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [f"{node.module}.{a.name}" for a in node.names]
                     if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith("impromptu_ops.store") for n in names), path.name
