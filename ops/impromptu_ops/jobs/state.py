"""Private: The heartbeat's local state: what the last runs saw, so the next run can do better.

The file (``<state_dir>/heartbeat.json``, 0600, written atomically) holds:

- ``lastRunAt`` / ``lastSuccessAt`` / ``lastExit``: read by ``health`` (heartbeat freshness);
- ``seenNotificationIds``: the ids already reported, newest last, bounded, so that each
  notification is reported exactly once across runs (ids are opaque strings: the contract
  promises no ordering, so "last id" alone cannot be trusted — it is kept as a hint);
- ``budgetSamples``: ``[time, balance]`` pairs for the trend;
- ``skipUntil`` / ``skipReason``: after ``RATE_003`` (daily quota) or ``BUDG_001`` the job
  does not call the platform again before this time.

Everything here is pure except :func:`load` and :func:`save`. A corrupt or foreign file is
never fatal: the job starts from an empty state and says so (``problems``). A number that is
not finite or not a plausible Unix time (``skipUntil: 1e308``) is dropped the same way, so a
hostile file cannot stop every later run.

Nothing secret is ever written here: an id from the platform that looks like a key, or holds
one we know (plainly, cut, URL-encoded or in base64), is kept only as its SHA-256
(:func:`safe_id`), which still de-duplicates; the skip reason is redacted before it is cut.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from impromptu_ops import atomic, files
from impromptu_ops.errors import OpsError
from impromptu_ops.secret import REDACTOR, clip

STATE_FILE = "heartbeat.json"
MAX_SEEN_IDS = 2000
MAX_BUDGET_SAMPLES = 96  # two days at one run per 30 minutes
MAX_STATE_BYTES = 1024 * 1024
MAX_TIMESTAMP = 253402300799.0  # 9999-12-31T23:59:59Z, the last second datetime can show
MAX_ID_CHARS = 200


def safe_id(raw: str) -> str:
    """The form of a notification id that may be written to disk: the id itself, or
    ``sha256:<hex>`` when it shows a secret (a platform that echoes the key back as an id)
    or is absurdly long."""
    if len(raw) > MAX_ID_CHARS or REDACTOR.holds_secret(raw):
        return "sha256:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    return raw


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
            "seenNotificationIds": [safe_id(i) for i in self.seen_notification_ids],
            "lastNotificationId": None if self.last_notification_id is None
            else safe_id(self.last_notification_id),
            "budgetSamples": [list(s) for s in self.budget_samples],
            "skipUntil": self.skip_until,
            "skipReason": None if self.skip_reason is None else clip(self.skip_reason, 200),
        }


def _num(v: Any) -> float | None:
    """A finite number, else None."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    try:
        value = float(v)
    except OverflowError:  # an integer beyond a float
        return None
    return value if math.isfinite(value) else None


def _time(v: Any, key: str, problems: list[str]) -> float | None:
    """A plausible Unix time (0 .. year 9999), else None and a problem named."""
    if v is None:
        return None
    value = _num(v)
    if value is None or not 0 <= value <= MAX_TIMESTAMP:
        problems.append(f"{key} is not a plausible time; dropped")
        return None
    return value


def from_json(doc: Any) -> HeartbeatState:
    """Tolerant decoding: every bad field is dropped and named in ``problems``."""
    if not isinstance(doc, dict):
        return HeartbeatState(problems=("state file is not a JSON object; starting afresh",))
    problems: list[str] = []
    ids_raw = doc.get("seenNotificationIds", [])
    ids = tuple(safe_id(str(i)) for i in ids_raw
                if isinstance(i, str | int) and not isinstance(i, bool)) if isinstance(
        ids_raw, list) else ()
    if not isinstance(ids_raw, list):
        problems.append("seenNotificationIds is not a list; dropped")
    samples: list[tuple[float, float]] = []
    raw_samples = doc.get("budgetSamples", [])
    for s in raw_samples if isinstance(raw_samples, list) else []:
        if isinstance(s, list) and len(s) == 2:
            t, b = _num(s[0]), _num(s[1])
            if t is not None and b is not None and 0 <= t <= MAX_TIMESTAMP:
                samples.append((t, b))
    last_id = doc.get("lastNotificationId")
    reason = doc.get("skipReason")
    exit_raw = doc.get("lastExit")
    return HeartbeatState(
        last_run_at=_time(doc.get("lastRunAt"), "lastRunAt", problems),
        last_success_at=_time(doc.get("lastSuccessAt"), "lastSuccessAt", problems),
        last_exit=exit_raw if isinstance(exit_raw, int) and not isinstance(exit_raw, bool)
        else None,
        seen_notification_ids=ids[-MAX_SEEN_IDS:],
        last_notification_id=safe_id(str(last_id)) if isinstance(last_id, str | int)
        and not isinstance(last_id, bool) else None,
        budget_samples=tuple(samples[-MAX_BUDGET_SAMPLES:]),
        skip_until=_time(doc.get("skipUntil"), "skipUntil", problems),
        skip_reason=clip(reason, 200) if isinstance(reason, str) else None,
        problems=tuple(problems),
    )


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def load(path: Path) -> HeartbeatState:
    """Read the state; a missing file is an empty state, a corrupt one is reported."""
    try:
        raw = files.read_optional(path, what="state", limit=MAX_STATE_BYTES, nofollow=True)
        if raw is None:
            return HeartbeatState()
        doc = files.parse_json(raw, what=f"state {path}")
    except OpsError as exc:  # a folder, a FIFO, too large, not JSON: start afresh, say so
        return HeartbeatState(problems=(f"{exc.message}; starting afresh",))
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
        nid = safe_id(str(raw_id)) if isinstance(raw_id, str | int) \
            and not isinstance(raw_id, bool) and str(raw_id) != "" else None
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
