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
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impromptu_ops.errors import ConfigError
from impromptu_ops.health.model import Status
from impromptu_ops.health.ranges import NagiosRange, RangeError

POLICY_FILE = "health.toml"

# The quantities a threshold can apply to, with the built-in defaults used when the policy
# file is absent (the shipped policies/health.toml restates them, with comments).
METRICS: dict[str, tuple[str, str]] = {
    "budget": ("20:", "5:"),  # budget balance, in action units
    "unread": ("0", ""),  # unread notifications: any is a WARNING (the original script's rule)
    "key_age_days": ("~:60", "~:90"),  # days since the platform key was stored
    "key_expiry_days": ("14:", "3:"),  # days until the platform key expires
    "heartbeat_age_seconds": ("~:3600", "~:10800"),  # since the last successful heartbeat
    "store_token_ttl_seconds": ("3600:", "300:"),  # Vault token time to live
    "openrouter_remaining": ("", ""),  # OpenRouter credit left (limit - usage), if limited
}


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
                if not sep or metric not in METRICS:
                    raise ConfigError(
                        f"--{level} {item[:60]!r}: expected METRIC=RANGE with METRIC one of "
                        + ", ".join(sorted(METRICS))
                    )
                current = table.get(metric, Thresholds())
                table[metric] = replace(current, **{level: _range(text, f"--{level} {metric}")})
        return replace(self, thresholds=table, source=f"{self.source} + flags")


    def capped(self, seconds: float) -> HealthPolicy:
        """Every check's timeout at most ``seconds`` (``-t``: the whole run's bound)."""
        return replace(self, default_timeout=min(self.default_timeout, seconds),
                       timeouts={k: min(v, seconds) for k, v in self.timeouts.items()})


def default_policy(default_timeout: float = 5.0) -> HealthPolicy:
    return HealthPolicy(
        thresholds={m: Thresholds(_range(w, m), _range(c, m)) for m, (w, c) in METRICS.items()},
        default_timeout=default_timeout,
    )


def parse_policy(data: Mapping[str, Any], where: str, default_timeout: float = 5.0
                 ) -> HealthPolicy:
    """Build a policy from the decoded TOML ``data``; unknown names are errors."""
    base = default_policy(default_timeout)
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
    """Read ``<policies_dir>/health.toml``; the built-in defaults when it is absent.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown names, invalid ranges.
    """
    path = policies_dir / POLICY_FILE
    if not path.exists():
        return default_policy(default_timeout)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"health policy {path}: {exc}") from None
    return parse_policy(data, str(path), default_timeout)
