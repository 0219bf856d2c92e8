"""``scripts/install`` behaves as the original install.sh by default.

Facts from /work/shared/original-interfaces.md (install.sh): it creates ``~/.impromptu``,
prints the banner, the three numbered steps (folder, keys found or not, scheduling advice
with the crontab line for the heartbeat every 30 minutes) and "Setup Complete!", installs
no schedule, downloads nothing, and exits 0 - also on a machine without a crontab. Writing a
schedule needs an explicit ``--scheduler`` (then ``impromptu-ops install`` runs).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.dropins import REPO, run

HEARTBEAT = REPO / "scripts" / "heartbeat"


def fake_crontab(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose ``crontab`` records any call (the drop-in must make none)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "crontab-calls"
    tool = bin_dir / "crontab"
    tool.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexit 1\n')
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, calls


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_default_is_install_sh(isolated_home: Path, tmp_path: Path) -> None:
    env, calls = fake_crontab(tmp_path)
    proc = run("install", env)
    out = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    folder = isolated_home / ".impromptu"
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert "  Impromptu Agent Setup" in out
    i = out.index("[1/3] Setting up configuration directory...")
    assert out[i + 1] == f"  ✓ Directory ready: {folder}"
    j = out.index("[2/3] Checking API configuration...")
    assert out[j + 1:j + 4] == [
        "  ! IMPROMPTU_API_KEY not set",
        "    Get your key at: https://impromptusocial.ai/agents/setup",
        "    Then store it: impromptu-ops secrets put impromptu-api-key"]
    assert "  ! OPENROUTER_API_KEY not set (optional for LLM inference)" in out
    k = out.index("[3/3] Scheduling setup...")
    assert out[k + 1] in ("Platform: macOS", "Platform: Linux (systemd)",
                          "Platform: Generic Unix")
    assert f"  Add: */30 * * * * {HEARTBEAT}" in out[k:]
    assert "  Setup Complete!" in out[k:]
    # it installs no schedule: no crontab call, nothing but ~/.impromptu in HOME
    assert not calls.exists()
    assert files_under(isolated_home) == {Path(".impromptu")}
    assert proc.stderr == ""


def test_keys_found_the_old_way_and_in_the_store(isolated_home: Path) -> None:
    from impromptu_ops.secret import Secret
    from impromptu_ops.settings import load_settings
    from impromptu_ops.store.factory import open_store

    open_store(load_settings()).write("openrouter-api-key",
                                      {"value": Secret("sk-or-v1-" + "b" * 64)}, cas=0)
    key = "impr_sk_" + "k" * 40
    proc = run("install", {"IMPROMPTU_API_KEY": key})
    out = proc.stdout.splitlines()
    assert proc.returncode == 0
    assert "  ✓ IMPROMPTU_API_KEY found in environment" in out
    assert "  ✓ OPENROUTER_API_KEY found in the secret store" in out
    assert "secrets import --from-env" in proc.stderr
    assert key not in proc.stdout + proc.stderr


def test_an_existing_folder_is_reused(isolated_home: Path) -> None:
    folder = isolated_home / ".impromptu"
    folder.mkdir(mode=0o700)
    (folder / "heartbeat.log").write_text("kept\n")
    proc = run("install")
    assert proc.returncode == 0
    assert (folder / "heartbeat.log").read_text() == "kept\n"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # never loosened


def test_arguments_without_a_scheduler_are_refused() -> None:
    proc = run("install", args=("--dry-run",))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "needs --scheduler" in proc.stderr
    helped = run("install", args=("--help",))
    assert helped.returncode == 0 and "--scheduler systemd|cron|launchd" in helped.stdout


def test_a_schedule_needs_an_explicit_scheduler(isolated_home: Path) -> None:
    proc = run("install", args=("--scheduler", "cron", "--dry-run"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "# impromptu-heartbeat" in proc.stdout and "dry run: nothing was changed" in proc.stdout
