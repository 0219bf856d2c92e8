"""Private: The original skill scripts' interfaces, kept for the drop-ins in ``scripts/``.

``impromptu-health.sh``, ``heartbeat.sh`` and ``install.sh`` printed fixed lines that cron
lines, monitors and runbooks depend on (``/work/shared/original-interfaces.md`` lists every
one). This package reproduces those lines on top of the new core:

- :mod:`.keys`       a key from the store, else (the old way) from the environment, with a
  hint to move it into the store;
- :mod:`.health`     the checks of ``impromptu-health.sh`` and their sections, exit 0/2/1;
- :mod:`.heartbeat`  a :class:`~impromptu_ops.jobs.heartbeat.HeartbeatReport` rendered as
  ``heartbeat.sh``'s timestamped lines, appended to ``~/.impromptu/heartbeat.log``;
- :mod:`.install`    ``install.sh``'s folder and advice (it installs nothing).

The native commands (``impromptu-ops health``, ``heartbeat``, ``install``) keep their own
formats; only the drop-ins reach this package, through the hidden ``impromptu-ops legacy``
group. Nothing here prints: the CLI writes what these modules return.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

LEGACY_DIR_NAME: Final = ".impromptu"  # the original scripts' folder, under $HOME
MANIFEST_FILE: Final = "impromptu.skill.json"  # the skill manifest the original cached there
HEARTBEAT_LOG: Final = "heartbeat.log"
SETUP_URL: Final = "https://impromptusocial.ai/agents/setup"  # advice URLs the originals print
NOTIFICATIONS_URL: Final = "https://impromptusocial.ai/notifications"


def legacy_dir(home: Path) -> Path:
    """``~/.impromptu`` for the given home folder."""
    return home / LEGACY_DIR_NAME


def shown(value: object, default: str = "unknown", limit: int = 300) -> str:
    """A remote value as the originals' ``jq -r`` showed it (``default`` for null or
    missing), made safe for a terminal and a log line: control characters become spaces and
    a long text is cut at ``limit`` characters."""
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    text = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return text[:limit] + ("…" if len(text) > limit else "")
