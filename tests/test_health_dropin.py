"""The drop-in ``scripts/impromptu-health`` gives the same verdict and exit code as the
original impromptu-health.sh (reconstructed in bench/original/) in the four cases runbooks
rely on: healthy, missing platform key, platform down, unread notifications."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_jobs import Agent, make_agent

REPO = Path(__file__).resolve().parents[1]
ORIGINAL = REPO / "bench" / "original" / "impromptu-health.sh"
DROPIN = REPO / "scripts" / "impromptu-health"


def _run(script: Path, env: dict[str, str]) -> tuple[int, list[str]]:
    assert shutil.which("curl") and shutil.which("jq"), "the original script needs curl and jq"
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env}, check=False)
    assert "Traceback" not in proc.stderr
    return proc.returncode, proc.stdout.splitlines()


def both(original_env: dict[str, str], env: dict[str, str] | None = None
         ) -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
    return _run(ORIGINAL, original_env), _run(DROPIN, env or {})


def _verdict(lines: list[str]) -> str:
    return lines[-1]


def _first_problem(lines: list[str]) -> str:
    bad = [ln for ln in lines if ln.startswith(("[WARN]", "[FAIL]"))]
    return bad[0].split(":")[0] if bad else ""


def test_healthy(agent: Agent) -> None:
    (code_o, out_o), (code_n, out_n) = both({"IMPROMPTU_API_KEY": agent.api_key})
    assert code_o == code_n == 0
    assert _verdict(out_o) == _verdict(out_n) == "Status: healthy"
    assert [ln.split(":")[0] for ln in out_n[:-1]] == [
        "[OK] platform", "[OK] platform_key", "[OK] notifications"]


def test_unread_notifications(agent: Agent) -> None:
    agent.notify("the message says error, which fooled the original's grep")
    agent.notify("second")
    (code_o, out_o), (code_n, out_n) = both({"IMPROMPTU_API_KEY": agent.api_key})
    assert code_n == 2 and _verdict(out_n) == "Status: degraded"
    assert "[WARN] notifications: 2 unread" in out_n
    # The original greps the heartbeat body for "error"; the heartbeat carries no message
    # text, so here it agrees with us.
    assert code_o == 2 and _verdict(out_o) == "Status: degraded"
    assert _first_problem(out_o) == _first_problem(out_n) == "[WARN] notifications"


def test_missing_platform_key(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_agent(sandbox, monkeypatch, store_platform_key=False)
    (code_o, out_o), (code_n, out_n) = both({"IMPROMPTU_API_KEY": ""})
    assert code_o == code_n == 1
    assert _verdict(out_o) == _verdict(out_n) == "Status: unhealthy"
    assert _first_problem(out_o) == _first_problem(out_n) == "[FAIL] platform_key"
    # the lines that depend on the key say why in words, not with an exception's class name
    assert any(line.endswith("(no platform key in the store)") for line in out_n), out_n


def test_platform_down(agent: Agent) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = {"IMPROMPTU_API_URL": f"http://127.0.0.1:{port}/api"}
    (code_o, out_o), (code_n, out_n) = both({**down, "IMPROMPTU_API_KEY": agent.api_key}, down)
    assert code_o == code_n == 1
    assert _verdict(out_o) == _verdict(out_n) == "Status: unhealthy"
    assert _first_problem(out_o) == _first_problem(out_n) == "[FAIL] platform"


def test_dropin_never_needs_the_key_in_the_environment(agent: Agent) -> None:
    code, out = _run(DROPIN, {"IMPROMPTU_API_KEY": ""})
    assert code == 0 and agent.api_key not in "\n".join(out)
