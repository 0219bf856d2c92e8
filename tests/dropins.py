"""Shared by the drop-in tests: one sandbox per module, and running a drop-in script as a
real process with the test's isolated HOME (the ``isolated_home`` fixture sets it)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer
from tests.fixtures_sandbox import FAST

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\] (.*)$")


def module_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """A sandbox shared by a module's tests (each test makes its own agent)."""
    server = SandboxServer(SandboxConfig.build(**FAST),
                           tmp_path_factory.mktemp("dropin-sandbox") / "state",
                           host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run(script: str | Path, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``scripts/<script> ARGS`` (or the script at a path) with this process's environment
    plus ``env``."""
    proc = subprocess.run([str(SCRIPTS / script), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def closed_port_url() -> str:
    """An API URL on loopback where nothing listens (a platform that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"
