"""``impromptu-ops install``: folders, store check, secrets scan, and the schedule.

The replacement for the skill's ``install.sh``. It plans first (:func:`plan_install`,
no side effects), then applies (:func:`apply`): a dry run prints the plan — every folder
with its mode and every file with its exact content — and stops.

What it does:

1. creates the config, data and state folders 0700 (tightens them when looser), owned by
   the ``--run-as`` user of a system unit (created first with ``--create-user``), and
   checks as that user (runuser/setpriv) that the store and state are readable and
   writable. A system unit never runs as root: it needs ``--run-as`` or ``--create-user``;
2. checks the secret store (reachable, unsealed; says when the platform key is missing);
3. scans shell files for plaintext keys and reports them (the CLI offers
   ``secrets scan --fix``);
4. renders the schedule of every job (heartbeat, rotate, reconcile, health) for the chosen
   scheduler, validates it (``systemd-analyze verify`` when available, structural rules
   always) and writes it atomically; for cron it replaces our tagged lines in the user's
   crontab, leaving every other line alone; for Kubernetes it writes a bundle for
   ``kubectl apply -f DIR`` and says how to create the Secret it reads.

It does not enable the timer or load the agent: the next steps are printed, because
``systemctl enable`` on someone's machine is a decision for that someone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from impromptu_ops import atomic, contract
from impromptu_ops.errors import ConfigError, OpsError
from impromptu_ops.schedule import generate, validate
from impromptu_ops.schedule.spec import (
    JOB_NAMES,
    SCHEDULERS,
    ScheduleSpec,
    build_specs,
)
from impromptu_ops.secret import clip
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.store.base import SecretStore

UNIT_MODE = 0o644
DEDICATED_USER = "impromptu"  # --create-user
DEDICATED_HOME = Path("/var/lib/impromptu-ops")


@dataclass(frozen=True)
class Action:
    """One side effect: ``useradd``, ``mkdir`` (a private folder, owned by ``owner`` when
    set), ``write`` (a file) or ``crontab``."""

    kind: str
    path: Path | None
    content: bytes = b""
    mode: int = 0o700
    owner: str = ""


@dataclass
class InstallPlan:
    scheduler: str
    spec: ScheduleSpec  # the heartbeat's (scope, user, folders: the same for every job)
    specs: tuple[ScheduleSpec, ...] = ()
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
                 home: Path | None = None, seed: str | None = None,
                 create_user: bool = False, fleet_shards: int = 0) -> InstallPlan:
    """Everything install would do, with no side effect.

    Raises:
        ConfigError: unknown scheduler, a configuration that cannot be scheduled safely
            (a system unit as root, a metrics file in a pod...), or generated files that
            fail validation.
    """
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}: use one of {', '.join(SCHEDULERS)}")
    scope = scope or ("system" if os.geteuid() == 0 else "user")
    if scope not in ("user", "system"):
        raise ConfigError(f"unknown scope {scope!r}: use user or system")
    system_unit = scheduler == "systemd" and scope == "system"
    if (user or create_user) and not system_unit:
        raise ConfigError("--run-as and --create-user are for a system unit",
                          hint="add --scheduler systemd --scope system")
    if create_user:
        user = user or DEDICATED_USER
    if system_unit and not user:
        raise ConfigError("a system unit would run the jobs as root",
                          hint="give --run-as USER (an existing account that owns the "
                               f"folders), or --create-user to create the system user "
                               f"{DEDICATED_USER!r}")
    if system_unit and user in ("root", "0"):
        raise ConfigError("--run-as root: the jobs need no privileges",
                          hint=f"use --create-user (system user {DEDICATED_USER!r})")
    home = home or Path.home()
    if fleet_shards > 1 and scheduler != "kubernetes":
        raise ConfigError("--fleet-shards above 1 spreads the fleet over Kubernetes pods",
                          hint="add --scheduler kubernetes, or use --fleet-shards 1")
    specs = build_specs(settings, command or default_command(), seed=seed or _seed(),
                        scope=scope, user=user, image=image, fleet_shards=fleet_shards)
    files = generate.render_all(specs, scheduler)
    plan = InstallPlan(scheduler, specs[0], specs)
    plan.notes += validate.validate(files)
    if create_user and not _user_exists(user):
        plan.actions.append(Action("useradd", None, user.encode()))
    for folder in (settings.paths.config_dir, settings.paths.data_dir, settings.paths.state_dir):
        plan.actions.append(Action("mkdir", folder, owner=user if system_unit else ""))
    timers = " ".join(f"{s.name}.timer" for s in specs)
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
        plan.next_steps.append(f"{ctl} daemon-reload && {ctl} enable --now {timers}")
        plan.next_steps.append(f"{ctl} list-timers 'impromptu-*'")
    elif scheduler == "cron":
        if output_dir:
            plan.actions.append(Action("write", output_dir / "crontab", files["crontab"],
                                       UNIT_MODE))
            plan.next_steps.append(f"crontab -l | cat - {output_dir / 'crontab'} | crontab -")
        else:
            plan.actions.append(Action("crontab", None, files["crontab"]))
            plan.next_steps.append("crontab -l   # check the impromptu-* lines")
    elif scheduler == "launchd":
        target = output_dir or home / "Library" / "LaunchAgents"
        for name, data in files.items():
            plan.actions.append(Action("write", target / name, data, UNIT_MODE))
            plan.next_steps.append(f"launchctl load -w {target / name}")
    else:
        target = output_dir or settings.paths.config_dir / "kubernetes"
        for name, data in files.items():
            plan.actions.append(Action("write", target / name, data, UNIT_MODE))
        keys = generate.secret_keys(specs[0])
        plan.next_steps.append(f"kubectl apply -f {target / '00-namespace.yaml'}")
        plan.next_steps.append(
            f"kubectl -n {generate.K8S_NAMESPACE} create secret generic {generate.K8S_SECRET} "
            + " ".join(f"--from-file={k}={p}" for k, p in keys.items()))
        plan.next_steps.append(f"kubectl apply -f {target}")
        plan.next_steps.append(
            f"build the image from the repository's Dockerfile and push it as {image}")
    return plan


def _user_exists(user: str) -> bool:
    try:
        if user.isdigit():
            pwd.getpwuid(int(user))
        else:
            pwd.getpwnam(user)
    except KeyError:
        return False
    return True


def describe(plan: InstallPlan) -> list[str]:
    """The dry run: exactly what :func:`apply` would create or write."""
    scope = f" ({plan.spec.scope} scope)" if plan.scheduler == "systemd" else ""
    out: list[str] = [f"scheduler: {plan.scheduler}{scope}"]
    for a in plan.actions:
        if a.kind == "useradd":
            out.append(f"would create the system user {a.content.decode()} "
                       f"(home {DEDICATED_HOME}, no login shell)")
        elif a.kind == "mkdir":
            owner = f", owned by {a.owner}" if a.owner else ""
            out.append(f"would create folder {a.path} (mode 0700{owner})")
        elif a.kind == "write":
            out.append(f"would write {a.path} (mode {a.mode:04o}):")
            out += ["    " + line for line in a.content.decode("utf-8", "replace").splitlines()]
        else:
            out.append("would replace the impromptu-* lines of your crontab with:")
            out += ["    " + ln for ln in a.content.decode().splitlines()]
    out += [f"validation: {n}" for n in plan.notes]
    return out


def check_store(open_store: Callable[[], SecretStore]) -> list[str]:
    """The store's status and whether the platform key is in it (never raises).

    ``open_store`` opens the agent's store (:attr:`impromptu_ops.api.Agent.store`).
    """
    from impromptu_ops.errors import SecretNotFound

    try:
        store = open_store()
        lines = [f"store: {store.check().summary}"]
    except OpsError as exc:
        return [f"store: NOT READY: {exc.diagnostics()}"]
    try:
        store.metadata(contract.IMPROMPTU_API_KEY)
        lines.append("store: the platform key is present")
    except SecretNotFound:
        lines.append("store: the platform key is missing (register first, or "
                     "`impromptu-ops secrets scan --fix` to move it from a shell file)")
    except OpsError as exc:
        lines.append(f"store: cannot read the platform key: {exc.diagnostics()}")
    return lines


def merge_crontab(current: str, lines: str) -> str:
    """``current`` with our tagged lines replaced (or added); other lines untouched."""
    tags = tuple(f"# impromptu-{job}" for job in JOB_NAMES)
    kept = [ln for ln in current.splitlines() if not ln.rstrip().endswith(tags)]
    return "\n".join([*kept, *lines.rstrip("\n").splitlines()]) + "\n"


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


def _useradd(user: str) -> None:
    tool = shutil.which("useradd")
    if tool is None:
        raise ConfigError("useradd is not installed: cannot create the user",
                          hint=f"create {user!r} yourself, then use --run-as {user}")
    proc = subprocess.run([tool, "--system", "--user-group", "--home-dir", str(DEDICATED_HOME),
                           "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                          capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise ConfigError(f"useradd {user} failed: {proc.stderr.strip()[:200]}",
                          hint="run install as root, or create the user yourself")


def _account(user: str) -> pwd.struct_passwd:
    """The account ``user`` (a name or a uid).

    Raises:
        ConfigError: there is no such account on this machine.
    """
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"--run-as {user}: no such user on this machine",
                          hint=f"create it (sudo useradd --system {user}), or use "
                               f"--create-user") from None


def _own(path: Path, user: str) -> None:
    """Give ``path`` and what is in it to ``user``; refuse with the command when we can't."""
    entry = _account(user)
    if path.stat().st_uid == entry.pw_uid and all(
            p.stat().st_uid == entry.pw_uid for p in path.rglob("*")):
        return
    if os.geteuid() != 0:
        raise ConfigError(f"{path} is not owned by {user}, and only root can change that",
                          hint=f"sudo chown -R {user}: {path}")
    for p in (path, *path.rglob("*")):
        os.chown(p, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def as_user_command(user: str) -> list[str] | None:
    """How to run a command as ``user`` (runuser, else setpriv), None if neither exists."""
    e = _account(user)
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", e.pw_name, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={e.pw_uid}", f"--regid={e.pw_gid}", "--init-groups"]
    return None


def check_as_user(plan: InstallPlan) -> str:
    """As the job's user: the state and data folders are writable, the local store is
    readable and writable (the jobs and a rotation need that). One line for the output.

    Raises:
        ConfigError: one of them is not, with the command that fixes it.
    """
    spec = plan.spec
    user = spec.user
    prefix = as_user_command(user)
    if prefix is None:
        return f"could not check as {user}: neither runuser nor setpriv is installed"
    checks: list[tuple[str, Path]] = [("-w", spec.state_dir), ("-w", spec.data_dir),
                                      ("-r", spec.config_dir)]
    store = spec.env.get("IMPROMPTU_STORE_LOCAL_PATH")
    if store and Path(store).exists():
        checks += [("-r", Path(store)), ("-w", Path(store))]
    for flag, path in checks:
        proc = subprocess.run([*prefix, "test", flag, str(path)], capture_output=True,
                              check=False, timeout=30)
        if proc.returncode != 0:
            what = "write" if flag == "-w" else "read"
            parents = " ".join(str(p) for p in reversed(path.parents) if p != Path("/"))
            raise ConfigError(
                f"validation as {user} failed: {user} cannot {what} {path}",
                hint=f"sudo chown -R {user}: {path}, and check that {user} can enter "
                     f"every folder above it ({parents}); or set paths.* to folders "
                     f"under {DEDICATED_HOME}")
    return f"as {user}: store and state are readable and writable"


def apply(plan: InstallPlan) -> list[str]:
    """Perform the plan; return one line per thing done."""
    done: list[str] = []
    checked = False
    if plan.spec.user and not any(a.kind == "useradd" for a in plan.actions):
        _account(plan.spec.user)  # before any change: the user must exist
    for a in plan.actions:
        if a.kind in ("write", "crontab") and plan.spec.user and not checked:
            # before any schedule is written: a job that cannot use its folders is not
            # installed (and the output must not say "validation passed")
            plan.notes.append(check_as_user(plan))
            checked = True
        try:
            if a.kind == "useradd":
                _useradd(a.content.decode())
                done.append(f"created the system user {a.content.decode()}")
            elif a.kind == "mkdir" and a.path is not None:
                atomic.private_dir(a.path)
                if a.owner:
                    _own(a.path, a.owner)
                done.append(f"folder {a.path} (0700{', owner ' + a.owner if a.owner else ''})")
            elif a.kind == "write" and a.path is not None:
                a.path.parent.mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(a.path, a.content, mode=a.mode)
                done.append(f"wrote {a.path}")
            elif a.kind == "crontab":
                _install_crontab(a.content.decode())
                done.append("crontab: impromptu-* lines installed")
        except OSError as exc:
            hint = ("run as root for a system unit, or use --scope user"
                    if plan.spec.scope == "system" else "check the folder's owner and mode")
            raise ConfigError(f"cannot create {a.path}: {exc.strerror}"
                              + (f" (done so far: {len(done)} step(s))" if done else ""),
                              hint=hint) from None
    return done
