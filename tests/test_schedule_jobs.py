"""Every scheduled job on every scheduler: systemd units that ``systemd-analyze verify``
accepts, cron lines whose shell turns a skip into exit 0 with the reason logged, launchd
calendar runs.

cron(8) ignores a job's exit status but mails or logs its output; a crontab line runs under
``/bin/sh`` with ``%`` as a newline (crontab(5)). systemd: ``SuccessExitStatus=`` makes
listed exit codes count as success (systemd.service(5)).
"""

from __future__ import annotations

import fcntl
import os
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from impromptu_ops.schedule import generate, validate
from impromptu_ops.schedule.spec import DAY, WEEK, ScheduleSpec, build_specs
from impromptu_ops.settings import load_settings

EXE = shutil.which("true") or "/bin/true"


def _specs(tmp_path: Path, scope: str = "user", command: tuple[str, ...] = (EXE,)
           ) -> tuple[ScheduleSpec, ...]:
    s = load_settings({"paths.state_dir": tmp_path / "state", "paths.config_dir":
                       tmp_path / "cfg", "paths.data_dir": tmp_path / "data"}, env={})
    return build_specs(s, command, seed="alice@host", scope=scope, user="impromptu")


@pytest.mark.parametrize("scope", ["user", "system"])
def test_the_units_of_all_four_jobs_pass_systemd_analyze_verify(tmp_path: Path,
                                                                 scope: str) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    specs = _specs(tmp_path, scope)
    files = generate.render_all(specs, "systemd")
    assert sorted(files) == sorted(f"impromptu-{j}.{k}" for j in
                                   ("heartbeat", "rotate", "reconcile", "health")
                                   for k in ("service", "timer"))
    assert "systemd-analyze verify passed" in validate.validate(files)
    units = {n: validate.parse_unit(d.decode()) for n, d in files.items()}

    def get(name: str, key: str) -> list[str]:
        return [v for body in units[name].values() for k, v in body if k == key]

    assert get("impromptu-heartbeat.timer", "OnCalendar") == ["*-*-* *:00/30:00"]
    assert get("impromptu-health.timer", "OnCalendar") == ["*-*-* *:00/5:00"]
    (daily,) = get("impromptu-rotate.timer", "OnCalendar")
    (weekly,) = get("impromptu-reconcile.timer", "OnCalendar")
    assert daily.startswith("*-*-* 0") and weekly.startswith("Mon *-*-* 0")
    for job in ("heartbeat", "rotate", "reconcile", "health"):
        svc = f"impromptu-{job}.service"
        assert get(svc, "SuccessExitStatus") == ["75"]
        assert (get(svc, "User") == ["impromptu"]) is (scope == "system")
    exec_reconcile = get("impromptu-reconcile.service", "ExecStart")[0]
    assert f"--output {tmp_path}/state/earnings-report.json" in exec_reconcile
    assert "--if-due" in get("impromptu-rotate.service", "ExecStart")[0]
    if scope == "system":  # a rotation writes the local store under ProtectSystem=strict
        assert f"-{tmp_path}/data" in get("impromptu-rotate.service", "ReadWritePaths")


def _fake_job(tmp_path: Path) -> Path:
    script = tmp_path / "fake-job"
    script.write_text('#!/bin/sh\necho "job ran: $*"\nexit "${FAKE_EXIT:-0}"\n')
    script.chmod(0o755)
    return script


def _run_cron_line(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What cron runs: everything after the five time fields, by /bin/sh, % un-escaped."""
    command = line.split(" ", 5)[5].replace("\\%", "%")
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, check=False)


def test_cron_lines_log_a_skip_and_pass_failures_on(tmp_path: Path) -> None:
    if not (shutil.which("flock") and shutil.which("timeout")):
        pytest.skip("flock/timeout not installed")
    specs = _specs(tmp_path, command=(str(_fake_job(tmp_path)),))
    (tmp_path / "state").mkdir()
    lines = generate.render_all(specs, "cron")["crontab"].decode().splitlines()
    assert [ln.rsplit("# ", 1)[1] for ln in lines] == [
        "impromptu-heartbeat", "impromptu-rotate", "impromptu-reconcile", "impromptu-health"]
    heartbeat = specs[0]
    ok = _run_cron_line(lines[0], {})
    assert ok.returncode == 0
    assert "--skipped-exit-code 0" in heartbeat.log_file.read_text()  # the job's own words
    failed = _run_cron_line(lines[0], {"FAKE_EXIT": "69"})
    assert failed.returncode == 69  # a failure is passed on, never turned into success
    with heartbeat.cron_lock.open("a") as held:  # the previous run still holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        skipped = _run_cron_line(lines[0], {})
    assert skipped.returncode == 0
    assert heartbeat.log_file.read_text().splitlines()[-1] == (
        "impromptu-heartbeat: skipped: the previous run still holds the cron lock")
    assert validate.structural_problems({"crontab": "\n".join(lines).encode()}) == []


def test_launchd_runs_daily_and_weekly_jobs_by_the_calendar(tmp_path: Path) -> None:
    specs = {s.job: s for s in _specs(tmp_path)}
    assert specs["rotate"].interval_minutes == DAY and specs["reconcile"].interval_minutes == WEEK
    files = generate.render_all(tuple(specs.values()), "launchd")
    assert sorted(files) == [f"ai.impromptu.{j}.plist"
                             for j in ("health", "heartbeat", "reconcile", "rotate")]
    weekly = plistlib.loads(files["ai.impromptu.reconcile.plist"])
    assert set(weekly["StartCalendarInterval"]) == {"Hour", "Minute", "Weekday"}
    assert 1 <= weekly["StartCalendarInterval"]["Hour"] <= 4
    assert plistlib.loads(files["ai.impromptu.health.plist"])["StartInterval"] == 300
    assert all(plistlib.loads(d)["ProgramArguments"][-2:] == ["--skipped-exit-code", "0"]
               for d in files.values())
    assert validate.validate(files)


def test_the_daily_and_weekly_minutes_are_stable_and_differ_per_job(tmp_path: Path) -> None:
    first = {s.job: (s.hour, s.minute) for s in _specs(tmp_path)}
    again = {s.job: (s.hour, s.minute) for s in _specs(tmp_path)}
    assert first == again
    assert first["rotate"] != first["reconcile"]  # not all at the same minute
