"""Start-up cost: the monitoring commands import only what their checks need.

``health --format nagios`` runs every few minutes under a monitor, the drop-ins under the
runbooks that called the original scripts: with a local store they must not pay for
``hvac`` (the Vault client, ~160 ms), the update gate, the reconciliation or the PoW
solver. Checked in a real process against the sandbox (every check answers, so every
check's code path runs), by reading ``sys.modules`` after the command has finished.

The heartbeat looks at the platform's skill manifest once a day, with the update gate's
hardened manifest parser: that one run imports ``impromptu_ops.gate.manifest`` (it needs
it); every other run must not, so the heartbeats are checked on their second run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_jobs import Agent

# What no monitoring command may import with a local store.
HEAVY = ("hvac", "impromptu_ops.gate", "impromptu_ops.reconcile", "impromptu_ops.pow")

_PROBE = """
import json, sys
from impromptu_ops.cli.main import run
code = run(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _imports_of(tmp_path: Path, *argv: str) -> tuple[int, list[str]]:
    out = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(out), *argv],
                          env=dict(os.environ), capture_output=True, text=True, timeout=60,
                          check=False)
    assert out.exists(), done.stderr
    got = json.loads(out.read_text())
    return int(got["code"]), list(got["modules"])


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] == "hvac"
            or any(m == h or m.startswith(h + ".") for h in HEAVY[1:])]


@pytest.mark.parametrize("argv", [("health", "--format", "nagios"), ("legacy", "health"),
                                  ("heartbeat",), ("legacy", "heartbeat")])
def test_monitoring_commands_import_no_heavy_module(agent: Agent, tmp_path: Path,
                                                    argv: tuple[str, ...]) -> None:
    if argv[-1] == "heartbeat":
        first, _ = _imports_of(tmp_path, *argv)  # the day's skill-manifest look
        assert first == 0, (argv, first)
    code, modules = _imports_of(tmp_path, *argv)
    assert code in (0, 1, 2), (argv, code)  # it ran its checks (0 OK here, at worst a warning)
    assert "impromptu_ops.store.local" in modules  # the local store was really used
    assert _heavy(modules) == [], (argv, _heavy(modules))


def test_the_legacy_health_drop_in_does_not_import_an_http_client(agent: Agent,
                                                                    tmp_path: Path) -> None:
    """The drop-in's skill check only reads the heartbeat's record: no httpx for it."""
    code, modules = _imports_of(tmp_path, "legacy", "health")
    assert code in (0, 1, 2)
    assert "impromptu_ops.jobs.skillcheck" in modules  # the skill-manifest section ran
    assert "httpx" not in modules
