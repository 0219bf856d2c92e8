"""Registration test helpers: run the CLI against a sandbox and look into the store.

:class:`Registrar` points the CLI (through env vars, as an operator would) at one sandbox
with a fast PoW calibration, runs ``impromptu-ops`` in-process (:meth:`run`) or as a real
subprocess (:meth:`spawn`, for SIGKILL tests), and reads back what landed in the store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.factory import open_store

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one error line; fails unless there is exactly one and it is the last line."""
        lines = [line for line in self.err.splitlines() if line.startswith("impromptu-ops:")]
        assert len(lines) == 1 and self.err.splitlines()[-1] == lines[0], self.err
        assert "Traceback" not in self.err
        return lines[0]


@dataclass
class Registrar:
    sandbox: SandboxServer
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.setenv(IMPROMPTU_API_URL=self.sandbox.base_url,
                    IMPROMPTU_POW_CALIBRATION_SECONDS="0.02",
                    IMPROMPTU_PLATFORM_DEADLINE="10")

    def setenv(self, **values: str) -> None:
        for key, value in values.items():
            self.env[key] = value
            self.monkeypatch.setenv(key, value)

    def run(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = run(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def spawn(self, *args: str, extra_env: Mapping[str, str] | None = None
              ) -> subprocess.Popen[str]:
        env = {**os.environ, **self.env, **(extra_env or {})}
        return subprocess.Popen([sys.executable, "-m", "impromptu_ops.cli", *args], env=env,
                                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def settings(self) -> Settings:
        return load_settings()

    def store(self) -> SecretStore:
        return open_store(self.settings())

    def stored(self, name: str = "impromptu-api-key") -> Secret:
        return self.store().read(name).data["value"]

    def client(self, key: Secret | None = None) -> PlatformClient:
        return PlatformClient(self.settings().platform, key or self.stored())

    def journal_step(self) -> str | None:
        import json

        path = self.settings().paths.state_dir / "registration.json"
        return str(json.loads(path.read_text())["step"]) if path.exists() else None
