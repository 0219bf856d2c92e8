"""Persistence across restarts (clean and SIGKILL) and the ``sandbox serve`` command."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.errors import ConfigError, LockBusy
from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer, is_loopback
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


def test_restart_of_a_real_serve_process_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL a real ``sandbox serve`` mid-life; the next one answers exactly as before.

    Covers what an operator's scripts rely on: agents, keys (issued and revoked), budgets
    and the daily quota, the terms (accepted and still pending), published skill versions
    (latest and not), BYOK credentials, OpenRouter keys, notifications, spent PoW chains,
    the clock offset and fault rules.
    """
    state_dir = tmp_path / "s"
    proc = serve(state_dir=state_dir)
    try:
        url = first_line(proc)
        root = url.removesuffix("/api")
        with httpx.Client(base_url=url, timeout=30) as http:
            sample = http.get("/v1/agent/discover/sample").json()  # no state change
            # agent A: registered with PoW, terms accepted afterwards
            reg = {"name": "Alpha", "acceptTos": False, "capabilities": ["chat"]}
            assert http.post("/v1/agents/register", json=reg).status_code == 428
            chal = http.post("/v1/agents/register/challenge").json()
            proof = {"chainId": chal["chainId"], "nonces": solve(chal)}
            alpha = http.post("/v1/agents/register", json={**reg, "pow": proof}).json()
            first_key = {"Authorization": f"Bearer {alpha['apiKey']}"}
            assert alpha["status"] == "PENDING"
            assert http.post("/v1/agent/accept-tos", headers=first_key).status_code == 200
            # agent B: never accepts the terms
            chal_b = http.post("/v1/agents/register/challenge").json()
            beta = http.post("/v1/agents/register", json={
                "name": "Beta", "acceptTos": False,
                "pow": {"chainId": chal_b["chainId"], "nonces": solve(chal_b)}}).json()
            # rotation: a second key, then the first one revoked
            second = http.post("/v1/agent/keys", headers=first_key).json()
            second_key = {"Authorization": f"Bearer {second['apiKey']}"}
            assert http.delete(f"/v1/agent/keys/{alpha_key_id(http, second_key, second)}",
                               headers=second_key).status_code == 200
            # budget spent, a credential, a notification
            assert http.post("/v1/agent/prompt", headers=second_key, json={
                "content": "c", "initialPrompt": "p"}).status_code == 201
            assert http.put("/v1/agent/credentials", headers=second_key, json={
                "provider": "fal", "apiKey": "fal-" + "k" * 20}).status_code == 201
            quota = http.get("/v1/agent/budget", headers=second_key)
            remaining = int(quota.headers["X-RateLimit-Remaining"])
            assert quota.json()["balance"] == 90
            http.post(f"{root}/_sandbox/agents/{alpha['agentId']}/notifications",
                      json={"type": "mention", "message": "hi"})
            # skill versions: 1.0 then 2.0 latest, 3.0-rc published without moving latest
            for version, latest in (("1.0", True), ("2.0", True), ("3.0-rc", False)):
                assert http.post(f"{root}/_sandbox/skill/publish", json={
                    "version": version, "latest": latest,
                    "files": [{"path": "SKILL.md", "content": f"v{version}"}]}
                ).status_code == 201
            # OpenRouter, clock, a fault rule that never fires
            prov = http.post(f"{root}/_sandbox/openrouter/provisioning-key").json()["key"]
            orkey = http.post(f"{root}/openrouter/api/v1/keys", json={"name": "a"},
                              headers={"Authorization": f"Bearer {prov}"}).json()["key"]
            http.post(f"{root}/_sandbox/clock", json={"offsetSeconds": 90})
            http.post(f"{root}/_sandbox/faults", json={"path": "^/never$", "kind": "drop",
                                                       "times": None})
            before = http.get(f"{root}/_sandbox/state").json()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no clean shutdown: every answer was persisted
        proc.communicate(timeout=20)

    again = serve(state_dir=state_dir)
    try:
        url = first_line(again)
        root = url.removesuffix("/api")
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get(f"{root}/_sandbox/state").json() == before
            revoked = http.get("/v1/agent/heartbeat", headers=first_key)
            assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
            beat = http.get("/v1/agent/heartbeat", headers=second_key).json()
            assert (beat["agentId"], beat["budgetBalance"], beat["unreadNotifications"]) == \
                (alpha["agentId"], 90, 1)
            keys = http.get("/v1/agent/keys", headers=second_key).json()["keys"]
            assert sorted(k["status"] for k in keys) == ["active", "revoked"]
            quota = http.get("/v1/agent/budget", headers=second_key)
            # the daily count went on: the keys listing and this call used one each
            assert int(quota.headers["X-RateLimit-Remaining"]) == remaining - 2
            assert http.get("/v1/agent/profile", headers=second_key).json()["status"] == \
                "ACTIVE"
            beta_key = {"Authorization": f"Bearer {beta['apiKey']}"}
            pending = http.get("/v1/agent/budget", headers=beta_key)
            assert pending.json()["error"]["code"] == "ACCOUNT_NOT_ACTIVE"
            creds = http.get("/v1/agent/credentials", headers=second_key).json()
            assert [c["provider"] for c in creds["credentials"]] == ["fal"]
            assert http.get("/impromptu.skill.json").json()["version"] == "2.0"
            for version in ("1.0", "2.0", "3.0-rc"):
                assert http.get(f"/skill/{version}/SKILL.md").text == f"v{version}"
            replay = http.post("/v1/agents/register", json={**reg, "name": "Gamma",
                                                            "pow": proof})
            assert replay.json()["error"]["code"] == "POW_REPLAYED"
            for item in sample["items"]:  # ids answered before any state change
                assert http.get(f"/v1/agent/content/{item['nodeId']}/thread",
                                headers=second_key).status_code == 200
            assert http.get(f"{root}/_sandbox/clock").json()["offsetSeconds"] == 90
            assert http.get(f"{root}/openrouter/api/v1/key",
                            headers={"Authorization": f"Bearer {orkey}"}).status_code == 200
            assert len(http.get(f"{root}/_sandbox/faults").json()["faults"]) == 1
    finally:
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=20)
    assert again.returncode == 0, err
    state_text = (state_dir / "state.json").read_text()
    for secret in (alpha["apiKey"], second["apiKey"], beta["apiKey"], orkey, prov):
        assert secret not in state_text
    # written the atomic way: private modes, no temp file left behind
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    files = [p for p in state_dir.rglob("*") if p.is_file() and p.name != ".lock"]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert not [p for p in files if p.name.endswith(".tmp")]


def alpha_key_id(http: httpx.Client, auth: dict[str, str], new: dict[str, Any]) -> str:
    """The id of the agent's other (first) key."""
    keys = http.get("/v1/agent/keys", headers=auth).json()["keys"]
    return str(next(k["id"] for k in keys if k["id"] != new["id"]))


@pytest.mark.parametrize("member, value", [("agents", [1]), ("faults", {}),
                                           ("clockOffset", "soon"), ("skill", None)])
def test_a_state_member_of_the_wrong_type_is_refused(tmp_path: Path, member: str,
                                                     value: Any) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "state.json").write_text(json.dumps({"schema": 1, member: value}))
    with pytest.raises(ConfigError, match=member):
        SandboxServer(SandboxConfig(), folder)


def test_serve_flags_shape_the_platform(tmp_path: Path) -> None:
    proc = serve("--pow-iterations", "2", "--pow-rounds", "3", "--payment", "upfront",
                 "--registration-fee", "5", "--no-key-management", state_dir=tmp_path / "s")
    try:
        url = first_line(proc)
        with httpx.Client(base_url=url, timeout=30) as http:
            chal = http.post("/v1/agents/register/challenge").json()
            assert chal["params"] == {"memoryKiB": 64, "iterations": 2, "parallelism": 1,
                                      "hashLength": 32}
            assert [r["difficulty"] for r in chal["rounds"]] == [1, 1, 1]
            need = http.post("/v1/agents/register", json={
                "name": "Flags", "acceptTos": True,
                "pow": {"chainId": chal["chainId"], "nonces": solve(chal)}})
            assert need.status_code == 402 and need.json()["payment"]["amount"] == "5"
            made = http.post(url.removesuffix("/api") + "/_sandbox/agents", json={}).json()
            keys = http.get("/v1/agent/keys",
                            headers={"Authorization": f"Bearer {made['apiKey']}"})
            assert keys.status_code == 404  # a platform without key rotation
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("localhost", True), ("::1", True),
    ("[::1]", True), ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False),
    ("example.com", False), ("localhost.example.com", False), ("127.0.0.1.nip.io", False),
    ("::ffff:10.0.0.1", False),
])
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_allow_remote_lifts_only_the_loopback_gate(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the bind itself fails, so this test
    # shows that --allow-remote passes the gate without ever serving off loopback.
    proc = serve("--host", "192.0.2.1", "--allow-remote", state_dir=tmp_path / "s")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 78 and out == ""
    assert "cannot listen on 192.0.2.1" in err and err.count("\n") == 1
