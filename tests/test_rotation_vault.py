"""Rotating the jobs' own AppRole secret_id on a real OpenBao, through the CLI.

The store is the Vault backend on the same server; the rotation job holds a token allowed
to manage the role's secret_ids. After rotation: the store and the jobs' secret_id file
hold the new secret_id, it logs in, the old one does not, and the role has exactly one
secret_id left (none orphaned), also after a SIGKILL at the nastiest boundaries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_vault import BaoServer

NAME = "vault-secret-id"


class AppRoleBench:
    def __init__(self, bao: BaoServer, agent: str, folder: Path) -> None:
        self.bao = bao
        self.role_id, self.file = bao.approle("rotation", agent, folder)
        self.role = self.file.name.removeprefix("secret-id-")
        home = folder / "home"
        self.env = {**bao.env(), "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
                    "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "d"),
                    "IMPROMPTU_STORE_BACKEND": "vault", "IMPROMPTU_STORE_AGENT": agent,
                    "IMPROMPTU_ROTATION_APPROLE_ROLE": self.role,
                    "IMPROMPTU_STORE_VAULT_SECRET_ID_FILE": str(self.file)}
        self.env = {k: v for k, v in self.env.items() if not k.startswith("IMPROMPTU_TEST")}
        settings = load_settings(env=self.env, config_file=home / "none.toml")
        self.store = open_store(settings)
        initial = self.file.read_text().strip()
        self.store.write(NAME, {"value": Secret(initial, NAME)}, cas=0)
        self.initial = initial

    def cli(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if crash_at:
            env["IMPROMPTU_TEST_CRASH_AT"] = crash_at
        return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args],
                              capture_output=True, text=True, env=env, timeout=120,
                              check=False)

    def current(self) -> str:
        return self.store.read(NAME).value("value").reveal()

    def logs_in(self, secret_id: str) -> bool:
        resp = httpx.post(f"{self.bao.addr}/v1/auth/approle/login",
                          json={"role_id": self.role_id, "secret_id": secret_id}, timeout=10)
        return resp.status_code == 200

    def accessors(self) -> list[Any]:
        resp = httpx.request("LIST", f"{self.bao.addr}/v1/auth/approle/role/{self.role}/secret-id",
                             headers={"X-Vault-Token": self.bao.root_token}, timeout=10)
        if resp.status_code == 404:
            return []
        keys: list[Any] = resp.json()["data"]["keys"]
        return keys

    def assert_rotated(self) -> None:
        current = self.current()
        assert current != self.initial
        assert self.logs_in(current) and not self.logs_in(self.initial)
        assert self.file.read_text().strip() == current
        assert os.stat(self.file).st_mode & 0o077 == 0
        assert len(self.accessors()) == 1


@pytest.fixture
def approle(bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> AppRoleBench:
    return AppRoleBench(bao_server, unique_agent, tmp_path)


def test_rotate_secret_id(approle: AppRoleBench) -> None:
    proc = approle.cli("rotate", "vault-secret-id", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    approle.assert_rotated()
    assert approle.current() not in proc.stdout + proc.stderr


@pytest.mark.parametrize("boundary", ["created", "activated", "canonical-written"])
def test_secret_id_sigkill_then_resume(approle: AppRoleBench, boundary: str) -> None:
    killed = approle.cli("rotate", "vault-secret-id", "--grace", "0", crash_at=boundary)
    assert killed.returncode == -9, killed.stderr
    # whatever instant it died at, the file the jobs log in with still works
    assert approle.logs_in(approle.file.read_text().strip())
    resumed = approle.cli("rotate", "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    approle.assert_rotated()


def test_secret_id_needs_role_name(approle: AppRoleBench) -> None:
    approle.env.pop("IMPROMPTU_ROTATION_APPROLE_ROLE")
    proc = approle.cli("rotate", "vault-secret-id")
    assert proc.returncode == 1 and "role name" in proc.stderr
    assert approle.current() == approle.initial
