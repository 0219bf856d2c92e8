"""The one frozen settings object, and where each value came from.

Precedence, highest first: flags (``overrides``), environment (``IMPROMPTU_*``, ``VAULT_*``),
the config file (``$IMPROMPTU_CONFIG`` or ``$XDG_CONFIG_HOME/impromptu-ops/config.toml``),
defaults. Every limit (timeouts, size caps, retry caps, deadlines, PoW caps) lives here,
never as a magic number in code.

Each field ``section.field`` is read from the env var ``IMPROMPTU_<SECTION>_<FIELD>`` and
from ``[section] field = ...`` in the config file; a few well-known names have aliases
(``IMPROMPTU_API_URL``, ``VAULT_ADDR``, ``VAULT_TOKEN``...). Unknown config keys are an
error, so a typo cannot silently fall back to a default.

This module parses and validates; it performs no network I/O and creates no folders.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from impromptu_ops import contract
from impromptu_ops.errors import ConfigError
from impromptu_ops.secret import Secret

MiB = 1024 * 1024


def _xdg(var: str, fallback: str, env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    base = env.get(var) or str(home / fallback)
    return Path(base) / "impromptu-ops"


# The XDG variable behind each folder of PathSettings (read from the env given to
# load_settings, not only from os.environ, so that a caller can describe another home).
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
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    # Derived locations: one place decides where each file lives.
    @property
    def store_backend(self) -> str:
        if self.store.backend:
            return self.store.backend
        return "vault" if self.store.vault_addr else "local"

    @property
    def local_store_path(self) -> Path:
        return self.store.local_path or self.paths.data_dir / "secrets.store"

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
    if f.name != "sources"
}

ENV_ALIASES: dict[str, str] = {
    "platform.api_url": "IMPROMPTU_API_URL",
    "platform.openrouter_url": "IMPROMPTU_OPENROUTER_URL",
    "store.vault_addr": "VAULT_ADDR",
    "store.vault_token": "VAULT_TOKEN",
    "store.vault_namespace": "VAULT_NAMESPACE",
    "store.vault_ca_cert": "VAULT_CACERT",
    "store.backend": "IMPROMPTU_STORE_BACKEND",
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


def _coerce(key: str, hint: Any, raw: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return _coerce(key, args[0], raw)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if hint is int:
            if isinstance(raw, bool):
                raise ValueError("not an integer")
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError("not a number")
            return float(raw)
        if hint is Path:
            return Path(str(raw)).expanduser()
        if hint is Secret:
            return raw if isinstance(raw, Secret) else Secret(str(raw), key)
        if hint is str:
            if not isinstance(raw, str | int | float):
                raise ValueError("not a string")
            return str(raw)
    except (TypeError, ValueError) as exc:
        shown = "****" if hint is Secret else repr(raw)[:60]
        raise ConfigError(f"setting {key}: cannot use {shown} ({exc})") from None
    raise ConfigError(f"setting {key}: unsupported type {hint}")  # pragma: no cover


def _validate(s: Settings) -> None:
    if s.platform.path_prefix not in contract.PATH_PREFIXES:
        raise ConfigError(
            f"setting platform.path_prefix: {s.platform.path_prefix!r} is not one of "
            + ", ".join(contract.PATH_PREFIXES)
        )
    if not s.platform.api_url.startswith(("http://", "https://")):
        raise ConfigError(f"setting platform.api_url: {s.platform.api_url!r} is not an http(s) URL")
    if s.store.backend not in ("", "local", "vault"):
        raise ConfigError(f"setting store.backend: {s.store.backend!r} is not local or vault")
    if s.store_backend == "vault" and not s.store.vault_addr:
        raise ConfigError("store.backend is vault but no Vault address is set",
                          hint="set VAULT_ADDR or [store] vault_addr in the config file")
    for key, value in (
        ("platform.deadline", s.platform.deadline),
        ("platform.connect_timeout", s.platform.connect_timeout),
        ("platform.read_timeout", s.platform.read_timeout),
        ("platform.max_response_bytes", s.platform.max_response_bytes),
        ("pow.memory_budget_mib", s.pow.memory_budget_mib),
        ("pow.max_memory_mib", s.pow.max_memory_mib),
        ("pow.max_difficulty_bits", s.pow.max_difficulty_bits),
        ("pow.max_rounds", s.pow.max_rounds),
        ("pow.calibration_seconds", s.pow.calibration_seconds),
        ("exec.poll_seconds", s.exec.poll_seconds),
        ("exec.stop_timeout", s.exec.stop_timeout),
        ("exec.drain_seconds", s.exec.drain_seconds),
        ("exec.quiet_seconds", s.exec.quiet_seconds),
    ):
        if value <= 0:
            raise ConfigError(f"setting {key}: must be positive, got {value}")
    if s.platform.max_retries < 0 or s.pow.workers < 0:
        raise ConfigError("settings platform.max_retries and pow.workers must not be negative")


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
        config_file: the TOML file (default: :func:`config_path`). A missing file is fine.

    Returns:
        The frozen settings, with ``sources`` naming where each non-default value came from.

    Raises:
        ConfigError: unreadable or invalid config file, unknown keys, bad values.
    """
    env = os.environ if env is None else env
    path = config_file or config_path(env)
    file_values: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        for section, table in data.items():
            if section not in SECTIONS or not isinstance(table, dict):
                raise ConfigError(f"config file {path}: unknown section [{section}]")
            names = {f.name for f in dataclasses.fields(SECTIONS[section])}
            for name, value in table.items():
                if name not in names:
                    raise ConfigError(f"config file {path}: unknown key {section}.{name}")
                file_values[f"{section}.{name}"] = value

    sources: dict[str, str] = {}
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            raw: Any = None
            src = ""
            if overrides and overrides.get(key) is not None:
                raw, src = overrides[key], "flag"
            elif env.get(env_name(key)) not in (None, ""):
                raw, src = env[env_name(key)], f"env {env_name(key)}"
            elif key in ENV_ALIASES and env.get(ENV_ALIASES[key]) not in (None, ""):
                raw, src = env[ENV_ALIASES[key]], f"env {ENV_ALIASES[key]}"
            elif key in file_values:
                raw, src = file_values[key], f"file {path}"
            if src:
                kwargs[f.name] = _coerce(key, hints[f.name], raw)
                sources[key] = src
            elif section == "paths" and f.name in XDG_DEFAULTS:
                kwargs[f.name] = _xdg(*XDG_DEFAULTS[f.name], env)
        built[section] = cls(**kwargs)
    settings = Settings(**built, sources=sources)
    _validate(settings)
    return settings


# URLs whose path or query works as a credential: a provider's RPC URL carries its API key
# in the path (``.../v2/<key>``), a healthchecks ping URL is itself the token.
CREDENTIAL_URLS = frozenset({"chain.rpc_url", "jobs.ping_url"})


def mask_url(url: str, *, path: bool) -> str:
    """A URL fit to show: user info always masked; path and query too when ``path``.

    ``https://base-mainnet.example/v2/KEY`` -> ``https://base-mainnet.example/****``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "****"
    if not parts.scheme or not parts.netloc:
        return "****" if path else url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = ("****@" if "@" in parts.netloc else "") + host + (f":{port}" if port else "")
    if path:
        hidden = parts.path not in ("", "/") or parts.query or parts.fragment
        return f"{parts.scheme}://{netloc}" + ("/****" if hidden else parts.path)
    if "@" not in parts.netloc:
        return url
    rest = url.split(parts.netloc, 1)[1]
    return f"{parts.scheme}://{netloc}{rest}"


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
    return rows
