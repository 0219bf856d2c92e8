"""Private: check states: the verdict every threshold evaluation returns. Pure values.

States follow the Monitoring Plugins guidelines (OK, WARNING, CRITICAL, UNKNOWN). The worst
of several is ordered OK < WARNING < UNKNOWN < CRITICAL (the service-state severity Icinga
uses): "we could not tell" outranks a warning, and "the platform is down" outranks "we could
not tell". How a state becomes a process exit code is decided by the CLI
(:mod:`impromptu_ops.cli.exitcodes`), not here.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """A check state. The integers are the Monitoring Plugins' state numbers (also the
    ``code`` field of the JSON report and the Prometheus gauge's value)."""

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
