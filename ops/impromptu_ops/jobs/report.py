"""Private: the heartbeat's report: what one run did, and its renderings (lines, metrics).

Values and pure functions only: :class:`HeartbeatReport` is built by
:mod:`impromptu_ops.jobs.heartbeat`; :func:`lines` is the human output, :func:`samples` the
Prometheus textfile samples. Nothing here calls the platform or writes a file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from impromptu_ops.secret import clip

MAX_NOTE_CHARS = 300


@dataclass(frozen=True)
class Step:
    name: str
    status: str  # ok | warn | fail | skipped
    summary: str
    code: str | None = None


@dataclass(frozen=True)
class HeartbeatReport:
    started_at: float
    duration: float
    exit_code: int
    outcome: str  # ok | failed | skipped
    steps: tuple[Step, ...] = ()
    agent: dict[str, Any] = field(default_factory=dict)
    new_notifications: tuple[dict[str, Any], ...] = ()
    budget: dict[str, Any] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    skip_until: float | None = None
    skip_reason: str | None = None
    # what the drop-in scripts/heartbeat prints (the original lists every unread
    # notification on every run, and the pending credits and recommendation count)
    unread_notifications: tuple[dict[str, Any], ...] = ()
    wallet: dict[str, Any] = field(default_factory=dict)
    recommendation_count: int | None = None
    skill: dict[str, Any] = field(default_factory=dict)
    heartbeat_raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # as received

    def to_json(self) -> dict[str, Any]:
        """One JSON line per run (``--json``); times in RFC 3339 UTC."""
        def ts(t: float | None) -> str | None:
            return None if t is None else datetime.fromtimestamp(t, UTC).isoformat().replace(
                "+00:00", "Z")

        return {
            "ts": ts(self.started_at), "durationSeconds": round(self.duration, 3),
            "exitCode": self.exit_code, "outcome": self.outcome,
            "steps": [{"name": s.name, "status": s.status, "summary": s.summary,
                       **({"code": s.code} if s.code else {})} for s in self.steps],
            "agent": self.agent, "newNotifications": list(self.new_notifications),
            "budget": self.budget, "problems": list(self.problems),
            "skipUntil": ts(self.skip_until), "skipReason": self.skip_reason,
            "skill": self.skill,
        }


def _clean(text: str | None, limit: int = MAX_NOTE_CHARS) -> str:
    """Remote text, made safe for a terminal or a log line (no control characters)."""
    if not text:
        return ""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return clip(cleaned, limit)  # redacted before it is cut


def samples(report: HeartbeatReport) -> list[Any]:
    """The run as Prometheus samples for the textfile collector."""
    from impromptu_ops.metrics import Sample

    out = [
        Sample("impromptu_heartbeat_last_run_timestamp_seconds", report.started_at,
               "When the last heartbeat run started."),
        Sample("impromptu_heartbeat_exit_code", report.exit_code,
               "Exit code of the last run (0 ok, 75 skipped, else failed)."),
        Sample("impromptu_heartbeat_duration_seconds", round(report.duration, 3),
               "How long the last run took."),
        Sample("impromptu_heartbeat_problems", len(report.problems),
               "Missing or null fields in the last run's answers."),
        Sample("impromptu_heartbeat_new_notifications", len(report.new_notifications),
               "Notifications reported for the first time by the last run."),
    ]
    if report.outcome == "ok":
        out.append(Sample("impromptu_heartbeat_last_success_timestamp_seconds",
                          report.started_at, "When the last successful heartbeat started."))
    for key, name, text in (("budgetBalance", "impromptu_budget_balance", "Budget balance."),
                            ("reputation", "impromptu_reputation", "Agent reputation."),
                            ("unread", "impromptu_unread_notifications", "Unread count.")):
        value = report.agent.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append(Sample(name, float(value), text))
    if isinstance(report.budget.get("trendPerHour"), int | float):
        out.append(Sample("impromptu_budget_trend_per_hour", report.budget["trendPerHour"],
                          "Budget change per hour over the last hours."))
    if report.skip_until:
        out.append(Sample("impromptu_heartbeat_paused_until_timestamp_seconds",
                          report.skip_until, "The job does not call the platform before this."))
    return out


_TAGS = {"ok": "[OK]", "warn": "[WARN]", "fail": "[FAIL]", "skipped": "[SKIP]"}


def lines(report: HeartbeatReport) -> list[str]:
    """The original script's lines: ``[OK] heartbeat: ...``, one per step, notifications
    indented under their step, then problems as ``[WARN]`` lines."""
    out: list[str] = []
    for step in report.steps:
        out.append(f"{_TAGS.get(step.status, '[WARN]')} {step.name}: {step.summary}")
        if step.name == "notifications":
            out += [f"  - {n.get('type') or '?'} {_clean(n.get('id'), 80) or '?'}: "
                    f"{n.get('message') or ''}" for n in report.new_notifications]
    out += [f"[WARN] problem: {_clean(p, 160)}" for p in report.problems]
    return out


__all__ = ["HeartbeatReport", "Step", "lines", "samples"]
