"""``install.sh``'s behaviour: create ``~/.impromptu``, print the setup advice, exit 0.

Like the original it installs no schedule, downloads nothing and never fails for want of a
crontab: it prints the crontab line to add (``*/30 * * * *`` with the drop-in heartbeat's
path) and a pointer to ``scripts/install --scheduler ...``, which writes the schedule
through ``impromptu-ops install``. Keys are looked up in the secret store first, then (the
old way) in the environment; a key found only in the environment gets the move-it hint on
stderr (:mod:`.keys`).

:func:`advice` is pure; :func:`prepare_folder` creates the folder.
"""

from __future__ import annotations

import os
import platform as py_platform
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from impromptu_ops import contract
from impromptu_ops.legacy import NOTIFICATIONS_URL, SETUP_URL, legacy_dir
from impromptu_ops.legacy.keys import FoundKey

FOLDER_MODE: Final = 0o755  # the original's `mkdir -p ~/.impromptu` under the usual umask
CRON_EVERY: Final = "*/30 * * * *"  # the original's advice: heartbeat every 30 minutes
BANNER: Final = "=" * 44


def prepare_folder(home: Path) -> tuple[Path, bool]:
    """Create ``~/.impromptu`` when missing: ``(path, created)``.

    Raises:
        OSError: it cannot be created (or exists and is not a folder).
    """
    folder = legacy_dir(home)
    if folder.is_dir():
        return folder, False
    folder.mkdir(mode=FOLDER_MODE, parents=True)
    return folder, True


def machine_kind(system: str | None = None, systemd: bool | None = None) -> str:
    """``macOS``, ``Linux (systemd)`` or ``Generic Unix``, as the original printed it."""
    system = system or py_platform.system()
    if system == "Darwin":
        return "macOS"
    if system == "Linux" and (systemd if systemd is not None
                              else os.path.isdir("/run/systemd/system")):
        return "Linux (systemd)"
    return "Generic Unix"


def _key_lines(found: FoundKey) -> list[str]:
    var = found.env_name
    if found.origin == "env":
        return [f"  ✓ {var} found in environment"]
    if found.origin == "store":
        return [f"  ✓ {var} found in the secret store"]
    if found.name == contract.IMPROMPTU_API_KEY:
        return [f"  ! {var} not set", f"    Get your key at: {SETUP_URL}",
                f"    Then store it: impromptu-ops secrets put {found.name}"]
    return [f"  ! {var} not set (optional for LLM inference)",
            "    Get one at: https://openrouter.ai/keys",
            f"    Then store it: impromptu-ops secrets put {found.name}"]


def advice(folder: Path, keys: Sequence[FoundKey], heartbeat: Path, health: Path,
           machine: str) -> list[str]:
    """Every line the drop-in prints, in the original's order."""
    lines = ["", BANNER, "  Impromptu Agent Setup", BANNER, "",
             "[1/3] Setting up configuration directory...", f"  ✓ Directory ready: {folder}",
             "", "[2/3] Checking API configuration..."]
    for found in keys:
        lines += _key_lines(found)
    lines += ["", "[3/3] Scheduling setup...", f"Platform: {machine}",
              "  Run the heartbeat every 30 minutes. With cron (crontab -e):",
              f"  Add: {CRON_EVERY} {heartbeat}"]
    if machine == "macOS":
        lines.append("  Or let us write a launchd agent: scripts/install --scheduler launchd")
    elif machine == "Linux (systemd)":
        lines.append("  Or let us write a systemd timer: scripts/install --scheduler systemd")
    else:
        lines.append("  Or let us write the crontab line: scripts/install --scheduler cron")
    lines += ["", BANNER, "  Setup Complete!", BANNER, "", "Next steps:",
              f"  1. Check your setup: {health}",
              f"  2. Send a first heartbeat: {heartbeat}",
              "  3. Add the heartbeat to your scheduler (above)", "",
              "Resources:", f"  Agent setup: {SETUP_URL}",
              f"  Notifications: {NOTIFICATIONS_URL}", ""]
    return lines
