"""Persistence across restarts (clean and SIGKILL) and the ``sandbox serve`` command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from impromptu_ops.errors import ConfigError, LockBusy
from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer
from tests.fixtures_sandbox import SandboxFactory, register, solve


def test_restart_loses_nothing(sandbox_factory: SandboxFactory) -> None:
    first = sandbox_factory(payment_mode="withheld")
    body = register(first)
    auth = {"Authorization": f"Bearer {body['apiKey']}"}
    new_key = httpx.post(first.base_url + "/v1/agent/keys", headers=auth).json()
    chal = httpx.post(first.base_url + "/v1/agents/register/challenge").json()
    proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
    reg = {"name": "Second", "acceptTos": True, "pow": proof}
    assert httpx.post(first.base_url + "/v1/agents/register", json=reg).status_code == 201
    first.control("POST", "skill/publish", {"version": "1", "files": [
        {"path": "SKILL.md", "content": "hello"}]})
    first.control("POST", "faults", {"path": "/health", "kind": "status", "times": 5})
    first.control("POST", "clock", {"offsetSeconds": 120})
    prompt = httpx.post(first.base_url + "/v1/agent/prompt", headers=auth,
                        json={"content": "c", "initialPrompt": "p"})
    assert prompt.status_code == 201
    before = first.control("GET", "state")
    first.stop()

    second = sandbox_factory(state_dir=first.state_dir, payment_mode="withheld")
    assert second.control("GET", "state") == before
    new_auth = {"Authorization": f"Bearer {new_key['apiKey']}"}
    for headers in (auth, new_auth):
        beat = httpx.get(second.base_url + "/v1/agent/heartbeat", headers=headers)
        assert beat.json()["budgetBalance"] == 90
    assert httpx.get(second.base_url + "/health").status_code == 503  # the fault survived
    assert httpx.post(second.base_url + "/v1/agents/register",
                      json={**reg, "name": "Third"}).json()["error"]["code"] == "POW_REPLAYED"
    assert httpx.get(second.base_url + "/skill/1/SKILL.md").text == "hello"
    assert second.control("GET", "clock")["offsetSeconds"] == 120
    assert len(second.control("GET", "state")["ledgerIntents"]) == 2


def test_refuses_non_loopback_without_allow_remote(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="non-loopback"):
        SandboxServer(SandboxConfig(), tmp_path / "s", host="0.0.0.0")
    with pytest.raises(ConfigError, match="non-loopback"):
        SandboxServer(SandboxConfig(), tmp_path / "s", host="192.168.1.10")


def test_unusable_state_is_a_config_error(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "state.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a schema"):
        SandboxServer(SandboxConfig(), folder)
    with pytest.raises(ConfigError):
        SandboxConfig.build(payment_mode="barter")
    with pytest.raises(ConfigError, match="unknown"):
        SandboxConfig.build(nope=1)


def serve(*args: str, state_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "sandbox", "serve", "--state-dir",
         str(state_dir), "--pow-memory-kib", "64", "--pow-difficulty", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def test_serve_prints_the_url_first_and_stops_cleanly(tmp_path: Path) -> None:
    proc = serve(state_dir=tmp_path / "s")
    try:
        url = first_line(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/api")
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        made = httpx.post(url.removesuffix("/api") + "/_sandbox/agents", json={}).json()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert made["apiKey"] not in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigkill_then_restart_keeps_the_agent(tmp_path: Path) -> None:
    proc = serve(state_dir=tmp_path / "s")
    try:
        url = first_line(proc)
        made = httpx.post(url.removesuffix("/api") + "/_sandbox/agents", json={}).json()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=20)
    again = serve(state_dir=tmp_path / "s")
    try:
        url = first_line(again)
        auth = {"Authorization": f"Bearer {made['apiKey']}"}
        assert httpx.get(url + "/v1/agent/heartbeat", headers=auth).json()["agentId"] == \
            made["agentId"]
    finally:
        again.send_signal(signal.SIGINT)
        again.communicate(timeout=20)
    assert again.returncode == 0


def test_serve_refuses_a_remote_host_with_one_line(tmp_path: Path) -> None:
    proc = serve("--host", "0.0.0.0", state_dir=tmp_path / "s")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 78
    assert out == "" and err.count("\n") == 1 and "--allow-remote" in err
    assert "Traceback" not in err


def test_one_sandbox_per_state_folder(sandbox_factory: SandboxFactory) -> None:
    first = sandbox_factory()
    with pytest.raises(LockBusy):
        sandbox_factory(state_dir=first.state_dir)
    first.stop()
    second = sandbox_factory(state_dir=first.state_dir)
    assert httpx.get(second.base_url + "/health").status_code == 200


def test_a_stalled_client_is_dropped(sandbox_factory: SandboxFactory) -> None:
    import socket
    import time

    sb = sandbox_factory(idle_timeout_seconds=0.3)
    with socket.create_connection(("127.0.0.1", sb.port), timeout=5) as conn:
        conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # never finishes
        start = time.monotonic()
        assert conn.recv(1024) == b""  # the server closed it
        assert time.monotonic() - start < 3
    assert httpx.get(sb.base_url + "/health").status_code == 200
