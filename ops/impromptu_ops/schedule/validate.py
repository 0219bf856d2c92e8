"""Check generated schedules before they are written.

systemd units go through ``systemd-analyze verify`` when it is installed (it parses the
units the way the manager will, checks the executable, and names unknown keys); the
structural checks here run always, so a machine without systemd still refuses a unit that
lacks what the design requires (``SuccessExitStatus=75``, ``Persistent=true``,
``LoadCredential`` instead of ``EnvironmentFile``, a CronJob whose skipped runs succeed...).
``verify`` runs against the system manager even for user units: ``--user`` needs a
running user manager, and the syntax is the same.
"""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from impromptu_ops.errors import ConfigError

_REQUIRED_SERVICE = ("Type=oneshot", "SuccessExitStatus=75", "NoNewPrivileges=yes")
_REQUIRED_TIMER = ("Persistent=true", "FixedRandomDelay=true")
_CRON_FIELD = re.compile(r"^(\*|\d{1,2}(,\d{1,2})*)(/\d+)?$")


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as ``{section: [(key, value)...]}``; raise ConfigError on bad lines."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        key, sep, value = line.partition("=")
        if current is None or not sep or not re.match(r"^[A-Za-z][A-Za-z0-9]*$", key):
            raise ConfigError(f"generated unit line {n} is not 'Key=value' inside a section")
        sections[current].append((key, value))
    return sections


def structural_problems(files: Mapping[str, bytes]) -> list[str]:
    """What is wrong with the generated files, by design rules (empty when fine)."""
    problems: list[str] = []
    for name, data in files.items():
        text = data.decode("utf-8", "replace")
        if name.endswith((".service", ".timer")):
            try:
                sections = parse_unit(text)
            except ConfigError as exc:
                problems.append(f"{name}: {exc.message}")
                continue
            keys = {f"{k}={v}" for body in sections.values() for k, v in body}
            required = _REQUIRED_SERVICE if name.endswith(".service") else _REQUIRED_TIMER
            problems += [f"{name}: missing {r}" for r in required if r not in keys]
            if any(k.startswith("EnvironmentFile=") for k in keys):
                problems.append(f"{name}: uses EnvironmentFile (secrets must not be in env)")
            if name.endswith(".service") and not any(
                    k.startswith("TimeoutStartSec=") for k in keys):
                problems.append(f"{name}: missing TimeoutStartSec")
        elif name == "crontab":
            for line in text.splitlines():
                fields = line.split()
                if len(fields) < 6 or not all(_CRON_FIELD.match(f) for f in fields[:5]):
                    problems.append("crontab: the time fields are not valid")
                if re.search(r"(?<!\\)%", line):
                    problems.append("crontab: unescaped % (cron turns it into a newline)")
                if "flock -n" not in line:
                    problems.append("crontab: the line does not take the lock")
        elif name.endswith(".plist"):
            try:
                doc = plistlib.loads(data)
            except (plistlib.InvalidFileException, ValueError) as exc:
                problems.append(f"{name}: not a valid plist ({exc})")
                continue
            for key in ("Label", "ProgramArguments"):
                if key not in doc:
                    problems.append(f"{name}: missing {key}")
            if "StartInterval" not in doc and "StartCalendarInterval" not in doc:
                problems.append(f"{name}: missing StartInterval or StartCalendarInterval")
        elif name.endswith(".yaml") and 'kind: "CronJob"' in text:
            if 'concurrencyPolicy: "Forbid"' not in text:
                problems.append(f"{name}: concurrencyPolicy is not Forbid")
            if re.search(r"onExitCodes:(?:\n\s+\S.*)*\n\s+- 75\b", text) or (
                    '"--skipped-exit-code"' not in text):
                # Ignore on 75 creates a replacement pod for every skipped run
                problems.append(f"{name}: a skipped run (exit 75) must end the pod "
                                "successfully (--skipped-exit-code 0), not match a rule")
    return problems


def systemd_analyze(files: Mapping[str, bytes]) -> list[str] | None:
    """Messages from ``systemd-analyze verify`` (empty: clean), None when not installed."""
    tool = shutil.which("systemd-analyze")
    units = {n: d for n, d in files.items() if n.endswith((".service", ".timer"))}
    if tool is None or not units:
        return None
    with tempfile.TemporaryDirectory(prefix="impromptu-units-") as tmp:
        paths = []
        for name, data in units.items():
            p = Path(tmp) / name
            p.write_bytes(data)
            paths.append(str(p))
        try:
            proc = subprocess.run([tool, "verify", "--man=no", *paths], capture_output=True,
                                  text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return [f"systemd-analyze could not run: {exc}"]
    # verify exits 0 on some problems (unknown keys are "ignored"): every message counts.
    lines = [ln.replace(tmp + "/", "") for ln in (proc.stderr + proc.stdout).splitlines()
             if ln.strip()]
    if proc.returncode != 0 and not lines:
        lines = [f"systemd-analyze verify exited {proc.returncode}"]
    return lines


def validate(files: Mapping[str, bytes]) -> list[str]:
    """Notes on how the files were validated; raise ConfigError when they are not valid."""
    problems = structural_problems(files)
    notes = ["structural checks passed"] if not problems else []
    analyzed = systemd_analyze(files)
    if analyzed is not None:
        problems += [f"systemd-analyze: {m}" for m in analyzed]
        if not analyzed:
            notes.append("systemd-analyze verify passed")
    elif any(n.endswith(".service") for n in files):
        notes.append("systemd-analyze not installed: structural checks only")
    if problems:
        raise ConfigError("generated schedule is not valid: " + "; ".join(problems[:5]))
    return notes
