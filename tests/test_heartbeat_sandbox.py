"""The heartbeat against the sandbox with faults injected: it never crashes, exits as
documented (see impromptu_ops.jobs.heartbeat), and reports each notification once."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from impromptu_ops.api import Agent as OpsAgent
from impromptu_ops.jobs.heartbeat import HeartbeatReport
from impromptu_ops.jobs.state import load, state_path
from impromptu_ops.settings import load_settings
from tests.fixtures_jobs import Agent, make_agent, ops

REPO = Path(__file__).resolve().parents[1]
FAST = {"platform.backoff_base": 0.05, "platform.backoff_cap": 0.2,
        "platform.read_timeout": 1.0, "jobs.heartbeat_deadline": 4.0}


def beat(**more: Any) -> HeartbeatReport:
    return OpsAgent.from_settings(load_settings({**FAST, **more})).heartbeat()


def steps(report: HeartbeatReport) -> dict[str, str]:
    return {s.name: s.status for s in report.steps}


def test_happy_path_state_and_textfile(agent: Agent, tmp_path: Path) -> None:
    prom = tmp_path / "textfile" / "impromptu.prom"
    report = beat(**{"jobs.metrics_file": prom})
    assert report.exit_code == 0 and report.outcome == "ok"
    assert steps(report) == {"heartbeat": "ok", "notifications": "ok", "wallet": "ok",
                             "recommendations": "ok", "budget": "ok", "skill": "ok"}
    st = load(state_path(load_settings().paths.state_dir))
    assert st.last_success_at == report.started_at and st.last_exit == 0
    assert stat.S_IMODE(state_path(load_settings().paths.state_dir).stat().st_mode) == 0o600
    text = prom.read_text()
    assert "impromptu_heartbeat_exit_code 0\n" in text
    assert "impromptu_budget_balance 100\n" in text
    assert f"impromptu_heartbeat_last_success_timestamp_seconds {report.started_at!r}" in text


def test_each_notification_is_reported_once_across_runs(agent: Agent) -> None:
    a = agent.notify("someone answered your thread")["id"]
    b = agent.notify("Internal error: this text says error but is just a message")["id"]
    first = beat()
    assert first.exit_code == 0
    assert [n["id"] for n in first.new_notifications] == [a, b]
    assert beat().new_notifications == ()
    c = agent.notify("a third one")["id"]
    third = beat()
    assert [n["id"] for n in third.new_notifications] == [c]
    assert beat().new_notifications == ()


def test_notification_text_is_made_safe_for_terminals(agent: Agent) -> None:
    agent.notify("evil \x1b]0;pwned\x07 \x1b[2J text")
    msg = beat().new_notifications[0]["message"]
    assert "\x1b" not in msg and "\x07" not in msg and "text" in msg


@pytest.mark.parametrize("fault", [
    {"kind": "status", "status": 429, "code": "RATE_001", "retryAfter": 1},
    {"kind": "status", "status": 503},
    {"kind": "truncate"},
    {"kind": "drop"},
    {"kind": "latency", "delay": 1.5},  # longer than the 1 s read timeout: retried
])
def test_transient_faults_are_retried(agent: Agent, fault: dict[str, Any]) -> None:
    agent.fault(path="/agent/heartbeat$", times=1, **fault)
    report = beat()
    assert report.exit_code == 0, report.steps
    assert steps(report)["heartbeat"] == "ok"
    if fault.get("retryAfter"):
        assert report.duration >= 0.9  # it honoured Retry-After: 1


@pytest.mark.parametrize(("fault", "code"), [
    ({"kind": "status", "status": 503}, 69),
    ({"kind": "drop"}, 69),
    ({"kind": "latency", "delay": 3}, 69),
    ({"kind": "malformed"}, 65),
    ({"kind": "status", "status": 401, "code": "UNAUTHORIZED"}, 77),
    ({"kind": "status", "status": 429, "code": "RATE_001", "retryAfter": 30}, 75),
])
def test_lasting_faults_exit_as_documented(agent: Agent, fault: dict[str, Any],
                                           code: int) -> None:
    agent.fault(path="/agent/heartbeat$", times=None, **fault)
    report = beat()
    assert report.exit_code == code, report.steps
    assert report.duration < 8  # the 4 s deadline holds (plus one read timeout)
    st = load(state_path(load_settings().paths.state_dir))
    assert st.last_exit == code and st.last_success_at is None


def test_null_fields_are_reported_not_fatal(agent: Agent) -> None:
    agent.notify("hello")
    agent.fault(path="/agent/heartbeat$", kind="nulls", times=1)
    report = beat()
    assert report.exit_code == 0
    assert "heartbeat.unreadNotifications: null" in report.problems
    assert len(report.new_notifications) == 1  # unknown count: it looked anyway
    agent.fault(path="/agent/budget$", kind="nulls", times=1)
    agent.fault(path="/agent/wallet/sync$", kind="nulls", times=1)
    report = beat()
    assert report.exit_code == 0 and steps(report)["budget"] == "warn"
    assert any(p.startswith("wallet.") for p in report.problems)


def test_truncated_json_in_a_later_step_is_a_warning(agent: Agent) -> None:
    agent.fault(path="/agent/recommendations$", kind="malformed", times=1)
    report = beat()
    assert report.exit_code == 0 and steps(report)["recommendations"] == "warn"


def test_rate_003_pauses_until_reset(agent: Agent) -> None:
    agent.fault(path="/agent/heartbeat$", kind="status", status=429, code="RATE_003", times=1)
    first = beat()
    assert first.exit_code == 75 and first.skip_reason == "RATE_003 daily quota used"
    assert first.skip_until is not None and first.skip_until > time.time()
    # The fault is gone, but the job must not call the platform before the reset.
    agent.fault(path="/agent/heartbeat$", kind="status", status=500, times=None)
    second = beat()
    assert second.exit_code == 75 and second.steps[0].status == "skipped"
    assert "paused until" in second.steps[0].summary


def test_budg_001_in_a_later_step_pauses_but_keeps_the_success(agent: Agent) -> None:
    agent.fault(path="/agent/wallet/sync$", kind="status", status=402, code="BUDG_001")
    report = beat()
    assert report.exit_code == 75 and report.skip_reason == "BUDG_001 out of budget"
    assert steps(report)["recommendations"] == "skipped"  # do not hammer
    assert report.skip_until == pytest.approx(time.time() + 3600, abs=60)
    st = load(state_path(load_settings().paths.state_dir))
    assert st.last_success_at == report.started_at


def test_low_budget_warning_and_trend(agent: Agent) -> None:
    beat()
    agent.patch(budget=12)
    report = beat()
    assert steps(report)["budget"] == "warn" and report.budget["low"] is True
    assert report.budget["trendPerHour"] < 0


def test_missing_key_fails_cleanly(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_agent(sandbox, monkeypatch, store_platform_key=False)
    proc = ops("heartbeat")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "[FAIL] heartbeat: impromptu-api-key is not in the store (next: `impromptu-ops "
        "register` creates the agent and stores it; an existing key: `impromptu-ops secrets "
        "put impromptu-api-key`)")
    assert "Traceback" not in proc.stderr


def test_json_line_and_no_secret_in_output(agent: Agent) -> None:
    proc = ops("heartbeat", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["exitCode"] == 0 and doc["agent"]["name"] == "hb-agent"
    assert agent.api_key not in proc.stdout + proc.stderr


def test_two_heartbeats_started_together(agent: Agent) -> None:
    # The first to take the lock is slowed down, so the second surely finds it held.
    agent.fault(path="/agent/heartbeat$", kind="latency", delay=2, times=1)
    cmd = [sys.executable, "-m", "impromptu_ops.cli", "heartbeat", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ)) for _ in range(2)]
    results = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 75], results
    skipped = next(json.loads(out) for (out, _), p in zip(results, procs, strict=True)
                   if p.returncode == 75)
    assert skipped["steps"][0]["name"] == "lock"


class _PingHandler(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        self.seen.append((self.path, self.rfile.read(size).decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def ping_server() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    handler = type("H", (_PingHandler,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ping/abc", seen
    server.shutdown()
    server.server_close()


def test_healthchecks_ping(agent: Agent, ping_server: tuple[str, list[tuple[str, str]]]) -> None:
    url, seen = ping_server
    proc = ops("heartbeat", "--ping-url", url)
    assert proc.returncode == 0
    # healthchecks.io: success is the bare URL, a failure /fail; one rid per run
    assert [p.split("?")[0] for p, _ in seen] == ["/ping/abc/start", "/ping/abc"]
    assert seen[0][0].split("?rid=")[1] == seen[1][0].split("?rid=")[1]
    agent.fault(path="/agent/heartbeat$", kind="status", status=401, code="UNAUTHORIZED")
    assert ops("heartbeat", "--ping-url", url).returncode == 77
    assert seen[-1][0].startswith("/ping/abc/fail?rid=") and "[FAIL] heartbeat" in seen[-1][1]
    assert seen[-1][1].startswith("exit 77\n")


def test_unreachable_ping_never_fails_the_job(agent: Agent) -> None:
    assert beat(**{"jobs.ping_url": "http://127.0.0.1:9/x"}).exit_code == 0


def test_config_error_is_78_and_still_one_json_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[jobs]\nheartbeat_deadline = 'soon'\n")
    proc = ops("heartbeat", "--json", env={"IMPROMPTU_CONFIG": str(cfg)})
    assert proc.returncode == 78
    (line,) = proc.stdout.splitlines()
    assert json.loads(line)["exitCode"] == 78
    assert proc.stderr.count("\n") == 1 and "heartbeat_deadline" in proc.stderr


def test_a_run_that_finds_the_lock_busy_pings_skipped_under_its_own_rid(
        agent: Agent, ping_server: tuple[str, list[tuple[str, str]]]) -> None:
    # Each run's pings carry its own run id (healthchecks.io pairs /start with the success
    # of the same rid), so the skipped run's /start cannot restart the other run's timer;
    # its end is a success whose body says why it was skipped, never /75 (an alert).
    url, seen = ping_server
    agent.fault(path="/agent/heartbeat$", kind="latency", delay=2, times=1)
    cmd = [sys.executable, "-m", "impromptu_ops.cli", "heartbeat", "--ping-url", url]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not seen and time.monotonic() < deadline:  # the first has started
        time.sleep(0.05)
    time.sleep(0.5)  # and holds the lock (taken right after /start)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    first.communicate(timeout=60)
    assert (first.returncode, second.returncode) == (0, 75)
    runs: dict[str, list[tuple[str, str]]] = {}
    for path, body in seen:
        where, rid = path.split("?rid=")
        runs.setdefault(rid, []).append((where, body))
    assert len(runs) == 2
    assert all([w for w, _ in r] == ["/ping/abc/start", "/ping/abc"] for r in runs.values())
    assert sum("skipped (exit 75)" in r[1][1] for r in runs.values()) == 1


def test_an_unusable_state_folder_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = ops("heartbeat", "--json", env={"IMPROMPTU_PATHS_STATE_DIR": str(blocker / "s")})
    assert proc.returncode == 78, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert json.loads(line)["exitCode"] == 78
    assert proc.stderr.count("\n") == 1 and "paths.state_dir" in proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_a_deadline_too_short_for_any_call_is_a_config_error() -> None:
    proc = ops("heartbeat", env={"IMPROMPTU_JOBS_HEARTBEAT_DEADLINE": "0.5"})
    assert proc.returncode == 78 and "jobs.heartbeat_deadline" in proc.stdout
