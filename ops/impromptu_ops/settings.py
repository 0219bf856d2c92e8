"""The one frozen settings object, and where each value came from.

Precedence, highest first: flags (``overrides``), environment (``IMPROMPTU_*``, ``VAULT_*``),
the config file (``$IMPROMPTU_CONFIG`` or ``$XDG_CONFIG_HOME/impromptu-ops/config.toml``),
defaults. Every limit (timeouts, size caps, retry caps, deadlines, PoW caps) lives here,
never as a magic number in code.

Each field ``section.field`` is read from the env var ``IMPROMPTU_<SECTION>_<FIELD>`` and
from ``[section] field = ...`` in the config file; a few well-known names have aliases
(``IMPROMPTU_API_URL``, ``VAULT_ADDR``, ``VAULT_TOKEN``...). Unknown config keys are an
error, so a typo cannot silently fall back to a default.

The schema is the section dataclasses themselves: each field's type decides how a value is
read and checked (numbers finite and in range, paths absolute, URLs parsed, no control
characters), with ``RANGES``, ``CHOICES`` and ``CHECKS`` for what a type cannot say
(:mod:`impromptu_ops.settings_schema`). A bad value is a :class:`ConfigError` (exit 78)
naming the key and its source (flag, env var, config file). ``[agents.NAME.<section>]``
tables give one agent its own values.

This module parses and validates; it performs no network I/O and creates no folders.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impromptu_ops import contract, files
from impromptu_ops.errors import ConfigError
from impromptu_ops.secret import Secret
from impromptu_ops.settings_schema import (
    AGENT_NAME,
    CONTROL_CHARS,
    DEFAULT_AGENT,
    MAX_CONFIG_BYTES,
    MiB,
    coerce,
    kind_name,
    mask_url,
)


def _xdg(var: str, fallback: str, env: Mapping[str, str] | None = None) -> Path:
    """``$VAR/impromptu-ops``, or ``$HOME/<fallback>/impromptu-ops`` when VAR is unset.

    Raises:
        ConfigError: VAR (or HOME) is a relative path. The XDG Base Directory
            Specification says "all paths set in these environment variables must be
            absolute"; a relative one would scatter state over whatever folder cron
            starts in, so it is refused rather than silently ignored.
    """
    env = os.environ if env is None else env
    for name in (var, "HOME"):
        value = env.get(name) or ""
        if value and not Path(value).is_absolute():
            raise ConfigError(f"env {name}: {value[:60]!r} is a relative path",
                              hint=f"set {name} to an absolute path (the XDG spec requires it)")
        if value and CONTROL_CHARS.search(value):
            raise ConfigError(f"env {name}: contains control characters")
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = env.get(var) or str(home / fallback)
    return Path(base) / "impromptu-ops"


XDG_DEFAULTS = {
    "config_dir": ("XDG_CONFIG_HOME", ".config"),
    "data_dir": ("XDG_DATA_HOME", ".local/share"),
    "state_dir": ("XDG_STATE_HOME", ".local/state"),
}


def _repo_policies() -> Path:
    """The policy folder: a checkout's (or editable install's) ``policies/``, else the copy a
    wheel installs under ``<prefix>/share/impromptu-ops/policies``."""
    checkout = Path(__file__).resolve().parents[2] / "policies"
    if checkout.is_dir():
        return checkout
    installed = Path(sys.prefix) / "share" / "impromptu-ops" / "policies"
    return installed if installed.is_dir() else checkout


@dataclass(frozen=True)
class PathSettings:
    config_dir: Path = field(default_factory=lambda: _xdg("XDG_CONFIG_HOME", ".config"))
    data_dir: Path = field(default_factory=lambda: _xdg("XDG_DATA_HOME", ".local/share"))
    state_dir: Path = field(default_factory=lambda: _xdg("XDG_STATE_HOME", ".local/state"))
    policies_dir: Path = field(default_factory=_repo_policies)


@dataclass(frozen=True)
class PlatformSettings:
    api_url: str = contract.DEFAULT_API_URL
    path_prefix: str = "v1"  # v1 | legacy
    openrouter_url: str = contract.DEFAULT_OPENROUTER_URL
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    deadline: float = 60.0  # overall budget for one call including retries
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 300.0  # never sleep longer than this on one Retry-After
    max_response_bytes: int = 4 * MiB
    user_agent: str = "impromptu-ops/0.1"
    openrouter_max_key_pages: int = 100  # GET /keys pages (100 keys each) read at most


@dataclass(frozen=True)
class PowSettings:
    max_difficulty_bits: int = 24
    max_memory_mib: int = 1024  # per hash
    memory_budget_mib: int = 2048  # all concurrent hashes together
    workers: int = 0  # 0 = one per core
    max_rounds: int = 64
    calibration_seconds: float = 1.0
    backend: str = "auto"  # auto (measured order) | libsodium | cryptography | argon2-cffi


@dataclass(frozen=True)
class StoreSettings:
    backend: str = ""  # "" = vault when vault_addr is set, else local
    agent: str = "default"
    local_path: Path | None = None  # default: <data_dir>/secrets.store
    local_key_file: Path | None = None  # default: <config_dir>/store.key
    vault_addr: str = ""
    vault_token: Secret | None = None
    vault_token_file: Path | None = None
    vault_role_id: str = ""
    vault_secret_id_file: Path | None = None
    vault_secret_id_wrapped: bool = False
    vault_secret_id_wrap_ttl: float = 3600.0  # wrapped mode: life of a rotated secret_id's wrap
    vault_namespace: str = ""
    vault_ca_cert: Path | None = None
    vault_mount: str = "secret"
    vault_prefix: str = "impromptu"
    vault_timeout: float = 10.0
    vault_min_token_ttl: float = 300.0  # refuse to start a job with less TTL than this
    vault_min_versions_kept: int = 2  # refuse writes that would prune the last good version
    vault_approle_mount: str = "approle"
    max_versions: int = 10  # versions kept per secret (local store; new Vault secrets)
    passphrase: Secret | None = None  # local store: scrypt passphrase instead of a key file
    lock_timeout: float = 10.0  # local store: how long a writer waits for another
    scrypt_n: int = 2**15  # local store: scrypt cost for a new passphrase store


@dataclass(frozen=True)
class ChainSettings:
    rpc_url: str = ""
    chain_id: int = contract.BASE_CHAIN_ID
    token_address: str = contract.IMPRMPT_TOKEN
    decimals: int | None = None  # pinned override; None = read decimals() from the token
    wallet_address: str = ""
    confirmations: int = 12
    max_block_range: int = 10_000
    # fleet reconcile: the most wallets listed in one eth_getLogs topic filter (a fleet
    # larger than this is scanned once per group of this many wallets)
    max_filter_wallets: int = 1_000
    rpc_timeout: float = 20.0
    max_response_bytes: int = 32 * MiB
    start_block: int = 0  # where a first reconciliation starts without --from-block/--since
    use_finality_tags: bool = True  # False: final = latest - confirmations
    payout_senders: str = ""  # comma-separated addresses allowed to pay out; "" = unchecked
    registration_fee: int | None = None  # None = contract.REGISTRATION_FEE
    rate_limit_retries: int = 5
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 60.0
    # Earnings reports: explorer base for links ("" = the chain's default, e.g.
    # basescan.org for 8453; "none" = no links), amounts shown with this many decimals
    # (the exact value is in the title attribute and the CSV), the largest --prices file.
    explorer_url: str = ""
    display_decimals: int = 4
    max_price_file_bytes: int = 4 * MiB


@dataclass(frozen=True)
class GateSettings:
    skill_dir: Path | None = None  # default: <data_dir>/skill
    manifest_url: str = ""  # default: <platform.api_url>/impromptu.skill.json
    publisher_key: str = ""  # pinned Ed25519 public key (hex or base64)
    max_file_bytes: int = 1 * MiB
    max_total_bytes: int = 16 * MiB
    max_files: int = 500
    pager_lines: int = 60
    max_manifest_bytes: int = 256 * 1024
    policy_file: Path | None = None  # default: <paths.policies_dir>/update-gate.toml
    max_clock_skew: float = 300.0  # seconds a release's publishedAt may lie in the future


@dataclass(frozen=True)
class JobSettings:
    heartbeat_deadline: float = 240.0
    health_check_timeout: float = 5.0
    ping_url: str = ""  # "{job}" in it is replaced by the job's name (one check per job)
    ping_attempts: int = 3  # per ping, on 5xx or a network error (jobs/ping.py)
    ping_backoff: float = 1.0  # seconds before the 2nd attempt, doubled after each
    ping_timeout: float = 5.0
    ping_body_bytes: int = 10_000  # the tail of the job's output sent with /fail
    metrics_file: Path | None = None
    # the longest pause (RATE_003, BUDG_001) a run honours; a later skipUntil is not trusted
    max_pause_seconds: float = 48 * 3600.0


@dataclass(frozen=True)
class RotationSettings:
    # grace_seconds: when set (flag, env, config) it overrides policies/rotation.toml.
    grace_seconds: float = 24 * 3600.0
    lease_seconds: float = 900.0  # a silent record owner on another host keeps its claim
    create_attempts: int = 3  # fresh keys one run may mint after ambiguous failures
    byok: bool = True  # hand a new OpenRouter key to the platform's BYOK store
    approle_role: str = ""  # the AppRole role whose secret_id `rotate vault-secret-id` rotates


@dataclass(frozen=True)
class ExecSettings:
    """``secrets exec``: the supervising parent (see :mod:`impromptu_ops.supervisor`)."""

    poll_seconds: float = 1.0  # --restart-on-change: how often the store's versions are read
    stop_timeout: float = 10.0  # SIGTERM, then SIGKILL after this long (as `doppler run`)
    drain_seconds: float = 2.0  # after the child ends: the most we wait for its last output
    quiet_seconds: float = 0.1  # masking: a quiet child's held key-shape start is shown


@dataclass(frozen=True)
class FleetSettings:
    """``fleet`` commands (see :mod:`impromptu_ops.fleet`)."""

    concurrency: int = 32  # agents served at once (each agent's own checks run beside it)
    max_requests: int = 16  # fleet health: platform requests in flight at once, all agents
    include_default: bool = True  # the agent ``default`` is part of the fleet
    shards: int = 1  # shard count (Kubernetes sets IMPROMPTU_FLEET_SHARDS in the bundle)
    rotate_deadline: float = 900.0  # fleet rotate: seconds one agent's rotation may take


@dataclass(frozen=True)
class Settings:
    """All settings, grouped by the part of the tool that uses them."""

    paths: PathSettings = field(default_factory=PathSettings)
    platform: PlatformSettings = field(default_factory=PlatformSettings)
    pow: PowSettings = field(default_factory=PowSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    chain: ChainSettings = field(default_factory=ChainSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    rotation: RotationSettings = field(default_factory=RotationSettings)
    exec: ExecSettings = field(default_factory=ExecSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # ``[agents.NAME.<section>]`` tables of the config file: the effective settings of each
    # named agent (its table over the file, under env and flags), validated like the rest.
    agents: Mapping[str, Settings] = field(default_factory=dict, compare=False)

    # Derived locations: one place decides where each file lives.
    @property
    def store_backend(self) -> str:
        if self.store.backend:
            return self.store.backend
        return "vault" if self.store.vault_addr else "local"

    @property
    def local_store_path(self) -> Path:
        """One store file per agent (so one rollback counter each): ``default`` keeps
        ``<data_dir>/secrets.store``, agent NAME uses ``<data_dir>/agents/NAME/``."""
        if self.store.local_path:
            return self.store.local_path
        if self.store.agent == DEFAULT_AGENT:
            return self.paths.data_dir / "secrets.store"
        return self.paths.data_dir / "agents" / self.store.agent / "secrets.store"

    @property
    def local_key_path(self) -> Path:
        return self.store.local_key_file or self.paths.config_dir / "store.key"

    @property
    def skill_dir(self) -> Path:
        return self.gate.skill_dir or self.paths.data_dir / "skill"

    @property
    def manifest_url(self) -> str:
        return self.gate.manifest_url or self.platform.api_url.rstrip("/") + contract.MANIFEST_PATH


SECTIONS: dict[str, type[Any]] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(Settings)
    if f.name not in ("sources", "agents")
}

ENV_ALIASES: dict[str, str] = {
    "platform.api_url": "IMPROMPTU_API_URL",
    "platform.openrouter_url": "IMPROMPTU_OPENROUTER_URL",
    "store.vault_addr": "VAULT_ADDR",
    "store.vault_token": "VAULT_TOKEN",
    "store.vault_namespace": "VAULT_NAMESPACE",
    "store.vault_ca_cert": "VAULT_CACERT",
    "store.backend": "IMPROMPTU_STORE_BACKEND",
    "store.agent": "IMPROMPTU_AGENT",  # IMPROMPTU_STORE_AGENT (read first) is its alias
    "chain.rpc_url": "IMPROMPTU_CHAIN_RPC",
}


def env_name(key: str) -> str:
    section, name = key.split(".", 1)
    return f"IMPROMPTU_{section.upper()}_{name.upper()}"


def config_path(env: Mapping[str, str]) -> Path:
    """Where the config file is read from."""
    if env.get("IMPROMPTU_CONFIG"):
        return Path(env["IMPROMPTU_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "impromptu-ops" / "config.toml"


def _validate(s: Settings) -> None:
    """Rules across fields (each field alone is checked by :func:`coerce`)."""
    if s.store_backend == "vault" and not s.store.vault_addr:
        raise ConfigError("store.backend is vault but no Vault address is set",
                          hint="set VAULT_ADDR or [store] vault_addr in the config file")
    if s.platform.backoff_base > s.platform.backoff_cap:
        raise ConfigError("setting platform.backoff_base must not exceed platform.backoff_cap")
    if s.pow.max_memory_mib > s.pow.memory_budget_mib:
        raise ConfigError("setting pow.max_memory_mib must not exceed pow.memory_budget_mib")


def _read_config(path: Path) -> dict[str, Any]:
    """The parsed config file (``{}`` when it does not exist)."""
    data = files.read_optional(path, what="config file", limit=MAX_CONFIG_BYTES,
                               error=ConfigError)
    if data is None:
        return {}
    text = files.decode_text(data, what=f"config file {path}", error=ConfigError)
    return files.parse_toml(text, what=f"config file {path}", error=ConfigError)


def _section_values(doc: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """``{"section.field": value}`` from a document of ``[section]`` tables."""
    values: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section [{prefix}{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{prefix}{section}] must be a table, "
                              f"got {kind_name(table)}")
        names = {f.name for f in dataclasses.fields(SECTIONS[section])}
        for name, value in table.items():
            if name not in names:
                raise ConfigError(f"{where}: unknown key {prefix}{section}.{name}")
            values[f"{section}.{name}"] = value
    return values


def _agent_tables(doc: Any, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: [agents] must hold one table per agent, "
                          "e.g. [agents.alice.store]")
    tables: dict[str, dict[str, Any]] = {}
    for name, sub in doc.items():
        if not AGENT_NAME.match(name):
            raise ConfigError(f"{where}: agent name {name[:40]!r} in [agents] is not a plain "
                              "name (letters, digits, - and _)")
        if not isinstance(sub, dict):
            raise ConfigError(f"{where}: [agents.{name}] must be a table of sections, "
                              f"got {kind_name(sub)}")
        values = _section_values(sub, where, prefix=f"agents.{name}.")
        if values.get("store.agent", name) != name:
            raise ConfigError(f"{where}: agents.{name}.store.agent must be {name!r} or unset")
        tables[name] = values
    return tables


def _build(overrides: Mapping[str, Any], env: Mapping[str, str],
           file_values: Mapping[str, Any], file_src: str) -> tuple[dict[str, Any],
                                                                   dict[str, str]]:
    sources: dict[str, str] = {}
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            raw: Any = None
            src = ""
            if overrides.get(key) is not None:
                raw, src = overrides[key], "flag"
            elif env.get(env_name(key)) not in (None, ""):
                raw, src = env[env_name(key)], f"env {env_name(key)}"
            elif key in ENV_ALIASES and env.get(ENV_ALIASES[key]) not in (None, ""):
                raw, src = env[ENV_ALIASES[key]], f"env {ENV_ALIASES[key]}"
            elif key in file_values:
                raw, src = file_values[key], file_src
            if src:
                kwargs[f.name] = coerce(key, hints[f.name], raw, src)
                sources[key] = src
            elif section == "paths" and f.name in XDG_DEFAULTS:
                kwargs[f.name] = _xdg(*XDG_DEFAULTS[f.name], env)
        built[section] = cls(**kwargs)
    return built, sources


def _check_override_keys(overrides: Mapping[str, Any]) -> None:
    """A flag override must name a real setting: a misspelt key is an error, not a no-op.

    Raises:
        ConfigError: the first unknown ``section.field`` key.
    """
    for key in overrides:
        section, _, name = str(key).partition(".")
        cls = SECTIONS.get(section)
        if cls is None or name not in {f.name for f in dataclasses.fields(cls)}:
            raise ConfigError(f"unknown setting {str(key)[:80]!r} in the overrides",
                              hint="use section.field, e.g. platform.api_url "
                                   "(`impromptu-ops config show` lists them)")


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build the effective settings.

    Args:
        overrides: ``{"section.field": value}`` from command-line flags; ``None`` values
            are ignored (a flag that was not given).
        env: the environment (default: ``os.environ``).
        config_file: the TOML file (default: :func:`config_path`). A missing file is fine;
            one that is not a regular file (a folder, a FIFO) is refused without blocking.

    Returns:
        The frozen settings, with ``sources`` naming where each non-default value came from,
        and ``agents`` holding the settings of each ``[agents.NAME]`` table.

    Raises:
        ConfigError: unreadable or invalid config file, unknown keys, a value of the wrong
            type or out of range: the message names the key and its source.
    """
    env = os.environ if env is None else env
    overrides = overrides or {}
    _check_override_keys(overrides)
    path = config_file or config_path(env)
    doc = _read_config(path)
    where = f"config file {path}"
    agents_doc = doc.pop("agents", None)
    file_values = _section_values(doc, where)
    built, sources = _build(overrides, env, file_values, f"file {path}")
    agents: dict[str, Settings] = {}
    if agents_doc is not None:
        for name, values in _agent_tables(agents_doc, where).items():
            a_built, a_sources = _build(
                {**overrides, "store.agent": name}, env, {**file_values, **values},
                f"file {path} [agents.{name}]")
            agent = Settings(**a_built, sources=a_sources)
            _validate(agent)
            agents[name] = agent
    settings = Settings(**built, sources=sources, agents=agents)
    _validate(settings)
    return settings


# URLs whose path or query works as a credential: a provider's RPC URL carries its API key
# in the path (``.../v2/<key>``), a healthchecks ping URL is itself the token.
CREDENTIAL_URLS = frozenset({"chain.rpc_url", "jobs.ping_url"})


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """Rows ``(key, shown value, source)`` for ``config show``; secrets are masked, and so
    are URL paths that carry credentials (:data:`CREDENTIAL_URLS`) and URL user info."""
    rows: list[tuple[str, str, str]] = []
    for section in SECTIONS:
        obj = getattr(settings, section)
        for f in dataclasses.fields(obj):
            key = f"{section}.{f.name}"
            value = getattr(obj, f.name)
            shown = "(unset)" if value is None or value == "" else str(value)
            if isinstance(value, str) and value and ("://" in value or key in CREDENTIAL_URLS):
                shown = mask_url(value, path=key in CREDENTIAL_URLS)
            rows.append((key, shown, settings.sources.get(key, "default")))
    rows.append(("(derived) store backend", settings.store_backend, "derived"))
    rows.append(("(derived) local store", str(settings.local_store_path), "derived"))
    rows.append(("(derived) skill dir", str(settings.skill_dir), "derived"))
    for name, agent in settings.agents.items():  # only what its [agents.NAME] table changed
        for key, source in agent.sources.items():
            if "[agents." in source:
                section, fname = key.split(".", 1)
                value = getattr(getattr(agent, section), fname)
                shown = "****" if isinstance(value, Secret) else str(value)
                if isinstance(value, str) and ("://" in value or key in CREDENTIAL_URLS):
                    shown = mask_url(value, path=key in CREDENTIAL_URLS)
                rows.append((f"agents.{name}.{key}", shown, source))
    return rows
