"""Values of a health run: statuses, performance data, check results, the report.

The states and their order (:class:`Status`, :func:`worst`) live in the policy layer
(:mod:`impromptu_ops.policy.verdict`) and are re-exported here. The overall status of a
report is the *worst* result.

Pure values only; checks live in :mod:`impromptu_ops.health.checks`, rendering in
:mod:`impromptu_ops.health.render`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from impromptu_ops.policy.ranges import NagiosRange
from impromptu_ops.policy.verdict import Status, worst

__all__ = ["CheckResult", "Perf", "Report", "Status", "worst"]


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
