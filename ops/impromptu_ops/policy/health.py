"""Health thresholds: ``policies/health.toml`` plus command-line overrides.

The policy file names one table per measured quantity, each with an optional ``warning``
and ``critical`` range in the Monitoring Plugins syntax (:mod:`.ranges`), and a
``[timeouts]`` table of per-check timeouts in seconds::

    [budget]
    warning = "20:"     # WARNING when the budget balance drops below 20
    critical = "5:"

    [timeouts]
    default = 5.0
    platform = 3.0

An empty string disables a threshold. Flags (``--warning budget=30:``) override the file.
Unknown tables or keys are a configuration error, so a typo never silently disables an
alert. Evaluation (:func:`evaluate`) is pure: CRITICAL wins over WARNING, as in every
Monitoring Plugin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impromptu_ops import files
from impromptu_ops.errors import ConfigError
from impromptu_ops.policy.ranges import NagiosRange, RangeError
from impromptu_ops.policy.verdict import Status

POLICY_FILE = "health.toml"

# The quantities a threshold can apply to, with the built-in defaults used when the policy
# file is absent (the shipped policies/health.toml restates them, with comments).
METRICS: dict[str, tuple[str, str]] = {
    "budget": ("20:", "5:"),  # budget balance, in action units
    "unread": ("0", ""),  # unread notifications: any is a WARNING (the original script's rule)
    "heartbeat_age_seconds": ("~:3600", "~:10800"),  # since the last successful heartbeat
    "store_token_ttl_seconds": ("3600:", "300:"),  # Vault token time to live
    "openrouter_remaining": ("", ""),  # OpenRouter credit left (limit - usage), if limited
}
# Key age and expiry come from policies/rotation.toml, so that "due for rotation" means one
# thing for `rotate --if-due` and for health (a flag may still override them).
ROTATION_METRICS = ("key_age_days", "key_expiry_days", "openrouter_key_age_days")
ALL_METRICS = (*METRICS, *ROTATION_METRICS)


@dataclass(frozen=True)
class Thresholds:
    warning: NagiosRange | None = None
    critical: NagiosRange | None = None


def evaluate(value: float, thresholds: Thresholds) -> Status:
    """The status of ``value`` against ``thresholds`` (CRITICAL checked first)."""
    if thresholds.critical is not None and thresholds.critical.alerts(value):
        return Status.CRITICAL
    if thresholds.warning is not None and thresholds.warning.alerts(value):
        return Status.WARNING
    if math.isnan(value):
        return Status.UNKNOWN
    return Status.OK


def _range(text: str, where: str) -> NagiosRange | None:
    if text.strip() == "":
        return None
    try:
        return NagiosRange.parse(text)
    except RangeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds per metric and timeouts per check."""

    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    timeouts: Mapping[str, float] = field(default_factory=dict)
    default_timeout: float = 5.0
    source: str = "built-in defaults"

    def for_metric(self, metric: str) -> Thresholds:
        return self.thresholds.get(metric, Thresholds())

    def timeout(self, check: str) -> float:
        return self.timeouts.get(check, self.default_timeout)

    def with_overrides(self, warning: Iterable[str] = (), critical: Iterable[str] = ()
                       ) -> HealthPolicy:
        """Apply ``metric=RANGE`` flag values; raise ConfigError on a bad one."""
        table = dict(self.thresholds)
        for level, items in (("warning", warning), ("critical", critical)):
            for item in items:
                metric, sep, text = item.partition("=")
                metric = metric.strip()
                if not sep or metric not in ALL_METRICS:
                    raise ConfigError(
                        f"--{level} {item[:60]!r}: expected METRIC=RANGE with METRIC one of "
                        + ", ".join(sorted(ALL_METRICS))
                    )
                current = table.get(metric, Thresholds())
                table[metric] = replace(current, **{level: _range(text, f"--{level} {metric}")})
        return replace(self, thresholds=table, source=f"{self.source} + flags")


    def capped(self, seconds: float) -> HealthPolicy:
        """Every check's timeout at most ``seconds`` (``-t``: the whole run's bound)."""
        return replace(self, default_timeout=min(self.default_timeout, seconds),
                       timeouts={k: min(v, seconds) for k, v in self.timeouts.items()})


def rotation_thresholds(rotation: Any) -> dict[str, Thresholds]:
    """Thresholds from a :class:`~impromptu_ops.policy.rotation.RotationPolicy`.

    A key older than ``max_age_days`` is due (WARNING; rotation defines no critical age);
    one expiring within ``warn_before_expiry_days`` is a WARNING, within
    ``critical_before_expiry_days`` CRITICAL.
    """
    def num(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else repr(float(x))

    imp, orr = rotation.for_provider("impromptu"), rotation.for_provider("openrouter")
    return {
        "key_age_days": Thresholds(_range(f"~:{num(imp.max_age_days)}", "rotation")),
        "key_expiry_days": Thresholds(
            _range(f"{num(imp.warn_before_expiry_days)}:", "rotation"),
            _range(f"{num(imp.critical_before_expiry_days)}:", "rotation")),
        "openrouter_key_age_days": Thresholds(_range(f"~:{num(orr.max_age_days)}", "rotation")),
    }


def default_policy(default_timeout: float = 5.0, rotation: Any = None) -> HealthPolicy:
    if rotation is None:
        from impromptu_ops.policy.rotation import RotationPolicy

        rotation = RotationPolicy()
    table = {m: Thresholds(_range(w, m), _range(c, m)) for m, (w, c) in METRICS.items()}
    table.update(rotation_thresholds(rotation))
    return HealthPolicy(thresholds=table, default_timeout=default_timeout)


def parse_policy(data: Mapping[str, Any], where: str, default_timeout: float = 5.0,
                 rotation: Any = None) -> HealthPolicy:
    """Build a policy from the decoded TOML ``data``; unknown names are errors."""
    base = default_policy(default_timeout, rotation)
    table = dict(base.thresholds)
    timeouts: dict[str, float] = {}
    default = default_timeout
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        if name == "timeouts":
            for check, secs in body.items():
                if isinstance(secs, bool) or not isinstance(secs, int | float) or not (
                    0 < secs <= 300
                ):
                    raise ConfigError(f"{where}: timeouts.{check} must be a number in (0, 300]")
                if check == "default":
                    default = float(secs)
                else:
                    timeouts[str(check)] = float(secs)
            continue
        if name in ROTATION_METRICS:
            raise ConfigError(f"{where}: [{name}] comes from policies/rotation.toml",
                              hint="set max_age_days / *_before_expiry_days there")
        if name not in METRICS:
            raise ConfigError(f"{where}: unknown table [{name}]",
                              hint="known: " + ", ".join(sorted(METRICS)) + ", timeouts")
        current = table[name]
        for key, text in body.items():
            if key not in ("warning", "critical") or not isinstance(text, str):
                raise ConfigError(f"{where}: [{name}] {key} must be warning or critical, a string")
            current = replace(current, **{key: _range(text, f"{where}: {name}.{key}")})
        table[name] = current
    return HealthPolicy(table, timeouts, default, where)


def load_policy(policies_dir: Path, default_timeout: float = 5.0) -> HealthPolicy:
    """Read ``<policies_dir>/health.toml`` and the key thresholds of ``rotation.toml``;
    built-in defaults for a file that is absent.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown names, invalid ranges.
    """
    from impromptu_ops.policy.rotation import load_rotation_policy

    rotation = load_rotation_policy(policies_dir)
    path = policies_dir / POLICY_FILE
    raw = files.read_optional(path, what="health policy", limit=files.MAX_POLICY_BYTES,
                              error=ConfigError)
    if raw is None:
        return default_policy(default_timeout, rotation)
    text = files.decode_text(raw, what=f"health policy {path}", error=ConfigError)
    data = files.parse_toml(text, what=f"health policy {path}", error=ConfigError)
    return parse_policy(data, str(path), default_timeout, rotation)
