"""The scheduled heartbeat: check in, report what is new, keep state, never crash.

The sequence is the original ``heartbeat.sh``'s — heartbeat; notifications when
``unreadNotifications > 0`` (or unknown); wallet sync; recommendations; budget with a
low-budget warning — then, at most once a day, a look at the platform's skill manifest
(:mod:`.skillcheck`: a newer version is reported as waiting for review, never installed),
made trustworthy for schedulers:

- one run at a time: a non-blocking :class:`~impromptu_ops.locks.ProcessLock` (busy -> 75);
- the key comes from the secret store, never the environment;
- every call retries with full jitter (the client's job) under ONE overall deadline
  (``jobs.heartbeat_deadline``, below the unit's ``TimeoutStartSec``);
- ``RATE_003`` (daily quota) and ``BUDG_001`` (budget) pause the job until the quota
  resets (``X-RateLimit-Reset``/``Retry-After``; budget regenerates hourly): later runs
  exit 75 without calling the platform until then;
- state (last run, last success, notification ids already reported, budget samples, the
  pause) is written atomically, so each notification is reported once across runs;
- null or missing fields are *reported* (``problems``), never fatal; a notification that
  says "error" is just a notification.

Exit codes (documented for systemd/cron/Kubernetes; the drop-in ``scripts/heartbeat``
maps every failure to the original's 1 and a skipped run to 0, see
:mod:`impromptu_ops.legacy.heartbeat`):

====  ===========================================================================
0     the heartbeat succeeded (later steps may carry warnings, listed in the output)
1     the heartbeat failed for another reason (e.g. the key is not in the store)
65    the platform's answer was malformed or hostile (not retried)
69    the platform or the store was unavailable (network, 5xx) after retries
75    skipped: another run holds the lock, or paused by RATE_003/BUDG_001/RATE_001
77    the platform refused the key (UNAUTHORIZED, ACCOUNT_NOT_ACTIVE, AUTHZ_001)
78    configuration error (raised before the job starts)
====  ===========================================================================

The job returns a :class:`HeartbeatReport`; it never prints (the CLI renders it).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from impromptu_ops.contract import IMPROMPTU_API_KEY
from impromptu_ops.errors import (
    BudgetExhausted,
    ConfigError,
    DeadlineExceeded,
    LockBusy,
    OpsError,
    PlatformError,
    RateLimited,
    SecretNotFound,
)
from impromptu_ops.jobs import state as state_mod
from impromptu_ops.jobs.state import HeartbeatState
from impromptu_ops.secret import clip
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.platform.client import PlatformClient
    from impromptu_ops.secret import Secret

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Answer(Protocol):
    """A typed platform answer that lists the fields it found missing or null."""

    @property
    def problems(self) -> Sequence[str]: ...


R = TypeVar("R", bound=_Answer)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_SKIPPED = 75
LOCK_FILE = "heartbeat.lock"
BUDGET_REGEN_SECONDS = 3600.0  # [doc] budget regenerates hourly
MIN_STEP_SECONDS = 1.0  # do not start a step with less time left than this
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


def _next_midnight_utc(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def pause_for(exc: PlatformError, now: float, longest: float = 48 * 3600.0
              ) -> tuple[float, str] | None:
    """When the contract says "do not come back before T": ``(T, reason)``; else None.

    RATE_003 waits until ``X-RateLimit-Reset`` (the client puts the wait in
    ``retry_after``), else midnight UTC, when the daily quota resets [doc]. BUDG_001 waits
    one hour: the budget regenerates hourly [doc]. RATE_001 (burst) is the client's to
    retry; when it outlasts the deadline the run is skipped without a pause.
    """
    if isinstance(exc, RateLimited) and exc.daily:
        wait = exc.retry_after
        # a reset time no quota needs (or not a number at all) is not trusted: `longest`
        until = now + min(wait, longest) if wait and math.isfinite(wait) and wait > 0 \
            else _next_midnight_utc(now)
        return until, "RATE_003 daily quota used"
    if isinstance(exc, BudgetExhausted):
        return now + BUDGET_REGEN_SECONDS, "BUDG_001 out of budget"
    return None


ClientFactory = Callable[["Secret", float], "PlatformClient"]
"""Builds a platform client for one step from the key and the seconds left of the job."""


class HeartbeatJob:
    """One run of the heartbeat.

    The job builds nothing itself: the composition root (:class:`impromptu_ops.api.Agent`)
    hands it the key and the clients.

    Args:
        settings: the effective settings.
        client_factory: builds a platform client for one step, given the key and the
            seconds left (the client's ``platform.deadline`` capped to them).
        key_loader: returns the platform key (raises SecretNotFound when none is stored).
        wall, clock: injected wall clock and monotonic clock.
    """

    def __init__(self, settings: Settings, *, client_factory: ClientFactory,
                 key_loader: Callable[[], Secret],
                 wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._client_factory = client_factory
        self._key_loader = key_loader
        self._key: Secret | None = None
        self.wall = wall
        self.clock = clock

    # --- the run -------------------------------------------------------------------------------
    def run(self, on_locked: Callable[[], object] | None = None) -> HeartbeatReport:
        """Take the lock and run; raises nothing but LockBusy (and ConfigError early).

        Args:
            on_locked: called once the lock is held, before any platform call (the
                healthchecks ``/start`` ping: a run that finds the lock busy sends none).
        """
        from impromptu_ops.atomic import private_dir
        from impromptu_ops.locks import ProcessLock

        deadline = self.settings.jobs.heartbeat_deadline
        if not deadline > MIN_STEP_SECONDS:
            raise ConfigError(f"setting jobs.heartbeat_deadline: {deadline} s leaves no time "
                              f"for a call (more than {MIN_STEP_SECONDS:g} s needed)")
        state_dir = self.settings.paths.state_dir
        try:
            private_dir(state_dir)
            lock = ProcessLock(state_dir / LOCK_FILE, "heartbeat")
            lock.acquire()  # LockBusy (exit 75) passes through
        except OSError as exc:
            raise ConfigError(f"cannot use the state folder {state_dir}: "
                              f"{exc.strerror or type(exc).__name__}",
                              hint="check paths.state_dir (env IMPROMPTU_PATHS_STATE_DIR)"
                              ) from None
        try:
            if on_locked is not None:
                on_locked()
            return self._run_locked()
        finally:
            lock.release()

    def _run_locked(self) -> HeartbeatReport:
        started_wall, started = self.wall(), self.clock()
        deadline = started + self.settings.jobs.heartbeat_deadline
        path = state_mod.state_path(self.settings.paths.state_dir)
        st = state_mod.load(path)
        problems: list[str] = list(st.problems)
        steps: list[Step] = []

        def finish(exit_code: int, outcome: str, new_state: HeartbeatState, **kw: Any
                   ) -> HeartbeatReport:
            new_state = replace(new_state, last_run_at=started_wall, last_exit=exit_code)
            try:
                state_mod.save(path, new_state)
            except OSError as exc:
                problems.append(f"cannot save state: {exc.strerror}")
            return HeartbeatReport(started_wall, self.clock() - started, exit_code, outcome,
                                   tuple(steps), problems=tuple(problems),
                                   skip_until=new_state.skip_until,
                                   skip_reason=new_state.skip_reason, **kw)

        longest = self.settings.jobs.max_pause_seconds
        if st.skip_until is not None and st.skip_until > started_wall + longest:
            # a pause no platform answer can ask for: a hostile or corrupt state file would
            # otherwise stop every later run (a freeze); ignore it and say so
            problems.append(f"ignored a pause longer than jobs.max_pause_seconds ({longest:g}s)")
            st = replace(st, skip_until=None, skip_reason=None)
        if st.skip_until is not None and st.skip_until > started_wall:
            when = datetime.fromtimestamp(st.skip_until, UTC).strftime("%Y-%m-%d %H:%M UTC")
            steps.append(Step("heartbeat", "skipped", f"paused until {when} ({st.skip_reason})"))
            return finish(EXIT_SKIPPED, "skipped", st)
        st = replace(st, skip_until=None, skip_reason=None)

        try:
            self._key = self._key_loader()
        except OpsError as exc:
            missing = isinstance(exc, SecretNotFound)
            steps.append(Step("heartbeat", "fail", f"{IMPROMPTU_API_KEY} is not in the store "
                              "(next: `impromptu-ops register` creates the agent and stores it; "
                              f"an existing key: `impromptu-ops secrets put {IMPROMPTU_API_KEY}`)"
                              if missing else f"cannot read the key: {exc.diagnostics()}"))
            return finish(EXIT_FAILED if missing else exc.exit_code, "failed", st)

        def call(name: str, fn: Callable[[PlatformClient], T]) -> T:
            left = deadline - self.clock()
            if left < MIN_STEP_SECONDS:
                raise DeadlineExceeded(f"{name}: the job's deadline is used up")
            assert self._key is not None  # loaded before the first call
            client = self._client_factory(self._key, left)
            try:
                return fn(client)
            finally:
                client.close()

        # 1. heartbeat (required)
        try:
            hb = call("heartbeat", lambda c: c.heartbeat())
        except OpsError as exc:
            return self._failed_first(exc, st, steps, finish)
        problems += hb.problems
        agent = {"agentId": hb.agent_id, "name": hb.name, "tier": hb.tier,
                 "reputation": hb.reputation, "tokenBalance": hb.token_balance,
                 "budgetBalance": hb.budget_balance, "unread": hb.unread_notifications}
        who = f"{_clean(hb.name, 80) or '?'} ({_clean(hb.tier, 40) or '?'})"
        steps.append(Step("heartbeat", "ok" if not hb.problems else "warn",
                          f"{who}, reputation {_show(hb.reputation)}, tokens "
                          f"{_show(hb.token_balance)}, budget {_show(hb.budget_balance)}"))
        st = replace(st, last_success_at=started_wall)
        fresh: list[Any] = []
        listed: list[dict[str, Any]] = []
        budget: dict[str, Any] = {}
        pause: tuple[float, str] | None = None

        def later(name: str, fn: Callable[[PlatformClient], R]) -> R | None:
            nonlocal pause
            if pause is not None:
                steps.append(Step(name, "skipped", "paused"))
                return None
            try:
                value = call(name, fn)
                problems.extend(value.problems)
                return value
            except PlatformError as exc:
                pause = pause_for(exc, self.wall(), self.settings.jobs.max_pause_seconds)
                steps.append(Step(name, "warn", _clean(exc.diagnostics(), 160), exc.code))
            except OpsError as exc:
                steps.append(Step(name, "warn", _clean(exc.diagnostics(), 160)))
            return None

        # 2. notifications, when there are unread ones (or the count is unknown)
        if hb.unread_notifications is None or hb.unread_notifications > 0:
            notes = later("notifications", lambda c: c.notifications(unread=True))
            if notes is not None:
                items = [{"id": n.id, "type": _clean(n.type, 40), "message": _clean(n.message),
                          "createdAt": n.created_at} for n in notes.notifications]
                listed = items
                fresh, st = state_mod.fresh_notifications(st, items)
                status = "warn" if fresh else "ok"
                steps.append(Step("notifications", status,
                                  f"{len(fresh)} new of {len(items)} unread"))
        else:
            steps.append(Step("notifications", "ok", "none unread"))

        # 3. wallet sync (an idempotency key makes a resend after a timeout safe)
        wallet = later("wallet", lambda c: c.wallet_sync(idempotency_key=uuid.uuid4().hex))
        wallet_info: dict[str, Any] = {}
        if wallet is not None:
            wallet_info = {"available": wallet.available,
                           "pendingCredits": wallet.pending_credits}
            steps.append(Step("wallet", "ok", f"synced: available {_show(wallet.available)}, "
                              f"pending {_show(wallet.pending_credits)}"))

        # 4. recommendations
        recs = later("recommendations", lambda c: c.recommendations())
        rec_count = None if recs is None else len(recs.recommendations)
        if recs is not None:
            steps.append(Step("recommendations", "ok",
                              f"{len(recs.recommendations)} recommendations"))

        # 5. budget, with the trend and the low-budget warning
        bud = later("budget", lambda c: c.budget())
        if bud is not None:
            budget, st, step = self._budget_step(bud, st, started_wall)
            steps.append(step)

        # 6. at most once a day: is a newer skill waiting for review? (installs nothing)
        skill = {} if pause is not None else self._skill_step(steps, deadline)

        extra: dict[str, Any] = {
            "agent": agent, "new_notifications": tuple(fresh), "budget": budget,
            "unread_notifications": tuple(listed), "wallet": wallet_info,
            "recommendation_count": rec_count, "skill": skill, "heartbeat_raw": hb.raw}
        if pause is not None:
            st = replace(st, skip_until=pause[0], skip_reason=pause[1])
            return finish(EXIT_SKIPPED, "skipped", st, **extra)
        return finish(EXIT_OK, "ok", st, **extra)

    def _skill_step(self, steps: list[Step], deadline: float) -> dict[str, Any]:
        from impromptu_ops.jobs import skillcheck

        left = deadline - self.clock()
        if left < MIN_STEP_SECONDS:
            steps.append(Step("skill", "skipped", "no time left in the job's deadline"))
            return {}
        try:
            check, fresh = skillcheck.check_if_due(self.settings, self.wall(), left)
        except OpsError as exc:
            steps.append(Step("skill", "warn", "cannot check the platform's skill manifest: "
                              + _clean(exc.diagnostics(), 160)))
            return {}
        when = "" if fresh else " (checked " + datetime.fromtimestamp(
            check.checked_at, UTC).strftime("%Y-%m-%d %H:%M UTC") + ")"
        steps.append(Step("skill", "warn" if check.newer_waiting else "ok",
                          check.summary() + when))
        return {**check.to_json(), "newerWaiting": check.newer_waiting}

    def _failed_first(self, exc: OpsError, st: HeartbeatState, steps: list[Step],
                      finish: Callable[..., HeartbeatReport]) -> HeartbeatReport:
        code = exc.code if isinstance(exc, PlatformError) else None
        longest = self.settings.jobs.max_pause_seconds
        pause = pause_for(exc, self.wall(), longest) if isinstance(exc, PlatformError) else None
        if pause is not None:
            steps.append(Step("heartbeat", "skipped", _clean(exc.diagnostics(), 160), code))
            return finish(EXIT_SKIPPED, "skipped",
                          replace(st, skip_until=pause[0], skip_reason=pause[1]))
        if isinstance(exc, RateLimited):  # burst limit outlasted the deadline: try later
            steps.append(Step("heartbeat", "skipped", _clean(exc.diagnostics(), 160), code))
            return finish(EXIT_SKIPPED, "skipped", st)
        steps.append(Step("heartbeat", "fail", _clean(exc.diagnostics(), 200), code))
        return finish(exc.exit_code, "failed", st)

    def _budget_step(self, bud: Any, st: HeartbeatState, now: float
                     ) -> tuple[dict[str, Any], HeartbeatState, Step]:
        from impromptu_ops.health.model import Status
        from impromptu_ops.health.policy import default_policy, evaluate, load_policy

        if bud.balance is None:
            return {}, st, Step("budget", "warn", "the answer has no balance")
        st = state_mod.add_budget_sample(st, now, float(bud.balance))
        trend = state_mod.budget_trend_per_hour(st.budget_samples)
        note = ""
        try:
            policy = load_policy(self.settings.paths.policies_dir)
        except OpsError as exc:  # still warn on the built-in thresholds, and say why
            policy = default_policy()
            note = f" (policy unreadable, built-in thresholds used: {_clean(exc.message, 80)})"
        verdict = evaluate(float(bud.balance), policy.for_metric("budget"))
        low = verdict is not Status.OK
        info = {"balance": bud.balance, "max": bud.max_balance,
                "regenerationRate": bud.regeneration_rate, "trendPerHour":
                None if trend is None else round(trend, 3), "low": low}
        of = f" of {_show(bud.max_balance)}" if bud.max_balance is not None else ""
        slope = f", {trend:+.1f}/h" if trend is not None else ""
        text = f"{'low: ' if low else ''}{_show(bud.balance)}{of}{slope}{note}"
        return info, st, Step("budget", "warn" if low or note else "ok", text)


def _show(value: Any) -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)



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


def run_scheduled(settings: Settings, *, client_factory: ClientFactory,
                  key_loader: Callable[[], Secret], metrics_file: Path | None = None
                  ) -> HeartbeatReport:
    """A scheduled run: run, write the textfile.

    ``metrics_file`` defaults to ``jobs.metrics_file``. A busy lock is reported as a skipped
    run (exit 75) without state or textfile: the run that holds the lock owns both. Pings
    are not sent here: every scheduled job pings through one wrapper
    (:mod:`impromptu_ops.cli.jobrun`, :mod:`impromptu_ops.jobs.ping`).
    """
    metrics_file = metrics_file or settings.jobs.metrics_file

    job = HeartbeatJob(settings, client_factory=client_factory, key_loader=key_loader)
    try:
        report = job.run()
    except LockBusy as exc:
        return HeartbeatReport(job.wall(), 0.0, EXIT_SKIPPED, "skipped",
                               (Step("lock", "skipped", exc.diagnostics()),))
    if metrics_file is not None:
        from impromptu_ops.metrics import write_textfile

        try:
            write_textfile(metrics_file, samples(report))
        except OSError as exc:
            report = replace(report, problems=(*report.problems,
                                               f"cannot write {metrics_file}: {exc.strerror}"))
    return report



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

__all__ = ["EXIT_SKIPPED", "HeartbeatJob", "HeartbeatReport", "run_scheduled",
           "samples"]
