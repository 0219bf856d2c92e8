"""The fleet commands against the sandbox (issue 17, Build 2-4): ``fleet health``,
``fleet heartbeat``, ``fleet rotate --if-due``, each agent with its own store file and
state folder.

Platform contract (/work/shared/impromptu-platform.md): an agent whose ``status`` is
``SUSPENDED`` is refused with 403 ``ACCOUNT_NOT_ACTIVE``; RATE_003 (daily quota) carries
``X-RateLimit-Reset``. Nagios output follows the Monitoring Plugins development guidelines
(one status line, perfdata after ``|``, exit 0/1/2/3).
"""

from __future__ import annotations

import json
import re

import pytest

from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_fleet import make_fleet
from tests.fixtures_jobs import ops


def test_fleet_health_names_a_suspended_agent_and_exits_2(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = make_fleet(sandbox, monkeypatch, ["alice", "bob", "carol"])
    assert ops("fleet", "heartbeat").returncode == 0
    proc = ops("fleet", "health", "--format", "nagios")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("IMPROMPTU FLEET OK - 3 agents OK | ")
    fleet.agents["bob"].patch(status="SUSPENDED")
    proc = ops("fleet", "health", "--format", "nagios")
    line = proc.stdout.strip()
    assert proc.returncode == 2, line + proc.stderr
    assert "\n" not in line
    head, perf = line.split(" | ")
    assert head.startswith("IMPROMPTU FLEET CRITICAL - 1/3 agents not OK; CRITICAL: bob (")
    assert "alice" not in head and "carol" not in head
    assert "'bob::status'=2;1;2;0;3" in perf and "'alice::status'=0;1;2;0;3" in perf
    assert "'carol::budget'=" in perf  # every agent's own perfdata
    data = json.loads(ops("fleet", "health", "--format", "json").stdout)
    assert {a["agent"]: a["status"] for a in data["agents"]} == \
        {"alice": "OK", "bob": "CRITICAL", "carol": "OK"}
    prom = ops("fleet", "health", "--format", "prometheus").stdout
    samples = [ln for ln in prom.splitlines() if ln and not ln.startswith("#")]
    assert samples and all('agent="' in ln for ln in samples)
    assert 'impromptu_health_status{agent="bob"} 2' in prom


def test_fleet_health_usage_error_is_unknown(sandbox: SandboxServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_fleet(sandbox, monkeypatch, ["alice"])
    proc = ops("fleet", "health", "--format", "nagios", "--bogus")
    assert proc.returncode == 3 and proc.stdout.startswith("IMPROMPTU UNKNOWN - ")
    proc = ops("fleet", "health", "--format", "nagios", "--check", "nope")
    assert proc.returncode == 3 and "unknown check" in proc.stdout
    assert re.search(r"Traceback", proc.stderr) is None
