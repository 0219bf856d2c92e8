"""``install --run-as USER``: the folders become the user's, install checks as that user
that the store and state are usable, and the job then runs as the user against its store.

A real account is created for the test (useradd) and removed afterwards; the checkout,
its ``.venv`` and the interpreter behind it are made reachable to it for the test's
duration (folders on the way that others cannot enter get o+x, restored afterwards).
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.schedule import validate
from tests.fixtures_jobs import make_agent, ops

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("runuser")),
    reason="needs root, useradd and runuser")


@pytest.fixture
def system_user() -> Iterator[str]:
    name = f"impt{secrets.token_hex(4)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True, timeout=60)


@contextmanager
def reachable(*paths: Path) -> Iterator[None]:
    """Let others enter every folder above ``paths`` (o+x), restoring the modes after."""
    changed: dict[Path, int] = {}
    for path in paths:
        # abspath, not resolve(): .venv/bin/python is a symlink, and resolving it would skip
        # the checkout's own folders (a 0700 checkout, e.g. from mktemp -d, stayed shut)
        for folder in Path(os.path.abspath(path)).parents:
            mode = folder.stat().st_mode
            if folder not in changed and not mode & stat.S_IXOTH:
                changed[folder] = stat.S_IMODE(mode)
                folder.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    try:
        yield
    finally:
        for folder, mode in changed.items():
            folder.chmod(mode)


@pytest.fixture
def shared_base() -> Iterator[Path]:
    # /tmp, not pytest's tmp_path: that one is under a folder only root may enter
    base = Path(tempfile.mkdtemp(prefix="impromptu-runas-", dir="/tmp"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _unit_env(unit: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart's words and the environment systemd would give the job (credentials by
    their source path: runuser has no LoadCredential)."""
    keys = [(k, v) for body in validate.parse_unit(unit).values() for k, v in body]
    creds = dict(v.split(":", 1) for k, v in keys if k == "LoadCredential")
    env: dict[str, str] = {}
    for k, v in keys:
        if k == "Environment":
            name, _, value = v.strip('"').partition("=")
            if value.startswith("%d/"):
                value = creds[value[3:]]
            env[name] = value.replace("%%", "%")
    (exec_start,) = [v for k, v in keys if k == "ExecStart"]
    return exec_start.split(), env


def test_run_as_user_owns_its_folders_and_runs_the_heartbeat(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, system_user: str,
        shared_base: Path, tmp_path: Path) -> None:
    for part in ("config", "data", "state"):
        monkeypatch.setenv(f"IMPROMPTU_PATHS_{part.upper()}_DIR", str(shared_base / part))
    make_agent(sandbox, monkeypatch)  # the store, written by root (as registration would)
    units = tmp_path / "units"
    with reachable(REPO / ".venv" / "bin" / "python", Path(os.path.realpath(
            REPO / ".venv" / "bin" / "python"))):
        proc = ops("install", "--scheduler", "systemd", "--scope", "system",
                   "--run-as", system_user, "--output", str(units))
        assert proc.returncode == 0, proc.stderr
        assert (f"validation: as {system_user}: store and state are readable and writable"
                in proc.stdout)
        uid = int(subprocess.run(["id", "-u", system_user], capture_output=True, text=True,
                                 check=True).stdout)
        for part in ("config", "data", "state"):
            folder = shared_base / part
            assert folder.stat().st_uid == uid and stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert (shared_base / "data" / "secrets.store").stat().st_uid == uid
        argv, env = _unit_env((units / "impromptu-heartbeat.service").read_text())
        assert f"User={system_user}" in (units / "impromptu-heartbeat.service").read_text()
        job = subprocess.run(
            ["runuser", "-u", system_user, "--", "env", "-i", "PATH=/usr/bin:/bin",
             f"HOME={shared_base}", *(f"{k}={v}" for k, v in env.items()), *argv],
            capture_output=True, text=True, timeout=120, check=False)
    assert job.returncode == 0, job.stdout + job.stderr
    assert '"outcome": "ok"' in job.stdout or '"exitCode": 0' in job.stdout
    state_files = list((shared_base / "state").iterdir())
    assert state_files and all(p.stat().st_uid == uid for p in state_files)


def test_unreachable_folders_are_refused_with_the_fix(system_user: str) -> None:
    """The default folders are under root's private test home: the user cannot enter
    them, so install refuses (exit 78) naming the command, and says no 'passed'."""
    proc = ops("install", "--scheduler", "systemd", "--scope", "system",
               "--run-as", system_user, "--dry-run")
    assert proc.returncode == 0  # a dry run changes nothing, so it checks nothing as the user
    proc = ops("install", "--scheduler", "systemd", "--scope", "system",
               "--run-as", system_user, "--output", "/nonexistent-units-dir-never-made")
    assert proc.returncode == 78, proc.stdout + proc.stderr
    assert f"validation as {system_user} failed" in proc.stderr
    assert f"sudo chown -R {system_user}:" in proc.stderr
    assert "passed" not in proc.stdout and proc.stderr.count("\n") == 1
    assert not Path("/nonexistent-units-dir-never-made").exists()


def test_a_system_unit_never_runs_as_root() -> None:
    proc = ops("install", "--scheduler", "systemd", "--scope", "system", "--dry-run")
    assert proc.returncode == 78 and "--run-as USER" in proc.stderr
    assert "--create-user" in proc.stderr and proc.stdout == ""
    root = ops("install", "--scheduler", "systemd", "--scope", "system", "--run-as", "root",
               "--dry-run")
    assert root.returncode == 78
    made = ops("install", "--scheduler", "systemd", "--scope", "system", "--create-user",
               "--dry-run")
    assert made.returncode == 0, made.stderr
    if subprocess.run(["id", "impromptu"], capture_output=True, check=False).returncode:
        assert "would create the system user impromptu" in made.stdout
    assert "User=impromptu" in made.stdout
    user_scope = ops("install", "--scheduler", "systemd", "--scope", "user", "--run-as", "bob",
                     "--dry-run")
    assert user_scope.returncode == 78 and "system unit" in user_scope.stderr
    ghost = ops("install", "--scheduler", "systemd", "--scope", "system", "--run-as",
                "nosuchuser" + "x" * 8)
    assert ghost.returncode == 78 and "no such user" in ghost.stderr
    assert "useradd --system" in ghost.stderr and ghost.stdout == ""
