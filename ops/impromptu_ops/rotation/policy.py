"""Private: Rotation thresholds from ``policies/rotation.toml``, and duration parsing. Pure.

The file has a ``[default]`` table and optional per-provider tables (``[openrouter]``,
``[impromptu]``, ``[vault-secret-id]``) that override it. The health checks read the same
file through :func:`load_rotation_policy` so that "due for rotation" means one thing.

This module parses and decides (:meth:`KeyPolicy.due`); it reads one file and nothing else.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from impromptu_ops import files
from impromptu_ops.errors import ConfigError
from impromptu_ops.rotation.hook import parse_command

POLICY_FILE = "rotation.toml"
PROVIDERS = ("openrouter", "impromptu", "vault-secret-id")


@dataclass(frozen=True)
class KeyPolicy:
    """The thresholds for one provider's key."""

    max_age_days: float = 90.0
    warn_before_expiry_days: float = 14.0
    critical_before_expiry_days: float = 3.0
    grace_hours: float = 24.0
    on_rotate: str = ""  # the reload hook's command line ("" = none); see rotation.hook
    on_rotate_timeout_seconds: float = 30.0

    @property
    def grace_seconds(self) -> float:
        return self.grace_hours * 3600.0

    def due(self, now: datetime, created: datetime | None,
            expires: datetime | None = None) -> str | None:
        """Why the key is due for rotation (``None`` when it is not)."""
        warn = self.warn_before_expiry_days
        if expires is not None and expires - now <= timedelta(days=warn):
            return f"it expires {expires.isoformat()} (within {warn:g} days)"
        if created is not None and now - created >= timedelta(days=self.max_age_days):
            return f"it is older than {self.max_age_days:g} days"
        return None


@dataclass(frozen=True)
class RotationPolicy:
    default: KeyPolicy = field(default_factory=KeyPolicy)
    providers: dict[str, KeyPolicy] = field(default_factory=dict)

    def for_provider(self, name: str) -> KeyPolicy:
        return self.providers.get(name, self.default)


_FIELDS = {f.name for f in dataclasses.fields(KeyPolicy)}
_TEXT_FIELDS = {"on_rotate"}


def _table(where: str, raw: object, base: KeyPolicy) -> KeyPolicy:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    values: dict[str, float | str] = {}
    for key, value in raw.items():
        if key not in _FIELDS:
            raise ConfigError(f"{where}: unknown key {key!r}")
        if key in _TEXT_FIELDS:
            if not isinstance(value, str):
                raise ConfigError(f"{where}.{key}: must be a string (a command line)")
            parse_command(value, f"{where}.{key}")  # checked here, run by the engine
            values[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{where}.{key}: must be a non-negative number")
        values[key] = float(value)
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


def parse_rotation_policy(text: str, where: str = POLICY_FILE) -> RotationPolicy:
    """Parse the policy TOML. Raises ConfigError on anything unexpected."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    default = _table(f"{where} [default]", doc.get("default", {}), KeyPolicy())
    providers = {}
    for name, raw in doc.items():
        if name == "default":
            continue
        if name not in PROVIDERS:
            raise ConfigError(f"{where}: unknown table [{name}]",
                              hint="use [default] or one of " + ", ".join(PROVIDERS))
        providers[name] = _table(f"{where} [{name}]", raw, default)
    return RotationPolicy(default, providers)


def load_rotation_policy(policies_dir: Path) -> RotationPolicy:
    """Read ``<policies_dir>/rotation.toml``; built-in defaults when the file is absent."""
    path = policies_dir / POLICY_FILE
    raw = files.read_optional(path, what="rotation policy", limit=files.MAX_POLICY_BYTES,
                              error=ConfigError)
    if raw is None:
        return RotationPolicy()
    text = files.decode_text(raw, what=f"rotation policy {path}", error=ConfigError)
    return parse_rotation_policy(text, str(path))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``"24h"``, ``"90m"``, ``"2d"``, ``"30s"``, ``"0"`` -> seconds.

    Raises:
        ConfigError: anything else (negative, empty, unknown unit).
    """
    m = _DURATION.match(text.lower())
    if not m:
        raise ConfigError(f"not a duration: {text[:40]!r}", hint="use e.g. 24h, 90m, 2d, 0")
    return float(m.group(1)) * _UNIT[m.group(2)]
