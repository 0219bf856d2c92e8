"""Private: ``fleet health``: every agent's health checks in one run, and the fleet's verdict.

Each agent gets the checks of ``impromptu-ops health`` with its own settings (its keys,
state folder, wallet, ``[agents.NAME]`` values). Agents run concurrently on the fleet pool
(:mod:`.run`, ``fleet.concurrency`` agents at once); inside one agent the checks run
concurrently as in ``health``; across the whole run at most ``fleet.max_requests`` platform
requests are in flight (a semaphore around the checks' HTTP GETs). Rate limits are each
agent's own: a 429 is that agent's WARNING (no retry, no sleep), and its neighbours are
not slowed. An agent whose checks do not finish within its policy's longest timeout (plus
a second) is UNKNOWN, and the run goes on.

The verdict is the worst agent's (OK < WARNING < UNKNOWN < CRITICAL). Renderers are pure:
text (one row per agent), Nagios (one line naming the failing agents, perfdata per agent),
JSON, Prometheus (every sample labelled ``agent``).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from impromptu_ops.fleet.run import AgentRun, run_each
from impromptu_ops.health.model import CheckResult, Report, Status, worst
from impromptu_ops.health.policy import HealthPolicy
from impromptu_ops.settings import Settings

FORMATS = ("text", "nagios", "json", "prometheus")
SERVICE = "IMPROMPTU FLEET"


@dataclass(frozen=True)
class FleetHealth:
    """One report per agent, in roster order."""

    reports: tuple[tuple[str, Report], ...]
    duration: float = 0.0

    @property
    def status(self) -> Status:
        return worst(tuple(r.status for _, r in self.reports))


def _bounded_context(settings: Settings, policy: HealthPolicy, gate: threading.Semaphore
                     ) -> Any:
    """The checks' context for one agent, its store owned by that agent's
    :class:`~impromptu_ops.api.Agent`, its HTTP GETs counted against the fleet's gate."""
    from impromptu_ops.api import Agent
    from impromptu_ops.health.checks import HealthContext

    agent = Agent.from_settings(settings)

    class Bounded(HealthContext):
        def get(self, url: str, timeout: float, bearer: Any = None) -> Any:
            with gate:
                return super().get(url, timeout, bearer)

    return Bounded(settings, policy, open_store=lambda: agent.store)


def run_fleet_health(base: Settings, names: Sequence[str], policy: HealthPolicy,
                     checks: tuple[str, ...] = (), *, max_requests: int | None = None
                     ) -> FleetHealth:
    """Run every agent's checks (the library entry point of ``fleet health``).

    Args:
        base: the settings before an agent is selected (``App.file_settings``).
        names: the agents to check (the roster, or this process's shard of it).
        policy: the health policy (thresholds, timeouts) shared by the fleet.
        checks: only these checks (default: all).
        max_requests: platform requests in flight at once (default ``fleet.max_requests``).

    Raises:
        ConfigError: an unknown check name (before any agent runs).
    """
    import time

    from impromptu_ops.fleet.roster import agent_settings
    from impromptu_ops.health.checks import plan
    from impromptu_ops.health.runner import run_checks

    gate = threading.Semaphore(max_requests or base.fleet.max_requests)
    specs = plan(_bounded_context(base, policy, gate), checks)  # an unknown name: raise now
    deadline = max((spec.timeout for spec in specs), default=1.0) + 1.0
    started = time.monotonic()

    def one(name: str) -> Report:
        ctx = _bounded_context(agent_settings(base, name), policy, gate)
        return run_checks(plan(ctx, checks))

    runs = run_each(list(names), one, concurrency=base.fleet.concurrency, deadline=deadline)
    return FleetHealth(tuple((r.agent, _report_of(r)) for r in runs),
                       duration=time.monotonic() - started)


def _report_of(run: AgentRun[Report]) -> Report:
    if run.value is not None:
        return run.value
    why = run.error.diagnostics() if run.error is not None else "not run"
    return Report((CheckResult("fleet", Status.UNKNOWN, why, duration=run.duration),),
                  duration=run.duration)


# --- rendering (pure) -------------------------------------------------------------------

def exit_code(fleet: FleetHealth) -> int:
    """Nagios codes: the worst agent's status (an empty fleet is UNKNOWN: nothing checked)."""
    return int(fleet.status) if fleet.reports else int(Status.UNKNOWN)


def _one_line(text: str) -> str:
    from impromptu_ops.health.render import _one_line as clean

    return clean(text)


def _first_problem(report: Report) -> str:
    problems = report.problems()
    return f"{problems[0].name}: {problems[0].summary}" if problems else "OK"


def nagios(fleet: FleetHealth) -> str:
    """``IMPROMPTU FLEET CRITICAL - 1/3 agents CRITICAL: bob (platform_key: refused...);
    WARNING: alice | 'bob::status'=2;1;2;0;3 'bob::budget'=...``"""
    from impromptu_ops.health.render import _perf

    if not fleet.reports:
        return f"{SERVICE} UNKNOWN - no agents in this fleet (or this shard)"
    total = len(fleet.reports)
    parts = []
    for status in (Status.CRITICAL, Status.UNKNOWN, Status.WARNING):
        bad = [(n, r) for n, r in fleet.reports if r.status is status]
        if bad:
            shown = ", ".join(f"{n} ({_first_problem(r)})" for n, r in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            parts.append(f"{status.name}: {shown}{more}")
    ok = sum(1 for _, r in fleet.reports if r.status is Status.OK)
    summary = f"{total - ok}/{total} agents not OK; " + "; ".join(parts) if parts \
        else f"{total} agents OK"
    perf = []
    for name, report in fleet.reports:
        perf.append(f"'{name}::status'={int(report.status)};1;2;0;3")
        perf += [_perf(p).replace("'", f"'{name}::", 1)
                 for r in report.results for p in r.perf]
    return f"{SERVICE} {fleet.status.name} - {_one_line(summary)} | " + " ".join(perf)


def text(fleet: FleetHealth) -> str:
    """A table for a person, one row per agent, then the fleet's verdict."""
    rows = [("agent", "status", "time", "first problem")]
    rows += [(n, r.status.name, f"{r.duration * 1000:.0f} ms", _one_line(_first_problem(r)))
             for n, r in fleet.reports]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
             + "  " + row[3] for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  -------------")
    lines += ["", f"overall: {fleet.status.name} ({len(fleet.reports)} agents, "
                  f"{fleet.duration * 1000:.0f} ms)"]
    return "\n".join(line.rstrip() for line in lines)


def as_json(fleet: FleetHealth) -> str:
    from impromptu_ops.health.render import _check_json

    return json.dumps(
        {"status": fleet.status.name, "code": exit_code(fleet),
         "durationSeconds": round(fleet.duration, 4),
         "agents": [{"agent": n, "status": r.status.name, "code": int(r.status),
                     "checks": [_check_json(c) for c in r.results]}
                    for n, r in fleet.reports]},
        sort_keys=True, default=str, ensure_ascii=False)


def prometheus(fleet: FleetHealth) -> str:
    """The ``health`` metrics, each sample labelled ``agent``."""
    from impromptu_ops.health.render import _metric_name
    from impromptu_ops.metrics import Sample
    from impromptu_ops.metrics import render as render_samples

    codes = "(0 ok, 1 warning, 2 critical, 3 unknown)"
    samples = [Sample("impromptu_health_status", int(r.status), f"Overall health {codes}.",
                      labels={"agent": n}) for n, r in fleet.reports]
    samples += [Sample("impromptu_health_check_status", int(c.status),
                       f"Status per check {codes}.", labels={"agent": n, "check": c.name})
                for n, r in fleet.reports for c in r.results]
    samples += [Sample("impromptu_health_check_duration_seconds", round(c.duration, 6),
                       "Time each check took.", labels={"agent": n, "check": c.name})
                for n, r in fleet.reports for c in r.results]
    samples += [Sample("impromptu_health_value", p.value,
                       "Measured values (perfdata), by check and metric.",
                       labels={"agent": n, "check": c.name, "metric": _metric_name(p.label)})
                for n, r in fleet.reports for c in r.results for p in c.perf
                if not math.isnan(p.value)]
    return render_samples(samples)


def render(fleet: FleetHealth, fmt: str) -> str:
    if fmt == "nagios":
        return nagios(fleet)
    if fmt == "json":
        return as_json(fleet)
    if fmt == "prometheus":
        return prometheus(fleet).rstrip("\n")
    return text(fleet)
