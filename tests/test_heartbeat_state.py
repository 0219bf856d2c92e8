"""Heartbeat state (notification de-dup, budget trend, tolerant load) and the textfile."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops import heartbeat_state as st_mod
from impromptu_ops.heartbeat_state import (
    HeartbeatState,
    add_budget_sample,
    budget_trend_per_hour,
    fresh_notifications,
    from_json,
    load,
    save,
)
from impromptu_ops.metrics import Sample, render, write_textfile

ids = st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 50))
notes = st.lists(st.fixed_dictionaries({"id": ids, "message": st.text(max_size=10)}),
                 max_size=20)


@given(st.lists(notes, min_size=1, max_size=6))
def test_each_notification_is_reported_once_across_runs(runs: list[list[dict[str, Any]]]) -> None:
    state = HeartbeatState()
    reported: list[str] = []
    for answer in runs:
        fresh, state = fresh_notifications(state, answer)
        state = from_json(json.loads(json.dumps(state.to_json())))  # survives the file
        reported += [str(n["id"]) for n in fresh]
    assert len(reported) == len(set(reported))
    assert set(reported) == {str(n["id"]) for answer in runs for n in answer}


def test_notifications_without_id_are_reported_not_dropped() -> None:
    fresh, state = fresh_notifications(HeartbeatState(), [{"id": None, "message": "m"},
                                                          {"message": "x"}, {"id": ""}])
    assert len(fresh) == 3 and state.seen_notification_ids == ()


def test_seen_ids_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(st_mod, "MAX_SEEN_IDS", 5)
    _, state = fresh_notifications(HeartbeatState(), [{"id": str(i)} for i in range(12)])
    assert state.seen_notification_ids == ("7", "8", "9", "10", "11")
    assert state.last_notification_id == "11"


def test_save_load_roundtrip_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "state" / "heartbeat.json"
    s = HeartbeatState(last_run_at=1.5, last_success_at=1.0, last_exit=0,
                       seen_notification_ids=("a", "b"), last_notification_id="b",
                       budget_samples=((1.0, 5.0),), skip_until=9.0, skip_reason="RATE_003")
    save(path, s)
    assert load(path) == s
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["heartbeat.json"]


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"\xff\xfe", b'"x"',
                                     b'{"seenNotificationIds": 5, "lastRunAt": "x"}',
                                     b'{"budgetSamples": [[1], ["a", 2], [1, 2]]}'])
def test_corrupt_state_is_never_fatal(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "heartbeat.json"
    path.write_bytes(content)
    s = load(path)
    assert s.last_run_at is None
    assert s.budget_samples in ((), ((1.0, 2.0),))


@given(st.dictionaries(st.text(max_size=20), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10), max_size=8))
def test_hostile_state_documents(doc: dict[str, Any]) -> None:
    s = from_json(doc)
    json.dumps(s.to_json())  # whatever came in, what goes out is serialisable


def test_budget_trend() -> None:
    assert budget_trend_per_hour([]) is None
    assert budget_trend_per_hour([(0, 10)]) is None
    s = HeartbeatState()
    for i, b in enumerate([100, 90, 80, 70]):
        s = add_budget_sample(s, i * 1800.0, float(b))
    assert budget_trend_per_hour(s.budget_samples) == pytest.approx(-20.0)
    # Only the window counts: an old high value does not drag the slope.
    assert budget_trend_per_hour([(0, 1000), (50_000, 10), (53_600, 20)]) == pytest.approx(10)


# --- textfile ---------------------------------------------------------------------------

LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="(\\.|[^"\\])*",?)*\})? '
                  r"(NaN|[+-]Inf|-?\d+(\.\d+)?(e[+-]?\d+)?)$")


@given(st.lists(st.tuples(st.sampled_from(["a_total", "b", "c:d"]),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.dictionaries(st.sampled_from(["x", "agent", "check"]),
                                          st.text(max_size=10), max_size=2)), max_size=8))
def test_exposition_lines_are_valid(items: list[tuple[str, float, dict[str, str]]]) -> None:
    text = render(Sample(n, v, "help", labels=lab) for n, v, lab in items)
    for line in text.split("\n")[:-1]:  # the format's line separator is \n only
        if line.startswith("# "):
            assert re.match(r"^# (HELP|TYPE) \S+ ", line)
        else:
            assert LINE.match(line), line
    # one TYPE line per family, whatever the input order
    assert text.count("# TYPE a_total ") <= 1


def test_bad_metric_name_is_a_bug() -> None:
    with pytest.raises(ValueError):
        render([Sample("bad-name", 1)])


def test_textfile_is_atomic_and_readable(tmp_path: Path) -> None:
    path = tmp_path / "tf" / "impromptu.prom"
    write_textfile(path, [Sample("impromptu_x", 1.0, "x", labels={"a": 'q"\n'})])
    write_textfile(path, [Sample("impromptu_x", math.nan)])
    assert path.read_text() == "# TYPE impromptu_x gauge\nimpromptu_x NaN\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["impromptu.prom"]
    # a folder it had to create is readable by the collector, even under a strict umask
    old = os.umask(0o077)
    try:
        write_textfile(tmp_path / "new" / "x.prom", [Sample("impromptu_x", 1.0)])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755


def test_pause_rules() -> None:
    from datetime import UTC, datetime

    from impromptu_ops.errors import BudgetExhausted, RateLimited, ServerError
    from impromptu_ops.jobs.heartbeat import pause_for

    now = datetime(2026, 11, 24, 20, 0, tzinfo=UTC).timestamp()
    # X-RateLimit-Reset known (the client turns it into retry_after): wait exactly that long
    quota = RateLimited("q", retry_after=600, daily=True, code="RATE_003", status=429)
    assert pause_for(quota, now) == (now + 600, "RATE_003 daily quota used")
    # unknown: the daily quota resets at midnight UTC [doc]
    no_reset = RateLimited("q", daily=True, code="RATE_003", status=429)
    until, _ = pause_for(no_reset, now) or (0.0, "")
    assert until == datetime(2026, 11, 25, tzinfo=UTC).timestamp()
    # BUDG_001: the budget regenerates hourly
    assert pause_for(BudgetExhausted("b", code="BUDG_001", status=402), now) == (
        now + 3600, "BUDG_001 out of budget")
    # a burst limit or a server error never pauses the schedule
    assert pause_for(RateLimited("r", retry_after=5, code="RATE_001", status=429), now) is None
    assert pause_for(ServerError("s", code="INTERNAL", status=500), now) is None
