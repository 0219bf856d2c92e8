"""``impromptu-ops api status`` against the sandbox: reachability, key validity, no secrets."""

from __future__ import annotations

import json
import re

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store


def store_key(value: str) -> None:
    open_store(load_settings()).write("impromptu-api-key", {"value": Secret(value)}, cas=None)


@pytest.fixture
def api_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    monkeypatch.setenv("IMPROMPTU_API_URL", sandbox.base_url)
    return sandbox


def test_status_without_a_key(api_env: SandboxServer,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["api", "status"]) == 0
    got = capsys.readouterr()
    assert "none stored" in got.out and "ok" in got.out and got.err == ""


def test_status_with_a_stored_key_shows_the_agent_not_the_key(
        api_env: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    agent = api_env.control("POST", "/agents", {"name": "cli-agent"})
    store_key(agent["apiKey"])
    assert run(["api", "status", "--json"]) == 0
    got = capsys.readouterr()
    doc = json.loads(got.out)
    assert doc["heartbeat"]["agentId"] == agent["agentId"] and doc["keyStored"] is True
    assert doc["health"] == "ok" and doc["errors"] == []
    assert agent["apiKey"] not in got.out + got.err
    assert run(["api", "status", "--prefix", "legacy"]) == 0
    text = capsys.readouterr().out
    assert agent["agentId"] in text and "prefix legacy" in text
    assert re.search(r"^budget +100$", text, re.M) and "0 base units" in text
    assert agent["apiKey"] not in text


def test_status_with_a_revoked_key_exits_77(api_env: SandboxServer,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    store_key("impr_sk_" + "Q" * 40)
    assert run(["api", "status"]) == 77
    got = capsys.readouterr()
    assert got.err.count("\n") == 1 and "UNAUTHORIZED" in got.err
    assert "Q" * 40 not in got.out + got.err and "Traceback" not in got.err


def test_status_unreachable_is_one_line_exit_69(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMPROMPTU_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("IMPROMPTU_PLATFORM_DEADLINE", "1")
    monkeypatch.setenv("IMPROMPTU_PLATFORM_BACKOFF_BASE", "0.05")
    assert run(["api", "status"]) == 69
    got = capsys.readouterr()
    assert "health: " in got.err and "cannot connect" in got.err
    assert got.err.count("\n") == 1 and "Traceback" not in got.err
