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
import shutil
from pathlib import Path

import pytest

from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_fleet import make_fleet
from tests.fixtures_jobs import ops

REPO = Path(__file__).resolve().parents[1]


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
    # carol's key is rate limited (429 RATE_001, Retry-After 60): her checks say so (key
    # WARNING, budget and notifications UNKNOWN: not read), no one waits, the rest is as before
    sandbox.control("POST", "faults", {"method": "*", "path": "/agent/heartbeat$",
                                       "kind": "status", "status": 429, "code": "RATE_001",
                                       "retryAfter": 60, "times": None,
                                       "agentId": fleet.agents["carol"].agent_id})
    data = json.loads(ops("fleet", "health", "--format", "json").stdout)
    assert {a["agent"]: a["status"] for a in data["agents"]} == \
        {"alice": "OK", "bob": "CRITICAL", "carol": "UNKNOWN"}
    carol = {c["name"]: c for c in data["agents"][2]["checks"]}
    assert carol["platform_key"]["status"] == "WARNING"
    assert "rate limited" in carol["platform_key"]["summary"]
    assert data["durationSeconds"] < 60  # nobody slept out carol's Retry-After


def test_fleet_health_usage_error_is_unknown(sandbox: SandboxServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    make_fleet(sandbox, monkeypatch, ["alice"])
    proc = ops("fleet", "health", "--format", "nagios", "--bogus")
    assert proc.returncode == 3 and proc.stdout.startswith("IMPROMPTU UNKNOWN - ")
    proc = ops("fleet", "health", "--format", "nagios", "--check", "nope")
    assert proc.returncode == 3 and "unknown check" in proc.stdout
    assert re.search(r"Traceback", proc.stderr) is None


def _runs(proc: object) -> dict[str, dict[str, object]]:
    data = json.loads(proc.stdout)  # type: ignore[attr-defined]
    return {a["localAgent"]: a for a in data["agents"]}


def test_fleet_heartbeat_keeps_each_agents_notifications_and_state(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = make_fleet(sandbox, monkeypatch, ["alice", "bob", "carol"])
    fleet.agents["alice"].notify("for alice only")
    fleet.agents["bob"].notify("for bob only")
    fleet.agents["bob"].notify("for bob, again")
    proc = ops("fleet", "heartbeat", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = _runs(proc)
    seen = {n: sorted(x["message"] for x in r["newNotifications"])  # type: ignore[attr-defined]
            for n, r in runs.items()}
    assert seen == {"alice": ["for alice only"], "bob": ["for bob only", "for bob, again"],
                    "carol": []}
    for name, agent in fleet.agents.items():  # each answer is that agent's own
        assert runs[name]["agent"]["agentId"] == agent.agent_id  # type: ignore[index]
        state = fleet.settings(name).paths.state_dir / "heartbeat.json"
        assert state.is_file() and name in str(state)
    again = _runs(ops("fleet", "heartbeat", "--json"))  # once only, per agent
    assert all(r["newNotifications"] == [] for r in again.values())
    fleet.agents["carol"].notify("carol's turn")
    third = _runs(ops("fleet", "heartbeat", "--json"))
    assert [x["message"] for x in third["carol"]["newNotifications"]] == ["carol's turn"]  # type: ignore[attr-defined]
    assert third["alice"]["newNotifications"] == third["bob"]["newNotifications"] == []


def test_one_agents_rate_limit_and_slowness_do_not_hold_the_others(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = make_fleet(sandbox, monkeypatch, ["a-slow", "bob", "carol"],
                       extra_config="[agents.a-slow.jobs]\nheartbeat_deadline = 3.0\n"
                                    "[agents.a-slow.platform]\ndeadline = 3.0\n")
    # one worker: the slow agent (first in the roster) would hold the rest without the
    # per-agent deadline; bob is over his daily quota (RATE_003), every call, forever
    sandbox.control("POST", "faults", {"method": "*", "path": "/agent/heartbeat$",
                                       "kind": "latency", "delay": 20, "times": None,
                                       "agentId": fleet.agents["a-slow"].agent_id})
    sandbox.control("POST", "faults", {"method": "*", "path": "/agent/heartbeat$",
                                       "kind": "status", "status": 429, "code": "RATE_003",
                                       "times": None, "agentId": fleet.agents["bob"].agent_id})
    proc = ops("fleet", "heartbeat", "--json", env={"IMPROMPTU_FLEET_CONCURRENCY": "1"})
    runs = _runs(proc)
    assert runs["carol"]["exitCode"] == 0 and runs["carol"]["outcome"] == "ok"
    assert runs["bob"]["exitCode"] == 75 and "RATE_003" in str(runs["bob"]["skipReason"])
    assert runs["a-slow"]["exitCode"] not in (0, 75)  # its own deadline ended it
    assert proc.returncode == runs["a-slow"]["exitCode"]
    # bob stays paused without calling the platform; carol is served as before
    again = _runs(ops("fleet", "heartbeat", "--json", "--skipped-exit-code", "0"))
    assert again["bob"]["exitCode"] == 75 and again["carol"]["exitCode"] == 0


def _stored_key(fleet: object, name: str) -> str:
    from impromptu_ops.store.factory import open_store

    settings = fleet.settings(name)  # type: ignore[attr-defined]
    return str(open_store(settings).read("impromptu-api-key").value().reveal())


def test_fleet_rotate_canary_first_then_the_rest(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fleet = make_fleet(sandbox, monkeypatch, ["alice", "bob", "carol"])
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    env = {"IMPROMPTU_PATHS_POLICIES_DIR": str(policies)}
    fresh = ops("fleet", "rotate", "--if-due", "--json", env=env)
    assert fresh.returncode == 0, fresh.stderr
    assert all(o["state"] == "not-due" for r in _runs(fresh).values()
               for o in r["outcomes"])  # type: ignore[attr-defined]
    (policies / "rotation.toml").write_text("[impromptu]\nmax_age_days = 0\ngrace_hours = 0\n")
    before = {n: _stored_key(fleet, n) for n in fleet.agents}
    # the canary (alice, first in the roster) cannot mint a key: nobody else is started
    sandbox.control("POST", "faults", {"method": "POST", "path": "/agent/keys$",
                                       "kind": "status", "status": 503, "times": None,
                                       "agentId": fleet.agents["alice"].agent_id})
    stopped = ops("fleet", "rotate", "--if-due", "--json",
                  env={**env, "IMPROMPTU_PLATFORM_MAX_RETRIES": "0"})
    runs = _runs(stopped)
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert runs["alice"]["started"] and runs["alice"]["exitCode"] == 1
    assert not runs["bob"]["started"] and not runs["carol"]["started"]
    assert {n: _stored_key(fleet, n) for n in fleet.agents} == before  # nothing changed
    sandbox.control("DELETE", "faults")
    done = ops("fleet", "rotate", "--if-due", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    after = {n: _stored_key(fleet, n) for n in fleet.agents}
    assert all(after[n] != before[n] for n in fleet.agents)
    assert len(set(after.values())) == 3  # each agent got its own new key
    hb = _runs(ops("fleet", "heartbeat", "--json"))  # and each new key works
    assert all(r["exitCode"] == 0 for r in hb.values())


def test_each_agent_pings_its_own_check(sandbox: SandboxServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """healthchecks.io HTTP API (healthchecks.io/docs/http_api/): /start, then success
    (a skipped run is a success whose body says why) or /fail, per agent's own URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            hits.append((self.path.split("?")[0], body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/ping"
    try:
        fleet = make_fleet(sandbox, monkeypatch, ["alice", "bob", "carol"], extra_config=(
            f'[agents.alice.jobs]\nping_url = "{base}/alice"\n'
            f'[agents.bob.jobs]\nping_url = "{base}/{{agent}}-{{job}}"\n'))
        sandbox.control("POST", "faults", {"method": "*", "path": "/agent/heartbeat$",
                                           "kind": "status", "status": 429,
                                           "code": "RATE_003", "times": None,
                                           "agentId": fleet.agents["bob"].agent_id})
        proc = ops("fleet", "heartbeat")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        server.shutdown()
        server.server_close()
    by: dict[str, list[str]] = {}
    for path, body in hits:
        check, _, kind = path.removeprefix("/ping/").partition("/")
        by.setdefault(check, []).append(kind or f"success:{body[:40]}")
    assert set(by) == {"alice", "bob-heartbeat"}  # carol has no check of her own
    assert by["alice"][0] == "start" and by["alice"][1].startswith("success")
    assert by["bob-heartbeat"][0] == "start" and "skipped" in by["bob-heartbeat"][1]
