"""The heartbeat's local state: what the last runs saw, so the next run can do better.

The file (``<state_dir>/heartbeat.json``, 0600, written atomically) holds:

- ``lastRunAt`` / ``lastSuccessAt`` / ``lastExit``: read by ``health`` (heartbeat freshness);
- ``seenNotificationIds``: the ids already reported, newest last, bounded, so that each
  notification is reported exactly once across runs (ids are opaque strings: the contract
  promises no ordering, so "last id" alone cannot be trusted — it is kept as a hint);
- ``budgetSamples``: ``[time, balance]`` pairs for the trend;
- ``skipUntil`` / ``skipReason``: after ``RATE_003`` (daily quota) or ``BUDG_001`` the job
  does not call the platform again before this time.

Everything here is pure except :func:`load` and :func:`save`. A corrupt or foreign file is
never fatal: the job starts from an empty state and says so (``problems``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impromptu_ops import atomic

STATE_FILE = "heartbeat.json"
MAX_SEEN_IDS = 2000
MAX_BUDGET_SAMPLES = 96  # two days at one run per 30 minutes
MAX_STATE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class HeartbeatState:
    last_run_at: float | None = None
    last_success_at: float | None = None
    last_exit: int | None = None
    seen_notification_ids: tuple[str, ...] = ()
    last_notification_id: str | None = None
    budget_samples: tuple[tuple[float, float], ...] = ()
    skip_until: float | None = None
    skip_reason: str | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "lastRunAt": self.last_run_at,
            "lastSuccessAt": self.last_success_at,
            "lastExit": self.last_exit,
            "seenNotificationIds": list(self.seen_notification_ids),
            "lastNotificationId": self.last_notification_id,
            "budgetSamples": [list(s) for s in self.budget_samples],
            "skipUntil": self.skip_until,
            "skipReason": self.skip_reason,
        }


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v)


def from_json(doc: Any) -> HeartbeatState:
    """Tolerant decoding: every bad field is dropped and named in ``problems``."""
    if not isinstance(doc, dict):
        return HeartbeatState(problems=("state file is not a JSON object; starting afresh",))
    problems: list[str] = []
    ids_raw = doc.get("seenNotificationIds", [])
    ids = tuple(str(i) for i in ids_raw if isinstance(i, str | int)) if isinstance(
        ids_raw, list) else ()
    if not isinstance(ids_raw, list):
        problems.append("seenNotificationIds is not a list; dropped")
    samples: list[tuple[float, float]] = []
    raw_samples = doc.get("budgetSamples", [])
    for s in raw_samples if isinstance(raw_samples, list) else []:
        if isinstance(s, list) and len(s) == 2:
            t, b = _num(s[0]), _num(s[1])
            if t is not None and b is not None:
                samples.append((t, b))
    last_id = doc.get("lastNotificationId")
    reason = doc.get("skipReason")
    exit_raw = doc.get("lastExit")
    return HeartbeatState(
        last_run_at=_num(doc.get("lastRunAt")),
        last_success_at=_num(doc.get("lastSuccessAt")),
        last_exit=exit_raw if isinstance(exit_raw, int) and not isinstance(exit_raw, bool)
        else None,
        seen_notification_ids=ids[-MAX_SEEN_IDS:],
        last_notification_id=str(last_id) if isinstance(last_id, str | int) else None,
        budget_samples=tuple(samples[-MAX_BUDGET_SAMPLES:]),
        skip_until=_num(doc.get("skipUntil")),
        skip_reason=str(reason)[:200] if isinstance(reason, str) else None,
        problems=tuple(problems),
    )


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load(path: Path) -> HeartbeatState:
    """Read the state; a missing file is an empty state, a corrupt one is reported."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return HeartbeatState()
    except OSError as exc:
        return HeartbeatState(problems=(f"cannot read state {path}: {exc.strerror}",))
    if len(raw) > MAX_STATE_BYTES:
        return HeartbeatState(problems=(f"state {path} is too large; starting afresh",))
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return HeartbeatState(problems=(f"state {path} is not valid JSON; starting afresh",))
    return from_json(doc)


def save(path: Path, state: HeartbeatState) -> None:
    """Atomically replace the state file (0600 in a 0700 folder)."""
    atomic.private_dir(path.parent)
    atomic.write_json(path, state.to_json())


def fresh_notifications(
    state: HeartbeatState, notifications: Iterable[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], HeartbeatState]:
    """The notifications not reported before, and the state that remembers them.

    Notifications without a usable id cannot be de-duplicated; they are reported (once per
    run) rather than silently dropped. Duplicates inside one answer are reported once.
    """
    seen = set(state.seen_notification_ids)
    order = list(state.seen_notification_ids)
    fresh: list[Mapping[str, Any]] = []
    last = state.last_notification_id
    for n in notifications:
        raw_id = n.get("id")
        nid = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) \
            and str(raw_id) != "" else None
        if nid is None:
            fresh.append(n)
            continue
        if nid in seen:
            continue
        seen.add(nid)
        order.append(nid)
        fresh.append(n)
        last = nid
    return fresh, replace(state, seen_notification_ids=tuple(order[-MAX_SEEN_IDS:]),
                          last_notification_id=last)


def add_budget_sample(state: HeartbeatState, at: float, balance: float) -> HeartbeatState:
    samples = (*state.budget_samples, (at, balance))[-MAX_BUDGET_SAMPLES:]
    return replace(state, budget_samples=samples)


def budget_trend_per_hour(samples: Sequence[tuple[float, float]],
                          window_seconds: float = 6 * 3600) -> float | None:
    """Budget change per hour over the last ``window_seconds`` (None with < 2 samples).

    The slope between the oldest sample inside the window and the newest: simple, robust to
    an irregular schedule, and exactly zero when the budget does not move.
    """
    if len(samples) < 2:
        return None
    t_last, b_last = samples[-1]
    inside = [s for s in samples if t_last - s[0] <= window_seconds]
    t0, b0 = inside[0]
    if t_last - t0 <= 0:
        return None
    return (b_last - b0) / (t_last - t0) * 3600.0
