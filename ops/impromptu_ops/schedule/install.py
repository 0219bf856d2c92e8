"""``impromptu-ops install``: folders, store check, secrets scan, and the schedule.

The replacement for the skill's ``install.sh``. It plans first (:func:`plan_install`,
no side effects), then applies (:func:`apply`): a dry run prints the plan — every folder
with its mode and every file with its exact content — and stops.

What it does:

1. creates the config, data and state folders 0700 (tightens them when looser);
2. checks the secret store (reachable, unsealed; says when the platform key is missing);
3. scans shell files for plaintext keys and reports them (the CLI offers
   ``secrets scan --fix``);
4. renders the schedule for the chosen scheduler, validates it (``systemd-analyze
   verify`` when available, structural rules always) and writes it atomically; for cron
   it replaces our tagged line in the user's crontab, leaving every other line alone.

It does not enable the timer or load the agent: the next steps are printed, because
``systemctl enable`` on someone's machine is a decision for that someone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from impromptu_ops import atomic
from impromptu_ops.errors import ConfigError, OpsError
from impromptu_ops.schedule import generate, validate
from impromptu_ops.schedule.spec import JOB_NAME, SCHEDULERS, ScheduleSpec, build_spec
from impromptu_ops.secret import clip
from impromptu_ops.settings import Settings

UNIT_MODE = 0o644


@dataclass(frozen=True)
class Action:
    """One side effect: ``mkdir`` (a private folder), ``write`` (a file) or ``crontab``."""

    kind: str
    path: Path | None
    content: bytes = b""
    mode: int = 0o700


@dataclass
class InstallPlan:
    scheduler: str
    spec: ScheduleSpec
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


def detect_scheduler() -> str:
    """systemd when it runs this machine, launchd on macOS, else cron."""
    if sys.platform == "darwin":
        return "launchd"
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        return "systemd"
    return "cron"


def default_command() -> tuple[str, ...]:
    """The installed console script beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "impromptu-ops"
    if script.exists():
        return (str(script),)
    return (sys.executable, "-m", "impromptu_ops.cli")


def _seed() -> str:
    import getpass
    import socket

    return f"{getpass.getuser()}@{socket.gethostname()}"


def plan_install(settings: Settings, scheduler: str, *, scope: str | None = None,
                 user: str = "", image: str = "impromptu-ops:latest",
                 output_dir: Path | None = None, command: tuple[str, ...] | None = None,
                 home: Path | None = None, seed: str | None = None) -> InstallPlan:
    """Everything install would do, with no side effect.

    Raises:
        ConfigError: unknown scheduler, a configuration that cannot be scheduled safely,
            or generated files that fail validation.
    """
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}: use one of {', '.join(SCHEDULERS)}")
    scope = scope or ("system" if os.geteuid() == 0 else "user")
    if scope not in ("user", "system"):
        raise ConfigError(f"unknown scope {scope!r}: use user or system")
    home = home or Path.home()
    spec = build_spec(settings, command or default_command(), seed=seed or _seed(),
                      scope=scope, user=user, image=image)
    files = generate.render(spec, scheduler)
    plan = InstallPlan(scheduler, spec)
    plan.notes += validate.validate(files)
    for folder in (settings.paths.config_dir, settings.paths.data_dir, settings.paths.state_dir):
        plan.actions.append(Action("mkdir", folder))
    if scheduler == "systemd":
        if scope == "system":
            target = Path("/etc/systemd/system")
            ctl = "systemctl"
        else:
            base = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
            target = base / "systemd" / "user"
            ctl = "systemctl --user"
        target = output_dir or target
        plan.actions += [Action("write", target / n, d, UNIT_MODE) for n, d in files.items()]
        plan.next_steps.append(f"{ctl} daemon-reload && {ctl} enable --now {JOB_NAME}.timer")
        plan.next_steps.append(f"{ctl} list-timers {JOB_NAME}.timer")
    elif scheduler == "cron":
        if output_dir:
            plan.actions.append(Action("write", output_dir / "crontab", files["crontab"],
                                       UNIT_MODE))
            plan.next_steps.append(f"crontab -l | cat - {output_dir / 'crontab'} | crontab -")
        else:
            plan.actions.append(Action("crontab", None, files["crontab"]))
            plan.next_steps.append("crontab -l   # check the impromptu-heartbeat line")
    elif scheduler == "launchd":
        target = output_dir or home / "Library" / "LaunchAgents"
        (name, data), = files.items()
        plan.actions.append(Action("write", target / name, data, UNIT_MODE))
        plan.next_steps.append(f"launchctl load -w {target / name}")
    else:
        target = output_dir or settings.paths.config_dir / "kubernetes"
        (name, data), = files.items()
        plan.actions.append(Action("write", target / name, data, UNIT_MODE))
        plan.next_steps.append(
            "kubectl -n impromptu create secret generic impromptu-ops-credentials "
            "--from-file=vault-secret-id=<secret-id file>")
        plan.next_steps.append(f"kubectl apply -f {target / name}")
    return plan


def describe(plan: InstallPlan) -> list[str]:
    """The dry run: exactly what :func:`apply` would create or write."""
    scope = f" ({plan.spec.scope} scope)" if plan.scheduler == "systemd" else ""
    out: list[str] = [f"scheduler: {plan.scheduler}{scope}"]
    for a in plan.actions:
        if a.kind == "mkdir":
            out.append(f"would create folder {a.path} (mode 0700)")
        elif a.kind == "write":
            out.append(f"would write {a.path} (mode {a.mode:04o}):")
            out += ["    " + line for line in a.content.decode("utf-8", "replace").splitlines()]
        else:
            out.append("would replace the impromptu-heartbeat line of your crontab with:")
            out.append("    " + a.content.decode().rstrip("\n"))
    out += [f"validation: {n}" for n in plan.notes]
    return out


def check_store(settings: Settings) -> list[str]:
    """The store's status and whether the platform key is in it (never raises)."""
    from impromptu_ops.errors import SecretNotFound
    from impromptu_ops.store.factory import open_store

    try:
        store = open_store(settings)
        lines = [f"store: {store.check()}"]
    except OpsError as exc:
        return [f"store: NOT READY: {exc.diagnostics()}"]
    try:
        store.metadata("impromptu-api-key")
        lines.append("store: the platform key is present")
    except SecretNotFound:
        lines.append("store: the platform key is missing (register first, or "
                     "`impromptu-ops secrets scan --fix` to move it from a shell file)")
    except OpsError as exc:
        lines.append(f"store: cannot read the platform key: {exc.diagnostics()}")
    return lines


def merge_crontab(current: str, line: str) -> str:
    """``current`` with our tagged line replaced (or added); other lines untouched."""
    tag = f"# {JOB_NAME}"
    kept = [ln for ln in current.splitlines() if not ln.rstrip().endswith(tag)]
    return "\n".join([*kept, line.rstrip("\n")]) + "\n"


def _install_crontab(line: str) -> None:
    crontab = shutil.which("crontab")
    if crontab is None:
        raise ConfigError("crontab is not installed", hint="use --scheduler systemd, or "
                          "--output DIR to write the line to a file")
    got = subprocess.run([crontab, "-l"], capture_output=True, text=True, check=False,
                         timeout=30)
    current = got.stdout if got.returncode == 0 else ""  # "no crontab for user" exits 1
    new = merge_crontab(current, line)
    put = subprocess.run([crontab, "-"], input=new, capture_output=True, text=True,
                         check=False, timeout=30)
    if put.returncode != 0:
        raise ConfigError(f"crontab refused the new table: {clip(put.stderr.strip(), 200)}")


def apply(plan: InstallPlan) -> list[str]:
    """Perform the plan; return one line per thing done."""
    done: list[str] = []
    for a in plan.actions:
        try:
            if a.kind == "mkdir" and a.path is not None:
                atomic.private_dir(a.path)
                done.append(f"folder {a.path} (0700)")
            elif a.kind == "write" and a.path is not None:
                a.path.parent.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(a.path, a.content, mode=a.mode)
                done.append(f"wrote {a.path}")
            elif a.kind == "crontab":
                _install_crontab(a.content.decode())
                done.append("crontab: impromptu-heartbeat line installed")
        except OSError as exc:
            hint = ("run as root for a system unit, or use --scope user"
                    if plan.spec.scope == "system" else "check the folder's owner and mode")
            raise ConfigError(f"cannot create {a.path}: {exc.strerror}"
                              + (f" (done so far: {len(done)} step(s))" if done else ""),
                              hint=hint) from None
    return done
