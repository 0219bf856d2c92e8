"""What each scheduled job needs, in one value per job, derived from the settings.

The jobs (:data:`JOBS`): the heartbeat every 30 minutes, ``rotate impromptu --if-due``
daily, ``earnings reconcile`` weekly (its report written to the state folder) and
``health`` every 5 minutes for hosts without a monitor.

The spec carries only non-secret values: the command line, folders, and the *paths* of
credential files. Secrets reach the job through the store (the local key file, or a Vault
AppRole secret-id file delivered by systemd ``LoadCredential``), never through the
environment or an env file. A Vault token that exists only in the environment cannot be
scheduled safely, so :func:`build_spec` refuses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from impromptu_ops import contract
from impromptu_ops.errors import ConfigError
from impromptu_ops.settings import Settings, env_name

SCHEDULERS = ("systemd", "cron", "launchd", "kubernetes")
CONFIG_ENV = "IMPROMPTU_CONFIG"  # settings.config_path reads it
INTERVAL_MINUTES = 30  # the skill's advice: every 30 minutes
RANDOM_DELAY_SECONDS = 300  # spread agents so they do not all call at :00 and :30
TIMEOUT_MARGIN_SECONDS = 60  # start-up, lock, state and textfile writes beyond the deadline
REPORT_FILE = "earnings-report.json"  # the weekly reconciliation, in the state folder
DAY = 24 * 60
WEEK = 7 * DAY


@dataclass(frozen=True)
class JobDef:
    """One scheduled job: what it runs and how often (the same for every scheduler)."""

    job: str  # the name: unit impromptu-<job>, {job} in jobs.ping_url
    args: tuple[str, ...]  # after the program; the reconcile's --output is added
    interval_minutes: int  # < 60: every N minutes; DAY: daily; WEEK: weekly
    random_delay_seconds: int
    timeout_seconds: int  # 0: the heartbeat's deadline + margin
    description: str


JOBS: tuple[JobDef, ...] = (
    JobDef("heartbeat", ("heartbeat", "--json"), INTERVAL_MINUTES, RANDOM_DELAY_SECONDS, 0,
           "Impromptu agent heartbeat"),
    JobDef("rotate", ("rotate", "impromptu", "--if-due", "--json"), DAY, 1800, 900,
           "Rotate the Impromptu platform key when it is due"),
    JobDef("reconcile", ("earnings", "reconcile", "--format", "json"), WEEK, 3600, 1800,
           "Reconcile Impromptu earnings against the chain"),
    JobDef("health", ("health", "--format", "nagios"), 5, 30, 120,
           "Impromptu agent health check"),
)
JOB_NAMES = tuple(j.job for j in JOBS)
# ``install --fleet-shards N``: the fleet commands replace the per-agent heartbeat, rotation
# and health jobs (reconcile stays one job); in Kubernetes each runs as an Indexed Job of N
# pods, each pod serving its shard of the agents (impromptu_ops.fleet.roster).
FLEET_JOBS: tuple[JobDef, ...] = (
    JobDef("fleet-heartbeat", ("fleet", "heartbeat", "--json"), INTERVAL_MINUTES,
           RANDOM_DELAY_SECONDS, 0, "Impromptu fleet heartbeat (every agent)"),
    JobDef("fleet-rotate", ("fleet", "rotate", "--if-due", "--json"), DAY, 1800, 0,
           "Rotate each agent's Impromptu key when it is due (canary first)"),
    JobDef("fleet-health", ("fleet", "health", "--format", "nagios"), 5, 30, 120,
           "Impromptu fleet health check"),
)
MAX_FLEET_SHARDS = 1000


@dataclass(frozen=True)
class Credential:
    """A file the scheduler hands to the job (systemd ``LoadCredential=name:path``).

    ``env`` is the setting's environment name; the job reads the file from the scheduler's
    credentials folder (``%d/name``) instead of the original path.
    """

    name: str
    path: Path
    env: str


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    argv: tuple[str, ...]
    interval_minutes: int
    random_delay_seconds: int
    timeout_seconds: int
    minute_offset: int  # a fixed pseudo-random minute (of the hour, or of the day/week)
    state_dir: Path
    config_dir: Path
    data_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)  # non-secret values only
    credentials: tuple[Credential, ...] = ()
    scope: str = "user"  # systemd: user or system
    user: str = ""  # systemd system scope: the account that runs the job
    image: str = "impromptu-ops:latest"  # kubernetes
    metrics_file: Path | None = None  # jobs.metrics_file: its folder must stay writable
    job: str = "heartbeat"
    description: str = "Impromptu agent heartbeat"
    config_file: Path | None = None  # the config read at install time (a pod gets a copy)
    shards: int = 0  # fleet jobs: pods of the Indexed Job (0: not a fleet job)

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"{self.job}.log"

    @property
    def cron_lock(self) -> Path:
        # Not the job's own lock file: flock(1) holding that one would make the job
        # itself see "busy". Two locks, one per layer, same meaning (skipped).
        return self.state_dir / f"{self.job}.cron.lock"

    @property
    def launchd_label(self) -> str:
        return f"ai.impromptu.{self.job}"

    @property
    def hour(self) -> int:
        """Daily and weekly jobs: the hour (UTC-agnostic local time) they run at."""
        return (self.minute_offset // 60) % 24

    @property
    def minute(self) -> int:
        return self.minute_offset % 60


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USER_RE = re.compile(r"^(?:[a-z_][a-z0-9_.-]{0,31}\$?|\d{1,10})$", re.IGNORECASE)


def stable_offset(seed: str, modulo: int) -> int:
    """A fixed pseudo-random offset: the same host always gets the same minute."""
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % modulo


def build_specs(settings: Settings, command: tuple[str, ...], *, seed: str,
                scope: str = "user", user: str = "", image: str = "impromptu-ops:latest",
                fleet_shards: int = 0) -> tuple[ScheduleSpec, ...]:
    """One spec per scheduled job (:data:`JOBS`), heartbeat first; with ``fleet_shards``
    the fleet jobs (:data:`FLEET_JOBS`) replace heartbeat, rotate and health.

    Raises:
        ConfigError: as :func:`build_spec`; a shard count out of range; several shards
            with a local store (pods share the agents' keys through Vault only).
    """
    if not fleet_shards:
        return tuple(build_spec(settings, command, seed=seed, scope=scope, user=user,
                                image=image, job=j.job) for j in JOBS)
    if not 1 <= fleet_shards <= MAX_FLEET_SHARDS:
        raise ConfigError(f"--fleet-shards must be 1..{MAX_FLEET_SHARDS}, got {fleet_shards}")
    if fleet_shards > 1 and settings.store_backend != "vault":
        raise ConfigError("a fleet sharded over several pods needs a shared store",
                          hint="configure Vault (VAULT_ADDR, AppRole or a token file): every "
                               "pod reads its agents' keys there")
    specs = []
    for name in ("fleet-heartbeat", "fleet-rotate", "reconcile", "fleet-health"):
        spec = build_spec(settings, command, seed=seed, scope=scope, user=user, image=image,
                          job=name)
        if name != "reconcile":  # IMPROMPTU_FLEET_SHARDS tells each pod the shard count
            spec = dataclasses.replace(spec, shards=fleet_shards, env={
                **spec.env, "IMPROMPTU_FLEET_SHARDS": str(fleet_shards)})
        specs.append(spec)
    return tuple(specs)


def _fleet_timeout(settings: Settings, per_agent: float) -> int:
    """A fleet job's time limit: its agents' runs, ``fleet.concurrency`` at a time (the
    whole fleet as the bound: a shard's share of a hash is not known in advance)."""
    from impromptu_ops.fleet.roster import fleet_names

    agents = max(1, len(fleet_names(settings)))
    rounds = -(-agents // max(1, settings.fleet.concurrency))
    return int(rounds * per_agent) + TIMEOUT_MARGIN_SECONDS


def _offset(seed: str, jobdef: JobDef) -> int:
    """The run's minute: of the hour (every N minutes), or 01:00-04:59 (daily, weekly),
    the night hours when an agent is least busy."""
    if jobdef.interval_minutes < 60:
        return stable_offset(seed, jobdef.interval_minutes)
    return 60 + stable_offset(f"{seed}/{jobdef.job}", 4 * 60)


def build_spec(settings: Settings, command: tuple[str, ...], *, seed: str,
               scope: str = "user", user: str = "", image: str = "impromptu-ops:latest",
               job: str = "heartbeat") -> ScheduleSpec:
    """Derive the schedule from the settings.

    Args:
        settings: the effective settings.
        command: the program to run (``(/repo/.venv/bin/impromptu-ops,)``); the job's
            arguments are appended.
        seed: what makes the random offset stable (user@host).
        scope, user, image: scheduler-specific choices.
        job: one of :data:`JOB_NAMES`.

    Raises:
        ConfigError: a credential the job would need only exists in the environment.
    """
    env: dict[str, str] = {
        env_name("paths.state_dir"): str(settings.paths.state_dir),
        env_name("paths.config_dir"): str(settings.paths.config_dir),
        env_name("paths.data_dir"): str(settings.paths.data_dir),
    }
    if settings.sources.get("platform.api_url"):
        env["IMPROMPTU_API_URL"] = settings.platform.api_url
    # The config file read at install time, named explicitly: the job may run as another
    # user or with another HOME/XDG_CONFIG_HOME, and would otherwise silently lose its
    # settings (ping URL, deadline, store...). Sources read "file <path>".
    config_file = next((src[len("file "):] for src in settings.sources.values()
                        if src.startswith("file ")), None)
    if config_file:
        env[CONFIG_ENV] = config_file
    creds: list[Credential] = []
    if settings.store_backend == "local":
        env[env_name("store.local_path")] = str(settings.local_store_path)
        creds.append(Credential("impromptu-store-key", settings.local_key_path,
                                env_name("store.local_key_file")))
    else:
        env["VAULT_ADDR"] = settings.store.vault_addr
        if settings.store.vault_namespace:
            env["VAULT_NAMESPACE"] = settings.store.vault_namespace
        if settings.store.vault_ca_cert:
            env["VAULT_CACERT"] = str(settings.store.vault_ca_cert)
        if settings.store.vault_role_id and settings.store.vault_secret_id_file:
            env[env_name("store.vault_role_id")] = settings.store.vault_role_id
            creds.append(Credential(contract.VAULT_SECRET_ID, settings.store.vault_secret_id_file,
                                    env_name("store.vault_secret_id_file")))
        elif settings.store.vault_token_file:
            creds.append(Credential("vault-token", settings.store.vault_token_file,
                                    env_name("store.vault_token_file")))
        else:
            raise ConfigError(
                "a scheduled job cannot use a Vault token from the environment",
                hint="configure AppRole (store.vault_role_id + store.vault_secret_id_file) "
                     "or store.vault_token_file",
            )
    jobdef = next((j for j in (*JOBS, *FLEET_JOBS) if j.job == job), None)
    if jobdef is None:
        raise ConfigError(f"unknown job {job!r}: use one of {', '.join(JOB_NAMES)}")

    argv = (*command, *jobdef.args)
    timeout = jobdef.timeout_seconds
    metrics_file = None
    if job == "heartbeat":
        timeout = int(settings.jobs.heartbeat_deadline) + TIMEOUT_MARGIN_SECONDS
        metrics_file = settings.jobs.metrics_file
        if metrics_file:
            argv += ("--metrics-file", str(metrics_file))
    elif job == "reconcile":
        argv += ("--output", str(settings.paths.state_dir / REPORT_FILE))
    elif job == "fleet-heartbeat":  # one labelled textfile for every agent
        timeout = _fleet_timeout(settings, settings.jobs.heartbeat_deadline + 5.0)
        metrics_file = settings.jobs.metrics_file
        if metrics_file:
            argv += ("--metrics-file", str(metrics_file))
    elif job == "fleet-rotate":
        from impromptu_ops.fleet.jobs import ROTATE_DEADLINE

        timeout = _fleet_timeout(settings, ROTATE_DEADLINE)
    if user and not _USER_RE.match(user):
        raise ConfigError(f"--run-as {user[:40]!r} is not a user name or uid")
    values = [("--image", image), *((f"setting {k}", v) for k, v in env.items()),
              *((f"credential {c.name}", str(c.path)) for c in creds),
              *(("command", a) for a in argv)]
    for what, value in values:
        if _CONTROL.search(value):
            # a newline would start a new unit directive, crontab entry or YAML key
            raise ConfigError(f"{what}: a control character (newline?) cannot go into a "
                              f"schedule file: {value[:60]!r}")
    return ScheduleSpec(
        name=f"impromptu-{job}",
        argv=argv,
        interval_minutes=jobdef.interval_minutes,
        random_delay_seconds=jobdef.random_delay_seconds,
        timeout_seconds=timeout,
        minute_offset=_offset(seed, jobdef),
        state_dir=settings.paths.state_dir,
        config_dir=settings.paths.config_dir,
        data_dir=settings.paths.data_dir,
        env=env,
        credentials=tuple(creds),
        scope=scope,
        user=user,
        image=image,
        metrics_file=metrics_file,
        job=job,
        description=jobdef.description,
        config_file=Path(config_file) if config_file else None,
    )
