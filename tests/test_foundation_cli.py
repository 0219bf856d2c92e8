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


# rotate keeps 2 for "page someone", so its usage errors are EX_USAGE (64); health and
# earnings speak Nagios, where a usage error is UNKNOWN (3).
@pytest.mark.parametrize(("argv", "code", "where", "what"), [
    (["no-such-command"], 2, "impromptu-ops", "no-such-command"),
    (["config", "show", "--bogus"], 2, "impromptu-ops config show", "--bogus"),
    (["secrets", "put"], 2, "impromptu-ops secrets put", "NAME"),
    (["rotate", "impromptu", "--grace", "soon"], 64, "impromptu-ops rotate impromptu", "soon"),
    (["health", "--format", "xml"], 3, "impromptu-ops health", "xml"),
])
def test_usage_error_is_one_line(argv: list[str], code: int, where: str, what: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    got = run(argv)
    captured = capsys.readouterr()
    assert got == code and captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"{where}: ") and what in captured.err
    assert captured.err.rstrip().endswith(f"(see '{where} --help')")


def test_version() -> None:
    proc = impromptu("--version")
    assert proc.returncode == 0 and "impromptu-ops" in proc.stdout


def test_sigterm_is_one_line_and_exit_143(tmp_path: Path) -> None:
    # `secrets put` waits for stdin; a scheduler's timeout sends SIGTERM meanwhile.
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "impromptu_ops.cli", "secrets", "put",
                             "impromptu-api-key"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.0)  # past start-up, blocked reading the value
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    lines = [line for line in err.decode().splitlines() if line]  # click ends the prompt line
    assert out == b"" and lines == ["impromptu-ops: terminated (SIGTERM)"]
