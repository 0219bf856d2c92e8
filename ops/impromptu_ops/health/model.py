"""Values of a health run: statuses, performance data, check results, the report.

Status codes follow the Monitoring Plugins guidelines (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN). The overall status of a report is the *worst* result, ordered
OK < WARNING < UNKNOWN < CRITICAL (the service-state severity Icinga uses): "we could not
tell" outranks a warning, and "the platform is down" outranks "we could not tell".

Pure values only; checks live in :mod:`impromptu_ops.health.checks`, rendering in
:mod:`impromptu_ops.health.render`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from impromptu_ops.health.ranges import NagiosRange


class Status(enum.IntEnum):
    """A check state; the integer is the Nagios plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most severe status (OK for an empty list)."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


@dataclass(frozen=True)
class Perf:
    """One performance-data point: ``'label'=value[uom];[warn];[crit];[min];[max]``."""

    label: str
    value: float
    uom: str = ""
    warning: NagiosRange | None = None
    critical: NagiosRange | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: the check's stable name (``platform``, ``budget``...), also its metric label.
        status: the verdict.
        summary: one short line for a person (no secrets: built from names and numbers).
        perf: performance data, if the check measures something.
        duration: seconds the check took (filled by the runner).
    """

    name: str
    status: Status
    summary: str
    perf: tuple[Perf, ...] = ()
    duration: float = 0.0
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    """All results of one run, in the order the checks were declared."""

    results: tuple[CheckResult, ...]
    duration: float = 0.0

    @property
    def status(self) -> Status:
        return worst(tuple(r.status for r in self.results))

    def problems(self) -> tuple[CheckResult, ...]:
        """Results that are not OK, most severe first (stable within a severity)."""
        bad = [r for r in self.results if r.status is not Status.OK]
        return tuple(sorted(bad, key=lambda r: -r.status.severity))
