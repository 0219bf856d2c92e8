"""The rotation state machine against in-memory doubles, exhaustively.

For every event of a rotation (each store call and each provider call), a crash or a timeout
either before or after its effect; then ``resume`` (or ``rollback``) until settled. The
world checks after EVERY effect that the store's current key works (and the platform's BYOK
copy), so "at no instant was the agent without a working key" is checked at each instant,
not only at the end. At the end: exactly one live provider key, it is the current one, it
works, no pending copy, no orphan, an intact audit chain.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops.audit import AuditLog
from impromptu_ops.errors import CasConflict, OpsError
from impromptu_ops.rotation.engine import (
    EXIT_DONE,
    EXIT_FAILED_SAFE,
    Outcome,
    RotationBusy,
    Rotator,
)
from impromptu_ops.rotation.record import PENDING_PREFIX, RotationRecord, State, Step
from tests.rotation_fakes import FakeProvider, MemoryStore, SimulatedCrash, World, seeded_world

KINDS = ("crash-before", "crash-after", "timeout-before", "timeout-after")


def rotator(w: World, tmp: Path, *, idempotent: bool = False, grace: float = 0.0,
            on_boundary: object = None) -> Rotator:
    return Rotator(FakeProvider(w, idempotent_create=idempotent), MemoryStore(w),
                   audit=AuditLog(tmp / "audit.jsonl"), lock_path=tmp / "rotate.lock",
                   grace_seconds=grace, on_boundary=on_boundary,  # type: ignore[arg-type]
                   sleep=lambda _s: None)


def settle(w: World, tmp: Path, first: str, *, idempotent: bool) -> list[int]:
    """Run ``first`` (start | rollback-after-crash), then resume until the record settles."""
    codes: list[int] = []
    action = "start"
    for _ in range(30):
        r = rotator(w, tmp, idempotent=idempotent)
        try:
            if action == "start":
                out: Outcome = r.start()
            elif action == "rollback":
                out = r.rollback()
            else:
                out = r.resume()
            codes.append(out.exit_code)
        except SimulatedCrash:
            codes.append(-9)
            rec = current_record(w)
            if rec is not None and not rec.active:
                return codes  # it crashed after settling: nothing left to do
            action = ("start" if rec is None else "rollback" if first == "rollback"
                      else "resume")
            continue
        except CasConflict:
            codes.append(75)
        except OpsError:  # e.g. rollback refused past the point of no return
            codes.append(-1)
            action = "resume"
            continue
        rec = current_record(w)
        if rec is not None and not rec.active:
            return codes
        action = "resume" if rec is not None else "start"
    raise AssertionError(f"never settled: {codes} events {w.log}")


def current_record(w: World) -> RotationRecord | None:
    vs = w.versions.get("_rotation/openrouter")
    if not vs or vs[-1][1]:
        return None
    return RotationRecord.from_json(vs[-1][0]["value"])


def assert_settled(w: World, tmp: Path, original: str) -> None:
    w.checking = False
    rec = current_record(w)
    assert rec is not None and rec.state in (State.DONE, State.ROLLED_BACK)
    current = w.canonical()
    assert current is not None and w.works(current)
    live = w.live()
    assert len(live) == 1, f"orphans: {live} events {w.log}"
    (only,) = live
    assert w.keys[only].value == current and w.keys[only].works
    assert w.byok == current
    pending = w.versions.get(PENDING_PREFIX + w.secret)
    assert not pending or pending[-1][1], "pending copy left behind"
    if rec.state == State.DONE:
        assert current != original
        assert rec.step == Step.DONE
    else:
        assert current == original
    assert AuditLog(tmp / "audit.jsonl").verify().ok


def count_events(idempotent: bool, tmp: Path) -> int:
    w = seeded_world()
    out = rotator(w, tmp, idempotent=idempotent).start()
    assert out.exit_code == EXIT_DONE, out
    return w.events


def test_happy_path_labels_and_versions(tmp_path: Path) -> None:
    w = seeded_world()
    original = w.canonical()
    assert original is not None
    out = rotator(w, tmp_path).start()
    assert out.exit_code == EXIT_DONE and out.state == "done", out
    assert_settled(w, tmp_path, original)
    # previous = the version before current; the record names both
    rec = current_record(w)
    assert rec is not None
    assert rec.old.version == 1 and rec.new.version == 2
    assert w.versions[w.secret][0][0]["value"] == original
    events = [e["event"] for e in AuditLog(tmp_path / "audit.jsonl").entries()]
    assert events[0] == "rotation.start" and events[-1] == "rotation.step"
    assert original not in (tmp_path / "audit.jsonl").read_text()


def test_grace_period_keeps_old_key_working_until_a_later_run_retires_it(
        tmp_path: Path) -> None:
    """Issue 11 finding 4: during the grace period the OLD key keeps working (not
    disabled); the record holds the pending retirement and its due time; a run before it
    is due changes nothing (exit 0); once due, ``resume`` disables and deletes it, and a
    new ``rotate`` first retires the due key, then rotates (one old key at a time)."""
    w = seeded_world()
    original = w.canonical()
    assert original is not None
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    def at(grace: float = 3600) -> Rotator:
        r = rotator(w, tmp_path, grace=grace)
        r.clock = lambda: now[0]
        return r

    out = at().start()
    assert out.exit_code == EXIT_DONE and out.step == "promoted", out
    assert out.grace_until == "2026-01-01T01:00:00Z" and "keeps working until" in out.message
    old = next(k for k in w.keys.values() if k.value == original)
    assert old.works and w.works(original)  # grace means grace
    assert w.canonical() != original and w.works(w.canonical() or "")
    rec = current_record(w)
    assert rec is not None and rec.retirement_pending
    # before due: a new rotation is "try later" (75), resume changes nothing, writes nothing
    with pytest.raises(OpsError) as busy:
        at().start()
    assert busy.value.exit_code == 75 and "keeps working until" in busy.value.message
    events = w.events
    early = at().resume()
    assert early.exit_code == EXIT_DONE and "nothing to do yet" in early.message
    assert old.works and w.events - events <= 3  # reads only
    now[0] += timedelta(seconds=3600)
    done = at().resume()
    assert done.exit_code == EXIT_DONE and done.state == "done", done
    assert old.deleted and not w.works(original)
    assert_settled(w, tmp_path, original)
    # a second rotation: once ITS retirement is due, a new `rotate` retires it first
    second = w.canonical()
    assert at().start().step == "promoted"
    third = w.canonical()
    now[0] += timedelta(seconds=7200)
    fourth = at().start()
    assert fourth.exit_code == EXIT_DONE and fourth.step == "promoted", fourth
    assert fourth.message.startswith("finished rotation"), fourth.message
    assert not w.works(second or "") and w.works(third or "") and w.canonical() != third
    assert len(w.live()) == 2  # the current key and one old key in its grace period


def test_grace_zero_cuts_over_at_once(tmp_path: Path) -> None:
    w = seeded_world()
    original = w.canonical()
    assert original is not None
    out = rotator(w, tmp_path, grace=0).start()
    assert out.exit_code == EXIT_DONE and out.state == "done"
    assert not w.works(original)
    assert_settled(w, tmp_path, original)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(data=st.data(), idempotent=st.booleans(), first=st.sampled_from(["start", "rollback"]))
def test_any_crash_or_timeout_then_resume_or_rollback(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, idempotent: bool,
        first: str) -> None:
    tmp = tmp_path_factory.mktemp("rot")
    faults = data.draw(st.dictionaries(st.integers(1, 45), st.sampled_from(KINDS),
                                       min_size=1, max_size=3))
    w = seeded_world(faults)
    original = w.canonical()
    assert original is not None
    codes = settle(w, tmp, first, idempotent=idempotent)
    assert 2 not in codes, (codes, w.log)  # the agent was never at risk
    assert_settled(w, tmp, original)


@pytest.mark.parametrize("idempotent", [False, True])
def test_every_single_event_crash_resumes(tmp_path: Path, idempotent: bool) -> None:
    """Exhaustive over one crash: every event, before and after its effect."""
    total = count_events(idempotent, tmp_path / "count")
    for n in range(1, total + 1):
        for kind in KINDS:
            tmp = tmp_path / f"{n}-{kind}"
            w = seeded_world({n: kind})
            original = w.canonical()
            assert original is not None
            settle(w, tmp, "start", idempotent=idempotent)
            assert_settled(w, tmp, original)


def test_two_rotations_one_record_one_winner(tmp_path: Path) -> None:
    """Two runs read the same (absent) record; the CAS of the intent decides."""
    w = seeded_world()
    a = rotator(w, tmp_path / "a")
    b = rotator(w, tmp_path / "b")
    # b reads "no record" then a commits its intent before b writes: b's CAS must lose.
    real_load = b.records.load

    def late_load(provider: str) -> tuple[RotationRecord | None, int]:
        got = real_load(provider)
        assert a.start().exit_code == EXIT_DONE
        return got

    b.records.load = late_load  # type: ignore[method-assign]
    with pytest.raises(RotationBusy, match="recorded its intent first") as lost:
        b.start()
    assert lost.value.exit_code == 75
    original_live = w.live()
    assert len(original_live) == 1


def test_new_key_refused_rolls_back(tmp_path: Path) -> None:
    w = seeded_world()
    original = w.canonical()
    assert original is not None
    p = FakeProvider(w)
    real_verify = p.verify
    calls = {"n": 0}

    def verify(value: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the new key's check
            from impromptu_ops.errors import AuthError
            raise AuthError("refused", code="UNAUTHORIZED", status=401)
        real_verify(value)  # type: ignore[arg-type]

    p.verify = verify  # type: ignore[method-assign]
    r = Rotator(p, MemoryStore(w), audit=AuditLog(tmp_path / "a.jsonl"),
                lock_path=tmp_path / "l", grace_seconds=0)
    out = r.start()
    assert out.exit_code == EXIT_FAILED_SAFE and out.state == "rolled-back"
    assert w.canonical() == original and w.live() == {"k001"}


def test_nothing_to_rotate_is_config_error(tmp_path: Path) -> None:
    w = World()
    with pytest.raises(OpsError) as exc:
        rotator(w, tmp_path).start()
    assert exc.value.exit_code == 78


@pytest.mark.parametrize("kind", ["outage-before", "outage-after"])
@pytest.mark.parametrize("target", ["write _pending/openrouter-api-key",
                                    "write openrouter-api-key", "write _rotation/openrouter"])
def test_a_brief_store_outage_is_ridden_out_in_one_run(tmp_path: Path, kind: str,
                                                       target: str) -> None:
    """The store fails several calls in a row (a leader election) at a key write or a record
    write, with the write lost or landed: the same run waits, re-reads the record, goes on
    from its step and completes (exit 0, no resume needed, one key, nothing orphaned)."""
    clean = seeded_world()
    assert rotator(clean, tmp_path / "clean").start().exit_code == EXIT_DONE
    hits = [i for i, event in enumerate(clean.log) if event == target]
    n = hits[len(hits) // 2] + 1  # a middle one: for the record, a step's write
    assert clean.log[n - 1] == target
    w = seeded_world({n: kind})
    original = w.canonical()
    assert original is not None
    out = rotator(w, tmp_path).start()
    assert out.exit_code == EXIT_DONE and out.state == "done", (out, w.log)
    events = [e["event"] for e in AuditLog(tmp_path / "audit.jsonl").entries()]
    assert {"rotation.store-outage", "rotation.store-retry"} & set(events), events
    assert "rotation.failed" not in events
    assert_settled(w, tmp_path, original)


def test_a_long_store_outage_fails_safely(tmp_path: Path) -> None:
    w = seeded_world({20: "outage-before"})
    w.outage_calls = 100
    original = w.canonical()
    assert original is not None
    out = rotator(w, tmp_path).start()
    assert out.exit_code == EXIT_FAILED_SAFE, out
    w.plan.clear()
    w.outage = 0  # the store is back
    assert rotator(w, tmp_path).resume().exit_code == EXIT_DONE
    assert_settled(w, tmp_path, original)


@pytest.mark.parametrize("command", ["rotate", "rotate-fails", "resume", "rollback"])
def test_every_command_closes_its_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           command: str) -> None:
    """The service closes the provider's HTTP clients after each run, also after a failure."""
    from impromptu_ops.api import Agent
    from impromptu_ops.rotation import service
    from impromptu_ops.settings import load_settings

    w = seeded_world()
    if command == "rotate-fails":
        w.versions.clear()  # nothing to rotate: the run fails before the intent
    made: list[FakeProvider] = []

    def build(_settings: object, _name: str, _store: object, **_wiring: object) -> FakeProvider:
        made.append(FakeProvider(w))
        return made[-1]

    monkeypatch.setattr(service, "build_provider", build)
    settings = load_settings({"paths.state_dir": str(tmp_path / "state")}, env={},
                             config_file=tmp_path / "none.toml")
    agent = Agent(settings, store=MemoryStore(w))
    if command in ("resume", "rollback"):  # an interrupted rotation to act on
        w.plan = {w.events + 14: "crash-after"}  # the record write before the create
        with pytest.raises(SimulatedCrash):
            agent.rotate("openrouter", grace=0)
        made.clear()
    if command.startswith("rotate"):
        out = agent.rotate("openrouter", grace=0)
        assert out.exit_code == (1 if command == "rotate-fails" else 0), out
    elif command == "resume":
        assert agent.resume_rotations("openrouter")[0].exit_code == 0
    else:
        assert agent.roll_back_rotation("openrouter").exit_code == 0
    assert made and all(getattr(p, "closed", 0) == 1 for p in made)


def test_an_unidentified_old_key_is_never_reported_disabled_or_deleted(tmp_path: Path) -> None:
    """Issue 11 Build 2/6: no output or audit line claims a disable or delete that the
    provider did not confirm. An old key the provider could not identify is left alone
    and the report says so."""
    w = seeded_world()
    original = w.canonical()
    assert original is not None
    p = FakeProvider(w)
    p.identify = lambda value: ""  # type: ignore[method-assign]
    r = Rotator(p, MemoryStore(w), audit=AuditLog(tmp_path / "a.jsonl"),
                lock_path=tmp_path / "l", grace_seconds=0)
    out = r.start()
    assert out.exit_code == EXIT_DONE and out.state == "done"
    assert "NOT disabled or deleted" in out.message and "is deleted" not in out.message
    assert w.works(original)
    entries = list(AuditLog(tmp_path / "a.jsonl").entries())
    skipped = [e for e in entries if e["event"] == "rotation.old-unidentified"]
    assert [e["reason"].split(" ")[0] for e in skipped] == ["old-disabled", "old-deleted"]
