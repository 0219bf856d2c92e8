"""The CLI's single error path: one redacted line, the right exit code, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from impromptu_ops.cli.main import run


def impromptu(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "impromptu_ops.cli", *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60,
        check=False,
    )


def test_bad_config_is_one_line_exit_78(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[platform]\npath_prefix = 'nope'\n")
    proc = impromptu("--config", str(cfg), "config", "show")
    assert proc.returncode == 78
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "path_prefix" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_show_masks_vault_token(tmp_path: Path) -> None:
    token = "hvs." + "S" * 40
    proc = impromptu("config", "show", env={"VAULT_ADDR": "http://127.0.0.1:1",
                                             "VAULT_TOKEN": token})
    assert proc.returncode == 0, proc.stderr
    assert token not in proc.stdout + proc.stderr
    assert "store.vault_token" in proc.stdout


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["no-such-command"]) == 2
    assert run(["config", "show", "--bogus"]) == 2


def test_version() -> None:
    proc = impromptu("--version")
    assert proc.returncode == 0 and "impromptu-ops" in proc.stdout
