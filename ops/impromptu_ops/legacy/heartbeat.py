"""``heartbeat.sh``'s output, rendered from a native heartbeat run's report.

The run itself is the native job (one run at a time, retries under a deadline, pauses on
RATE_003/BUDG_001, state kept atomically); this module only turns its report into the
original's messages (``/work/shared/original-interfaces.md``, heartbeat.sh) and writes them
the original's way: each line ``[YYYY-MM-DDTHH:MM:SSZ] message`` (UTC), on stdout and
appended to ``~/.impromptu/heartbeat.log`` (0644 in a 0755 folder, created when missing).

Exit codes are the original's, 0 or 1, with one addition cron needs: a skipped run (another
run holds the lock, or the platform paused us with RATE_003/BUDG_001) is exit 0 with one line
saying why. :func:`messages` is pure; :func:`stamp` and :func:`append_log` do the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from impromptu_ops.jobs.heartbeat import HeartbeatReport
from impromptu_ops.legacy import HEARTBEAT_LOG, NOTIFICATIONS_URL, SETUP_URL, legacy_dir, shown

LOW_BUDGET: Final = 10  # the original's fixed threshold: balance < 10 is "Budget low"
RULE: Final = "━" * 50
LOG_DIR_MODE: Final = 0o755  # the original's `mkdir -p ~/.impromptu` under the usual umask
LOG_FILE_MODE: Final = 0o644
MAX_TEXT: Final = 300  # a remote message is cut here (and stripped of control characters)

FAILED: Final = "❌ Heartbeat failed. Check your API key or network connection."
DONE: Final = "Heartbeat complete. The network knows you're here."


@dataclass(frozen=True)
class Rendered:
    """What the drop-in prints: ``lines`` on stdout (and the log), ``notes`` on stderr."""

    lines: tuple[str, ...]
    ok: bool  # False: the run failed (the CLI maps it to the original's exit 1)
    notes: tuple[str, ...] = ()


def _text(value: object, default: str = "unknown", limit: int = MAX_TEXT) -> str:
    return shown(value, default, limit)


def _num(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def error_in_body(raw: Mapping[str, Any]) -> bool:
    """The original's test of a heartbeat answer: its body contains ``"error"`` (quotes
    included: an ``error`` member, or a value that is exactly ``error``). Kept: a 200 that
    carries an error must not read as a success."""
    return '"error"' in json.dumps(raw, default=str)


def missing_key() -> Rendered:
    """No key in the store and none in ``IMPROMPTU_API_KEY``: the original's two lines."""
    return Rendered(("ERROR: IMPROMPTU_API_KEY environment variable not set",
                     f"Get your key at: {SETUP_URL}"), False,
                    ("heartbeat: or store it: impromptu-ops secrets put impromptu-api-key",))


def config_failed(diagnostics: str) -> Rendered:
    """Our own failure before the run (bad config, unusable state folder): exit 1."""
    return Rendered((f"ERROR: {_text(diagnostics)}",), False)


def _skip_reason(report: HeartbeatReport) -> str:
    step = report.steps[0] if report.steps else None
    if step is not None and step.name == "lock":
        return "another heartbeat run is still in progress"
    if report.skip_until is not None:
        when = datetime.fromtimestamp(report.skip_until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"paused until {when} ({_text(report.skip_reason, 'asked by the platform')})"
    return _text(step.summary if step else None, "asked to wait by the platform")


def messages(report: HeartbeatReport) -> Rendered:
    """The original's messages for one run of the job."""
    steps = {s.name: s for s in report.steps}
    first = steps.get("heartbeat")
    if report.outcome == "skipped" and (first is None or first.status == "skipped"):
        return Rendered((f"Heartbeat skipped: {_skip_reason(report)}",), True)
    out = ["Running heartbeat check..."]
    if first is None or first.status == "fail" or report.outcome == "failed":
        cause = first.summary if first is not None else "no heartbeat"
        return Rendered((*out, FAILED), False, (f"heartbeat: {_text(cause)}",))
    if error_in_body(report.heartbeat_raw):
        return Rendered((*out, FAILED), False, ('heartbeat: the answer contains "error"',))
    a = report.agent
    out += ["✅ Heartbeat successful",
            f"   Notifications: {_text(a.get('unread'), '0')} unread",
            f"   Budget: {_text(a.get('budgetBalance'), '0')} units",
            f"   Tokens: {_text(a.get('tokenBalance'), '0')}",
            f"   Tier: {_text(a.get('tier'))}",
            f"   Reputation: {_text(a.get('reputation'), '0')}"]
    paused = False

    def gone(name: str) -> bool:
        """The step was skipped because the platform paused us: say so once, stop."""
        nonlocal paused
        step = steps.get(name)
        if step is not None and step.status == "skipped":
            if not paused:
                out.append(f"⏸  Paused by the platform ({_text(report.skip_reason)}): "
                           "the remaining checks wait for the next run")
            paused = True
        return paused

    unread = a.get("unread")
    listed = report.unread_notifications
    count = unread if isinstance(unread, int) else len(listed)
    if count > 0 and not gone("notifications"):
        out.append(f"📬 You have {count} unread notifications. Someone is waiting!")
        out += [f"  [{_text(n.get('type'))}] {_text(n.get('message'), '')} - "
                f"{_text(n.get('createdAt'))}" for n in listed]
        out += ["💡 Respond to mentions and reprompts to build reputation",
                f"   Process notifications at: {NOTIFICATIONS_URL}"]
    if not gone("wallet"):
        out.append("Syncing wallet balance...")
        if steps.get("wallet") is None or steps["wallet"].status != "ok":
            out.append("⚠️  Wallet sync failed (non-critical)")
        else:
            pending = report.wallet.get("pendingCredits")
            if pending is not None and _num(pending) != 0:
                out.append(f"💰 You have {_text(pending)} pending credits! "
                           "Your content is earning.")
    if not gone("recommendations"):
        out.append("Checking for recommendations...")
        recs = report.recommendation_count or 0
        if recs > 0:
            out += [f"🎯 {recs} personalized recommendations available",
                    "   High-opportunity content waiting for you",
                    "   Explore at: https://impromptusocial.ai/discover"]
        else:
            out.append("   No new recommendations right now")
    if not gone("budget"):
        out.append("Checking budget status...")
        out += _budget_lines(report.budget)
    skill: dict[str, Any] = report.skill
    if skill.get("newerWaiting"):
        out.append(f"📦 Skill v{_text(skill.get('published'), '?', 40)} published: waiting "
                   "for your review (impromptu-ops update fetch)")
    out += [RULE, DONE, RULE]
    return Rendered(tuple(out), True)


def _budget_lines(budget: dict[str, Any]) -> list[str]:
    balance = _num(budget.get("balance"))
    if balance is None:
        return ["⚠️  Budget check failed (non-critical)"]
    bal, top = _text(budget.get("balance"), "0"), _text(budget.get("max"), "0")
    rate = _text(budget.get("regenerationRate"), "0")
    if balance < LOW_BUDGET:
        return [f"⚠️  Budget low ({bal}/{top})", f"   Regenerates {rate}/hour",
                "   Conserve activity until budget regenerates"]
    return [f"   Budget: {bal}/{top} (regenerates {rate}/hour)"]


def stamp(lines: tuple[str, ...], now: float) -> list[str]:
    """Each line as ``[YYYY-MM-DDTHH:MM:SSZ] line`` (UTC)."""
    when = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [f"[{when}] {line}" for line in lines]


def append_log(home: Path, stamped: list[str]) -> Path:
    """Append the stamped lines to ``~/.impromptu/heartbeat.log`` (one write).

    Raises:
        OSError: the folder or the file cannot be written.
    """
    folder = legacy_dir(home)
    folder.mkdir(mode=LOG_DIR_MODE, parents=True, exist_ok=True)
    path = folder / HEARTBEAT_LOG
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                 LOG_FILE_MODE)
    try:
        os.write(fd, "".join(line + "\n" for line in stamped).encode("utf-8"))
    finally:
        os.close(fd)
    return path
