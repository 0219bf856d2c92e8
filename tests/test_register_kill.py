"""SIGKILL right after the server returned the key: the key survives, in the store or in the
encrypted emergency file, and the operator is told how to continue.

The child is the real CLI in a subprocess. ``IMPROMPTU_TEST_PAUSE_AFTER=register-response``
(read in one place, :data:`impromptu_ops.registration.keeping.TEST_PAUSE_ENV`) makes it log a
line and sleep at the first instant after the 201 answer's secrets were handed to the store;
the test then kills it with SIGKILL, so nothing after that point (journal update, output,
accept-tos) runs.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from impromptu_ops.registration.keeping import TEST_PAUSE_ENV
from tests.fixtures_register import Registrar
from tests.fixtures_sandbox import SandboxFactory


@pytest.fixture
def registrar(sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> Registrar:
    return Registrar(sandbox_factory(return_wallet_key=True), monkeypatch, capsys)


def kill_at_pause(proc: subprocess.Popen[str], timeout: float = 60.0,
                  point: str = "register-response") -> str:
    """Wait for the pause line on stderr, then SIGKILL; return what stderr said."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while f"test pause after {point}" not in seen:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the child never paused (rc {proc.returncode}): {seen}{err}{out}")
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            seen += proc.stderr.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    proc.communicate()
    return seen


@contextmanager
def writers_locked_out(store_path: Path) -> Iterator[None]:
    """Hold the local store's writer lock: reads work, every write times out (LockBusy)."""
    lock = store_path.with_name(store_path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def test_killed_after_the_key_arrived_the_key_is_in_the_store(registrar: Registrar) -> None:
    proc = registrar.spawn("register", "--name", "kill-a", "--accept-tos",
                           extra_env={TEST_PAUSE_ENV: "register-response"})
    kill_at_pause(proc)
    key = registrar.stored()
    wallet = registrar.stored("wallet-private-key")
    assert key.reveal().startswith("impr_sk_") and wallet
    # Stored and read back: the sealed copy was dropped, nothing is left to recover.
    assert not list((registrar.settings().paths.state_dir / "emergency").glob("*.json"))
    with registrar.client(key) as client:  # the server issued exactly this key
        assert client.heartbeat().raw["name"] == "kill-a"
    # The next run knows: the agent exists and its key is kept; no second registration.
    again = registrar.run("register", "--name", "kill-a", "--accept-tos")
    assert again.code == 1 and "already registered" in again.error
    assert len(registrar.sandbox.state.data["agents"]) == 1


@pytest.mark.parametrize("point", ["sealed", "store-write"])
def test_killed_before_the_store_writes_finished_both_keys_are_recoverable(
        registrar: Registrar, point: str) -> None:
    """Killed after the sealed copy (``sealed``), or with the API key stored but not yet the
    wallet key (``store-write``): the sealed copy holds both, and the next run names it."""
    proc = registrar.spawn("register", "--name", f"kill-{point}", "--accept-tos",
                           extra_env={TEST_PAUSE_ENV: point})
    kill_at_pause(proc, point=point)
    settings = registrar.settings()
    files = sorted((settings.paths.state_dir / "emergency").glob("register-*.json"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    store = registrar.store()
    assert "wallet-private-key" not in store.list()  # the kill came before it was stored
    blocked = registrar.run("register", "--name", "someone-else", "--accept-tos")
    assert blocked.code == 1 and f"register recover {files[0]}" in blocked.error
    assert len(registrar.sandbox.state.data["agents"]) == 1  # no second agent
    recovered = registrar.run("register", "recover", str(files[0]))
    assert recovered.code == 0, recovered.err
    assert not files[0].exists()
    assert registrar.stored("wallet-private-key").reveal()
    with registrar.client() as client:
        assert client.heartbeat().raw["name"] == f"kill-{point}"


def test_killed_after_the_store_failed_the_key_is_in_the_emergency_file(
        registrar: Registrar) -> None:
    registrar.setenv(IMPROMPTU_STORE_LOCK_TIMEOUT="0.3")
    settings = registrar.settings()
    with writers_locked_out(settings.local_store_path):
        proc = registrar.spawn("register", "--name", "kill-b", "--accept-tos",
                               extra_env={TEST_PAUSE_ENV: "register-response"})
        kill_at_pause(proc)
    files = sorted((settings.paths.state_dir / "emergency").glob("register-*.json"))
    assert len(files) == 1
    emergency = files[0]
    assert emergency.stat().st_mode & 0o777 == 0o600
    assert emergency.parent.stat().st_mode & 0o777 == 0o700
    assert b"impr_sk_" not in emergency.read_bytes()  # sealed, not plain text
    # A plain register run refuses and names the recovery command.
    blocked = registrar.run("register", "--name", "kill-b2", "--accept-tos")
    assert blocked.code == 1 and f"register recover {emergency}" in blocked.error
    recovered = registrar.run("register", "recover", str(emergency))
    assert recovered.code == 0, recovered.err
    assert "impromptu-api-key, wallet-private-key stored in local" in recovered.out
    assert not emergency.exists()
    with registrar.client() as client:
        assert client.heartbeat().raw["name"] == "kill-b"
    assert registrar.journal_step() == "stored"


def test_store_failure_without_kill_exits_non_zero_naming_the_file(
        registrar: Registrar) -> None:
    registrar.setenv(IMPROMPTU_STORE_LOCK_TIMEOUT="0.2")
    settings = registrar.settings()
    with writers_locked_out(settings.local_store_path):
        res = registrar.run("register", "--name", "kill-c", "--accept-tos")
    assert res.code == 74
    files = sorted((settings.paths.state_dir / "emergency").glob("register-*.json"))
    assert len(files) == 1 and str(files[0]) in res.error
    assert f"impromptu-ops register recover {files[0]}" in res.error
    assert "agentId" not in res.out  # no success report
    assert registrar.journal_step() == "emergency"
    assert registrar.run("register", "recover", str(files[0])).code == 0
    assert registrar.stored().reveal().startswith("impr_sk_")
