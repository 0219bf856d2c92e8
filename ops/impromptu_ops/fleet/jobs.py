"""Private: ``fleet heartbeat`` and ``fleet rotate --if-due``, once for the whole fleet.

Heartbeat: each agent runs the ordinary heartbeat job with its own settings, so each keeps
its own lock and state file (``<state_dir>/agents/NAME/``), its own once-only notification
memory and its own RATE_003/BUDG_001 pause: a paused agent is skipped (exit 75) while the
others run. Each agent's run is bounded by its own ``jobs.heartbeat_deadline``; the fleet
pool (:mod:`.run`) moves on past an agent that overruns it. Pings: an agent whose
``jobs.ping_url`` is its own (set in its ``[agents.NAME.jobs]`` table, or containing
``{agent}``) is pinged per agent (start, then success, skipped or fail); the fleet run as
a whole pings ``jobs.ping_url`` with ``{job}`` = ``fleet-heartbeat`` (the CLI's job
wrapper). Metrics: one textfile for the fleet, every sample labelled ``agent``.

Rotation: ``rotate PROVIDER --if-due`` per agent (finish an interrupted rotation or a due
retirement first, rotate only a key past the policy's age), with the same crash-safety per
agent (its own record in its own store path, its own lock and audit log in its own state
folder). The first agent is a canary: it runs alone, and when its rotation fails nothing
else is started.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impromptu_ops.errors import EXIT_SKIPPED
from impromptu_ops.fleet.run import AgentRun, run_each
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.rotation.outcome import Verdict

AGENT_PLACEHOLDER = "{agent}"
HEARTBEAT_SLACK = 5.0  # seconds past an agent's own deadline before it counts as overrun


def _own_ping_url(settings: Settings, name: str) -> str:
    url = settings.jobs.ping_url
    if not url:
        return ""
    if AGENT_PLACEHOLDER in url:
        return url.replace(AGENT_PLACEHOLDER, name).replace("{job}", "heartbeat")
    if "[agents." in settings.sources.get("jobs.ping_url", ""):
        return url.replace("{job}", "heartbeat")
    return ""  # the shared URL: the fleet run's own ping, never one agent's


def _heartbeat_one(settings: Settings, name: str) -> Any:
    from impromptu_ops.api import Agent
    from impromptu_ops.jobs.ping import Pinger
    from impromptu_ops.secret import REDACTOR

    own_metrics = "[agents." in settings.sources.get("jobs.metrics_file", "")
    if not own_metrics:  # the fleet writes one labelled file instead of N clashing ones
        settings = dataclasses.replace(
            settings, jobs=dataclasses.replace(settings.jobs, metrics_file=None))
    url = _own_ping_url(settings, name)
    pinger = Pinger.from_settings(url, settings.jobs) if url else None
    if pinger:
        pinger.start()
    try:
        report = Agent.from_settings(settings).heartbeat()
    except Exception as exc:
        if pinger:
            text = exc.diagnostics() if hasattr(exc, "diagnostics") else type(exc).__name__
            pinger.fail(getattr(exc, "exit_code", 70), REDACTOR.redact(str(text)))
        raise
    if pinger:
        from impromptu_ops.jobs.heartbeat import lines

        body = "\n".join(lines(report))
        if report.exit_code == EXIT_SKIPPED:
            pinger.skipped(report.skip_reason or (body.splitlines()[-1] if body else ""))
        elif report.exit_code == 0:
            pinger.success(body)
        else:
            pinger.fail(report.exit_code, body)
    return report


def fleet_heartbeat(base: Settings, names: Sequence[str]) -> list[AgentRun[Any]]:
    """One heartbeat per agent (see the module docstring); outcomes in roster order."""
    from impromptu_ops.roster import agent_settings

    settings = {n: agent_settings(base, n) for n in names}
    deadline = max((s.jobs.heartbeat_deadline for s in settings.values()), default=1.0)
    return run_each(list(names), lambda n: _heartbeat_one(settings[n], n),
                    concurrency=base.fleet.concurrency, deadline=deadline + HEARTBEAT_SLACK)


def heartbeat_code(run: AgentRun[Any]) -> int:
    if run.error is not None:
        return run.error.exit_code
    return int(run.value.exit_code) if run.value is not None else EXIT_SKIPPED


def write_fleet_metrics(path: Path, runs: Sequence[AgentRun[Any]]) -> None:
    """The heartbeat samples of every agent that ran, each labelled ``agent``, atomically."""
    from impromptu_ops.jobs.heartbeat import samples
    from impromptu_ops.metrics import Sample, write_textfile

    out: list[Sample] = []
    for run in runs:
        if run.value is None:
            out.append(Sample("impromptu_heartbeat_exit_code", heartbeat_code(run),
                              "Exit code of the last run (0 ok, 75 skipped, else failed).",
                              labels={"agent": run.agent}))
            continue
        out += [dataclasses.replace(s, labels={**s.labels, "agent": run.agent})
                for s in samples(run.value)]
    out.sort(key=lambda s: s.name)  # one HELP/TYPE block per family
    write_textfile(path, out)


# --- rotation -----------------------------------------------------------------------------

ROTATE_PROVIDERS = ("impromptu",)  # what the scheduled `rotate impromptu --if-due` rotates


def _rotate_one(settings: Settings, providers: Sequence[str]) -> list[Any]:
    from impromptu_ops.api import Agent

    agent = Agent.from_settings(settings)
    return [agent.rotate(p, if_due=True) for p in providers]


def rotate_failed(run: AgentRun[list[Any]]) -> bool:
    """An agent's rotation failed: an error, or an outcome that is not done."""
    if run.error is not None or run.value is None:
        return True
    return any(not o.ok for o in run.value)


def fleet_rotate(base: Settings, names: Sequence[str], providers: Sequence[str] = ROTATE_PROVIDERS,
                 *, canary: bool = True) -> list[AgentRun[list[Any]]]:
    """``rotate PROVIDER --if-due`` for every agent, the first alone as a canary.

    Returns:
        One run per agent; after a failed canary the others are ``skipped`` (not started).
    """
    from impromptu_ops.roster import agent_settings

    return run_each(list(names), lambda n: _rotate_one(agent_settings(base, n), providers),
                    concurrency=base.fleet.concurrency, deadline=base.fleet.rotate_deadline,
                    canary=canary, failed=rotate_failed)


def rotate_verdict(run: AgentRun[list[Any]]) -> Verdict:
    """One agent's rotation verdict: a skipped agent (after a failed canary) did nothing."""
    from impromptu_ops.rotation.outcome import Verdict, try_later
    from impromptu_ops.rotation.service import combined

    if run.skipped:
        return Verdict.DONE
    if run.error is not None:
        return Verdict.BUSY if try_later(run.error) else Verdict.FAILED_SAFE
    return combined(list(run.value or []))


def fleet_rotate_verdict(runs: Sequence[AgentRun[list[Any]]]) -> Verdict:
    """The fleet's verdict: the worst agent's; a stopped run (failed canary) is at least
    FAILED_SAFE. The CLI maps it to ``rotate``'s codes (cli/exitcodes.py)."""
    from impromptu_ops.rotation.outcome import Verdict, worst

    verdict = worst([rotate_verdict(r) for r in runs]) if runs else Verdict.DONE
    if any(r.skipped for r in runs) and verdict is Verdict.DONE:
        return Verdict.FAILED_SAFE
    return verdict
