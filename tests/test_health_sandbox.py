"""``health`` against the sandbox: each Nagios state where it belongs, every format, the
speed target, and our own failures as UNKNOWN (never CRITICAL)."""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.api import Agent as OpsAgent
from impromptu_ops.health.model import Status
from impromptu_ops.health.policy import load_policy
from impromptu_ops.settings import load_settings
from tests.fixtures_jobs import Agent, make_agent, ops

REPO = Path(__file__).resolve().parents[1]


def nagios(*extra: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = ops("health", "--format", "nagios", *extra, env=env)
    assert proc.stdout.count("\n") <= 1, proc.stdout  # ONE line
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout.strip()


@pytest.fixture
def healthy(agent: Agent) -> Agent:
    """An agent whose heartbeat ran once, as after `install` and the first timer run."""
    assert ops("heartbeat").returncode == 0
    return agent


def checks(fmt_json: str) -> dict[str, str]:
    return {c["name"]: c["status"] for c in json.loads(fmt_json)["checks"]}


def test_ok_and_fast(healthy: Agent) -> None:
    code, line = nagios()
    assert code == 0, line
    assert line.startswith("IMPROMPTU OK - 11 checks OK | ")
    assert "'budget'=100;20:;5:;0;100" in line
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        assert nagios()[0] == 0
        times.append(time.perf_counter() - t0)
    assert min(times) < 1.0, times  # the whole process, happy path


def test_unread_notifications_warn(healthy: Agent) -> None:
    healthy.notify("ping")
    code, line = nagios()
    assert code == 1 and line.startswith("IMPROMPTU WARNING - notifications: 1 unread")


def test_low_budget_warns_then_criticals(healthy: Agent) -> None:
    healthy.patch(budget=10)
    assert nagios()[0] == 1
    healthy.patch(budget=2)
    code, line = nagios()
    assert code == 2 and "budget: 2 of 100 left" in line
    assert nagios("--critical", "budget=")[0] == 1  # a flag overrides the policy


def test_platform_down_is_critical(healthy: Agent) -> None:
    healthy.fault(path="/api/health$", kind="status", status=503, times=None)
    code, line = nagios()
    assert code == 2 and line.startswith("IMPROMPTU CRITICAL - platform: down")


def test_platform_unreachable_is_critical(healthy: Agent) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    code, line = nagios(env={"IMPROMPTU_API_URL": f"http://127.0.0.1:{port}/api"})
    assert code == 2 and "platform: down" in line


def test_refused_key_is_critical(healthy: Agent) -> None:
    healthy.fault(path="/agent/heartbeat$", kind="status", status=401, code="UNAUTHORIZED",
                  times=None)
    proc = ops("health", "--format", "json")
    assert proc.returncode == 2
    got = checks(proc.stdout)
    assert got["platform_key"] == "CRITICAL" and got["budget"] == "UNKNOWN"


def test_missing_key_is_critical(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_agent(sandbox, monkeypatch, store_platform_key=False)
    proc = ops("health", "--format", "json", "--check", "platform_key")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["checks"][0]["summary"] == (
        "impromptu-api-key is not in the store")


def test_hanging_platform_is_cut_by_its_own_timeout(healthy: Agent, tmp_path: Path) -> None:
    (tmp_path / "health.toml").write_text("[timeouts]\nplatform = 1.0\n")
    healthy.fault(path="/api/health$", kind="latency", delay=5, times=None)
    t0 = time.perf_counter()
    code, line = nagios(env={"IMPROMPTU_PATHS_POLICIES_DIR": str(tmp_path)})
    assert code == 2 and "platform:" in line
    assert time.perf_counter() - t0 < 3.5


def test_null_fields_are_unknown_not_a_crash(healthy: Agent) -> None:
    healthy.fault(path="/agent/heartbeat$", kind="nulls", times=None)
    proc = ops("health", "--format", "json")
    got = checks(proc.stdout)
    assert got["budget"] == "UNKNOWN" and got["platform_key"] == "WARNING"
    assert proc.returncode == 3


def test_key_expiry_and_age(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_agent(sandbox, monkeypatch, keyExpiresInDays=2)
    proc = ops("health", "--format", "json", "--check", "key_age")
    assert proc.returncode == 2, proc.stdout
    summary = json.loads(proc.stdout)["checks"][0]["summary"]
    assert re.search(r"expires in [12](\.\d+)? days", summary), summary  # 2 days, rounded
    proc = ops("health", "--format", "json", "--check", "key_age",
               "--critical", "key_expiry_days=", "--warning", "key_age_days=@0:1")
    assert proc.returncode == 1  # an age of 0 days is now inside the warning range


def test_plaintext_key_in_shell_file_is_critical(healthy: Agent) -> None:
    rc = Path(os.environ["HOME"]) / ".bashrc"
    rc.write_text(f"export PATH=$PATH:~/bin\nexport IMPROMPTU_API_KEY={healthy.api_key}\n")
    proc = ops("health", "--format", "nagios", "--check", "secrets_scan")
    assert proc.returncode == 2 and ".bashrc:2" in proc.stdout
    assert healthy.api_key not in proc.stdout + proc.stderr


def test_loose_permissions_are_critical(healthy: Agent) -> None:
    cfg = load_settings().paths.config_dir
    cfg.chmod(0o755)
    proc = ops("health", "--format", "nagios", "--check", "permissions")
    assert proc.returncode == 2 and "mode 755" in proc.stdout


def test_stale_heartbeat(agent: Agent) -> None:
    proc = ops("health", "--format", "nagios", "--check", "heartbeat")
    assert proc.returncode == 1 and "no successful heartbeat" in proc.stdout


@pytest.mark.parametrize("args", [
    ("--format", "bogus"),
    ("--no-such-flag",),
    ("--warning", "nope=1"),
    ("--critical", "budget=10:5"),
    ("--check", "nope"),
])
def test_our_own_mistakes_are_unknown(agent: Agent, args: tuple[str, ...]) -> None:
    proc = ops("health", "--format", "nagios", *args) if args[0] != "--format" else ops(
        "health", *args)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    if args[0] != "--format":  # the monitor reads stdout: one UNKNOWN line, even for usage
        (line,) = proc.stdout.splitlines()
        assert line.startswith("IMPROMPTU UNKNOWN - "), line


def test_usage_errors_speak_each_format(agent: Agent) -> None:
    proc = ops("health", "--format", "json", "-t", "0")
    assert proc.returncode == 3 and json.loads(proc.stdout)["status"] == "UNKNOWN"
    proc = ops("health", "--format=prometheus", "--no-such-flag")
    assert proc.returncode == 3 and "impromptu_health_status 3" in proc.stdout
    proc = ops("health", "--no-such-flag")  # text: one line on stderr
    assert proc.returncode == 3 and proc.stdout == "" and proc.stderr.count("\n") == 1
    # scripts/impromptu-health takes no arguments, as the original: tests/test_health_dropin.py


def test_bad_config_and_bad_policy_are_unknown(agent: Agent, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[platform]\npath_prefix = 'nope'\n")
    code, line = nagios(env={"IMPROMPTU_CONFIG": str(cfg)})
    assert code == 3 and line.startswith("IMPROMPTU UNKNOWN - ") and "path_prefix" in line
    (tmp_path / "health.toml").write_text("[budget]\nwarning = 'ten'\n")
    code, line = nagios(env={"IMPROMPTU_PATHS_POLICIES_DIR": str(tmp_path)})
    assert code == 3 and "invalid threshold range" in line


def test_json_and_prometheus_formats(healthy: Agent) -> None:
    doc = json.loads(ops("health", "--format", "json").stdout)
    assert doc["status"] == "OK" and len(doc["checks"]) == 11
    prom = ops("health", "--format", "prometheus")
    assert prom.returncode == 0
    assert "impromptu_health_status 0" in prom.stdout
    assert 'impromptu_health_check_status{check="platform"} 0' in prom.stdout
    text = ops("health")
    assert text.returncode == 0 and "overall: OK" in text.stdout


def test_library_entry_point_runs_checks_concurrently(healthy: Agent) -> None:
    healthy.fault(path="/agent/heartbeat$", kind="latency", delay=0.6, times=None)
    healthy.fault(path="/api/health$", kind="latency", delay=0.6, times=None)
    settings = load_settings()
    t0 = time.perf_counter()
    report = OpsAgent.from_settings(settings).health(
        policy=load_policy(settings.paths.policies_dir))
    assert report.status is Status.OK
    assert time.perf_counter() - t0 < 1.15  # not 0.6 + 0.6 (+ security-status)


def test_a_bug_of_ours_is_unknown_not_70(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from impromptu_ops.cli.main import run
    from impromptu_ops.health import render

    def broken(report: Any, fmt: str) -> str:
        raise TypeError("boom")

    monkeypatch.setattr(render, "render", broken)
    assert run(["health", "--format", "nagios", "--check", "config"]) == 3
    assert capsys.readouterr().out == "IMPROMPTU UNKNOWN - internal error: TypeError: boom\n"


@pytest.mark.parametrize("kind", ["truncate", "drop", "malformed"])
def test_broken_health_answers_are_critical(healthy: Agent, kind: str) -> None:
    healthy.fault(path="/api/health$", kind=kind, times=None)
    code, line = nagios("--check", "platform")
    assert code == 2 and line.startswith("IMPROMPTU CRITICAL - platform: down"), line


def test_timeout_flag_bounds_the_whole_run(healthy: Agent) -> None:
    healthy.fault(path="/agent/heartbeat$", kind="latency", delay=5, times=None)
    t0 = time.perf_counter()
    code, line = nagios("-t", "1")
    assert time.perf_counter() - t0 < 3.0
    assert code == 2 and "platform_key: no result within 1s" in line


def test_health_imports_neither_httpx_nor_hvac(healthy: Agent) -> None:
    """The start-up budget: a check imports only what it uses (local store: no hvac)."""
    import subprocess
    import sys

    code = ("import sys; from impromptu_ops.cli.main import run; "
            "rc = run(['health', '--format', 'nagios']); "
            "print(rc, sorted(m for m in ('httpx', 'hvac', 'requests', 'http.client', "
            "'impromptu_ops.platform.results') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stdout + proc.stderr
