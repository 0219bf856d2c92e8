"""Rotation end to end: the real CLI in child processes, the sandbox over HTTP, a real store.

Crash tests SIGKILL the job at every step boundary (``IMPROMPTU_TEST_CRASH_AT``), for each
provider. "At no instant was the agent without a working key" is observed, not assumed: a
watcher thread polls the store's current key against the sandbox throughout, AND the job
pauses at every boundary (``IMPROMPTU_TEST_STEP_DIR``) until the watcher has checked the
store's key and the platform's BYOK copy; after the kill the same check is made again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from impromptu_ops.errors import SecretNotFound
from impromptu_ops.rotation.crash import BOUNDARIES
from impromptu_ops.rotation.provider import rotation_label
from impromptu_ops.rotation.record import RecordStore, State
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_sandbox import SandboxFactory
from tests.rotation_env import (
    IMPROMPTU,
    OPENROUTER,
    Bench,
    impromptu_watcher,
    make_bench,
    openrouter_watcher,
)

FORWARD = [b for b in BOUNDARIES if b != "rollback-restored"]


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def assert_openrouter_settled(bench: Bench, *, rotated: bool, original: str) -> None:
    """Exactly one current key; it works; no orphan; BYOK holds it; nothing pending."""
    current = bench.current(OPENROUTER)
    assert bench.openrouter_works(current) is True
    if original:
        assert (current != original) is rotated
    keys = bench.openrouter_keys()
    assert [k["hash"] for k in keys] == [bench.openrouter_hash(current)], keys
    rec = bench.record("openrouter")
    assert rec is not None and not rec.active
    assert rec.state == (State.DONE if rotated else State.ROLLED_BACK)
    if rotated:
        assert bench.byok_active_sha() == [sha(current)]
    with pytest.raises(SecretNotFound):
        bench.store.read("_pending/" + OPENROUTER)


def assert_openrouter_works_now(bench: Bench) -> None:
    """The instant after a kill: the store's key works and so does the BYOK copy."""
    assert bench.openrouter_works(bench.current(OPENROUTER)) is True
    assert bench.byok_problem() is None


def test_rotate_openrouter_happy_path(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    watcher = openrouter_watcher(bench)
    with watcher.watching():
        proc = bench.cli("rotate", "openrouter", "--grace", "0", "--json", env=watcher.env())
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome["state"] == "done" and outcome["step"] == "done"
    assert_openrouter_settled(bench, rotated=True, original=original)
    watcher.assert_clean(*FORWARD)  # every boundary of the run was checked while paused
    # values never leave the process: not on stdout/stderr, not in the audit log
    current = bench.current(OPENROUTER)
    audit = (Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl").read_text()
    for text in (proc.stdout, proc.stderr, audit):
        assert current not in text and original not in text
    status = bench.cli("rotate", "status", "--json")
    assert status.returncode == 0
    views = json.loads(status.stdout)
    assert views[0]["record"]["state"] == "done"
    steps = [e["step"] for e in views[0]["audit"] if e["event"] == "rotation.step"]
    assert steps == [b for b in FORWARD if b not in ("intent", "created", "pending-written",
                                                     "canonical-written")]
    assert views[0]["audit_chain"] == "intact"


def test_status_shows_steps_and_a_broken_audit_chain(bench: Bench) -> None:
    assert bench.cli("rotate", "openrouter", "--grace", "0").returncode == 0
    text = bench.cli("rotate", "status", "openrouter", "--lines", "20")
    assert text.returncode == 0, text.stderr
    assert "audit chain intact" in text.stdout
    trail = [line.split()[1:3] for line in text.stdout.splitlines()
             if line[:4].isdigit() and "rotation." in line]
    assert trail == [["rotation.start", "intent"]] + [
        ["rotation.step", s] for s in ("stored", "verified", "activated", "promoted",
                                       "retiring", "old-disabled", "old-deleted", "done")]
    record = dict(line.split(None, 1) for line in text.stdout.splitlines()
                  if line.startswith(("state ", "step ", "new_key_id ")))
    assert record["state"].strip() == "done" and record["step"].strip() == "done"
    assert record["new_key_id"].strip() == bench.openrouter_hash(bench.current(OPENROUTER))
    audit = Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl"
    lines = audit.read_text().splitlines()
    lines[2] = lines[2].replace('"rotation.step"', '"rotation.stop"')
    audit.write_text("\n".join(lines) + "\n")
    broken = bench.cli("rotate", "status", "openrouter")
    assert broken.returncode == 0 and "audit chain BROKEN at line 3" in broken.stdout


@pytest.mark.parametrize("boundary", FORWARD)
def test_openrouter_sigkill_at_every_boundary_then_resume(bench: Bench, boundary: str) -> None:
    original = bench.current(OPENROUTER)
    watcher = openrouter_watcher(bench)
    with watcher.watching():
        killed = bench.cli("rotate", "openrouter", "--grace", "0", crash_at=boundary,
                           env=watcher.env())
        assert killed.returncode == -9, (boundary, killed.stderr)
        assert_openrouter_works_now(bench)
        resumed = bench.cli("rotate", "resume", env=watcher.env())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_openrouter_settled(bench, rotated=True, original=original)
    watcher.assert_clean(boundary, "done")


@pytest.mark.parametrize("boundary", ["created", "pending-written", "stored", "activated",
                                      "canonical-written", "promoted"])
def test_openrouter_sigkill_then_rollback(bench: Bench, boundary: str) -> None:
    original = bench.current(OPENROUTER)
    watcher = openrouter_watcher(bench)
    with watcher.watching():
        killed = bench.cli("rotate", "openrouter", "--grace", "0", crash_at=boundary,
                           env=watcher.env())
        assert killed.returncode == -9
        assert_openrouter_works_now(bench)
        back = bench.cli("rotate", "rollback", env=watcher.env())
    assert back.returncode == 0, back.stdout + back.stderr
    assert_openrouter_settled(bench, rotated=False, original=original)
    assert bench.byok_active_sha() in ([], [sha(original)])
    watcher.assert_clean(boundary, "rollback-restored")


def test_sigkill_during_rollback_then_rollback_again(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    watcher = openrouter_watcher(bench)
    with watcher.watching():
        assert bench.cli("rotate", "openrouter", "--grace", "0",
                         crash_at="promoted").returncode == -9
        killed = bench.cli("rotate", "rollback", crash_at="rollback-restored",
                           env=watcher.env())
        assert killed.returncode == -9, killed.stderr
        assert_openrouter_works_now(bench)
        assert bench.current(OPENROUTER) == original  # restored before the kill
        again = bench.cli("rotate", "resume", env=watcher.env())
    assert again.returncode == 0, again.stdout + again.stderr
    assert_openrouter_settled(bench, rotated=False, original=original)
    watcher.assert_clean("rollback-restored")


@pytest.mark.parametrize("boundary", ["retiring", "old-disabled", "old-deleted"])
def test_rollback_refused_once_the_old_key_retirement_began(bench: Bench, boundary: str
                                                            ) -> None:
    """From ``retiring`` on, a disable/delete of the old key may have been sent: it is
    never restored; the refusal says what it checked just now (the current key works)."""
    original = bench.current(OPENROUTER)
    killed = bench.cli("rotate", "openrouter", "--grace", "0", crash_at=boundary)
    assert killed.returncode == -9
    back = bench.cli("rotate", "rollback")
    assert back.returncode == 1 and "point of no return" in back.stderr
    assert "the agent still has a working key (checked just now)" in back.stderr
    assert back.stderr.count("\n") == 1
    assert bench.cli("rotate", "resume").returncode == 0
    assert_openrouter_settled(bench, rotated=True, original=original)


def test_dry_run_changes_nothing(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    proc = bench.cli("rotate", "openrouter", "--dry-run", "--grace", "1h")
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout and "grace 3600s" in proc.stdout
    assert bench.current(OPENROUTER) == original and bench.record("openrouter") is None
    assert [k["hash"] for k in bench.openrouter_keys()] == [bench.openrouter_hash(original)]
    assert bench.byok_active_sha() == []
    assert not (Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl"
                ).exists()
    # an unfinished rotation: the dry run says it would resume it, and still changes nothing
    assert bench.cli("rotate", "openrouter", "--grace", "0", crash_at="stored").returncode == -9
    before = bench.record("openrouter")
    dry = bench.cli("rotate", "openrouter", "--dry-run")
    assert dry.returncode == 0 and "would resume" in dry.stdout
    assert bench.record("openrouter") == before


def test_bad_grace_is_one_usage_line(bench: Bench) -> None:
    for bad in ("soon", "-5", "3x", ""):
        proc = bench.cli("rotate", "openrouter", "--grace", bad)
        assert proc.returncode == 64, (bad, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "'--grace': not a duration" in proc.stderr
    assert bench.record("openrouter") is None


def test_orphans_of_an_earlier_rotation_are_swept_and_other_keys_kept(bench: Bench) -> None:
    """A key minted by a rotation that died before storing it (so it is named after that
    rotation and in no secret) is disabled and deleted; a key made by hand is not touched."""
    original = bench.current(OPENROUTER)
    ours = RecordStore(bench.store).installation()
    old_rid = f"{ours}.20260101t000000-deadbeef"
    orphan = bench.mint_openrouter(rotation_label(old_rid, 1))
    by_hand = bench.mint_openrouter("some-other-service")
    orphan_hash, original_hash = bench.openrouter_hash(orphan), bench.openrouter_hash(original)
    by_hand_hash = bench.openrouter_hash(by_hand)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    current = bench.current(OPENROUTER)
    hashes = sorted(k["hash"] for k in bench.openrouter_keys())
    assert hashes == sorted([bench.openrouter_hash(current), by_hand_hash])
    assert orphan_hash not in hashes and original_hash not in hashes
    audit = (Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl").read_text()
    removed = [json.loads(line) for line in audit.splitlines() if "orphan-removed" in line]
    assert [e["key_id"] for e in removed] == [orphan_hash]
    assert f"orphan of rotation {old_rid}" in removed[0]["reason"]


# -- Impromptu keys --------------------------------------------------------------------------
def impromptu_settled(bench: Bench, original: str) -> str:
    current = bench.current(IMPROMPTU)
    assert current != original and bench.impromptu_works(current) is True
    assert bench.impromptu_works(original) is False
    active = [k for k in bench.impromptu_keys() if k.get("revokedAt") is None]
    assert len(active) == 1 and active[0]["sha256"] == sha(current), active
    rec = bench.record("impromptu")
    assert rec is not None and rec.state == State.DONE
    with pytest.raises(SecretNotFound):
        bench.store.read("_pending/" + IMPROMPTU)
    return current


def test_rotate_impromptu_happy_path(bench: Bench) -> None:
    original = bench.current(IMPROMPTU)
    watcher = impromptu_watcher(bench)
    with watcher.watching():
        proc = bench.cli("rotate", "impromptu", "--grace", "0", env=watcher.env())
    assert proc.returncode == 0, proc.stderr
    current = impromptu_settled(bench, original)
    watcher.assert_clean(*FORWARD)
    audit = (Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl").read_text()
    for value in (current, original):
        assert value not in proc.stdout + proc.stderr + audit


@pytest.mark.parametrize("boundary", FORWARD)
def test_impromptu_sigkill_at_every_boundary_then_resume(bench: Bench, boundary: str) -> None:
    original = bench.current(IMPROMPTU)
    watcher = impromptu_watcher(bench)
    with watcher.watching():
        killed = bench.cli("rotate", "impromptu", "--grace", "0", crash_at=boundary,
                           env=watcher.env())
        assert killed.returncode == -9, killed.stderr
        assert bench.impromptu_works(bench.current(IMPROMPTU)) is True
        resumed = bench.cli("rotate", "resume", "impromptu", env=watcher.env())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    impromptu_settled(bench, original)
    watcher.assert_clean(boundary, "done")


def test_impromptu_crash_after_create_then_rollback_revokes_the_unstored_key(
        bench: Bench) -> None:
    original = bench.current(IMPROMPTU)
    assert bench.cli("rotate", "impromptu", "--grace", "0", crash_at="created").returncode == -9
    assert len([k for k in bench.impromptu_keys() if k.get("revokedAt") is None]) == 2
    back = bench.cli("rotate", "rollback", "impromptu")
    assert back.returncode == 0, back.stderr
    active = [k for k in bench.impromptu_keys() if k.get("revokedAt") is None]
    assert len(active) == 1 and bench.current(IMPROMPTU) == original
    assert bench.impromptu_works(original) is True


def test_impromptu_platform_without_key_management(sandbox_factory: SandboxFactory,
                                                   tmp_path: Path) -> None:
    bench = make_bench(sandbox_factory(key_management=False), tmp_path / "home")
    bench.sandbox.control("PATCH", f"agents/{bench.agent_id}", {"keyExpiresInDays": 42.5})
    original = bench.current(IMPROMPTU)
    proc = bench.cli("rotate", "impromptu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1
    assert "rotation not supported" in proc.stdout and "the key expires in 42 days" in proc.stdout
    assert bench.current(IMPROMPTU) == original and bench.record("impromptu") is None
    as_json = bench.cli("rotate", "impromptu", "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["state"] == "unsupported"


def test_commands_with_nothing_to_do_and_bad_input(bench: Bench) -> None:
    for args, code, stream, text in [
        (("rotate", "resume"), 0, "stdout", "no rotation to resume\n"),
        (("rotate", "rollback"), 0, "stdout", "no rotation to roll back\n"),
        (("rotate", "status"), 0, "stdout", "no rotation has run yet\n"),
        (("rotate", "status", "--lines", "-3"), 64, "stderr", "'--lines'"),
        (("rotate", "resume", "nosuch"), 64, "stderr", "'nosuch' is not one of"),
        (("rotate", "vault-secret-id"), 1, "stderr", "needs VAULT_ADDR"),
    ]:
        proc = bench.cli(*args)
        got = getattr(proc, stream)
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        assert text in got and got.count("\n") == 1, (args, got)
        assert "Traceback" not in proc.stdout + proc.stderr
    assert bench.record("openrouter") is None


def test_two_installations_sharing_an_openrouter_account_keep_each_others_keys(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """Agent A's rotated key is named after A's rotation and lives in A's store only. When
    agent B (another installation, same OpenRouter account) rotates, B's orphan sweep must
    not take A's key for one of its own orphans."""
    a = make_bench(sandbox, tmp_path / "a")
    b = make_bench(sandbox, tmp_path / "b")
    assert a.cli("rotate", "openrouter", "--grace", "0").returncode == 0
    a_key = a.current(OPENROUTER)
    a_hash = a.openrouter_hash(a_key)
    assert b.cli("rotate", "openrouter", "--grace", "0").returncode == 0
    assert a.openrouter_works(a_key) is True
    assert b.openrouter_works(b.current(OPENROUTER)) is True
    # and B's crash-orphans are still B's to clean: a crash after create, then resume
    assert b.cli("rotate", "openrouter", "--grace", "0", crash_at="created").returncode == -9
    assert b.cli("rotate", "resume").returncode == 0
    hashes = sorted(k["hash"] for k in b.openrouter_keys())
    assert hashes == sorted([a_hash, b.openrouter_hash(b.current(OPENROUTER))])


@pytest.mark.parametrize("then", ["resume", "rollback"])
def test_impromptu_platform_forgets_the_replay_after_a_crash(
        sandbox_factory: SandboxFactory, tmp_path: Path, then: str) -> None:
    """Killed after the create; the platform restarts and forgets its idempotent replays,
    so the unstored key holds the second of two key slots (KEY_LIMIT). The job reads back
    the key only this rotation can have made (created after it started, never used),
    revokes it and finishes: one live key, the store's, working."""
    folder = tmp_path / "platform"
    bench = make_bench(sandbox_factory(state_dir=folder), tmp_path / "home")
    original = bench.current(IMPROMPTU)
    assert bench.cli("rotate", "impromptu", "--grace", "0", crash_at="created").returncode == -9
    assert len([k for k in bench.impromptu_keys() if k["revokedAt"] is None]) == 2
    bench.sandbox.stop()
    bench.sandbox = sandbox_factory(state_dir=folder)  # same state, replays forgotten
    bench.env["IMPROMPTU_API_URL"] = bench.sandbox.base_url
    bench.env["IMPROMPTU_OPENROUTER_URL"] = bench.sandbox.openrouter_url
    proc = bench.cli("rotate", then, "impromptu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if then == "resume":
        impromptu_settled(bench, original)
    else:
        active = [k for k in bench.impromptu_keys() if k["revokedAt"] is None]
        assert [k["sha256"] for k in active] == [sha(original)]
        assert bench.current(IMPROMPTU) == original


def test_if_due_follows_the_policy_file(bench: Bench, tmp_path: Path) -> None:
    original = bench.current(OPENROUTER)
    fresh = bench.cli("rotate", "openrouter", "--if-due", "--json")
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["state"] == "not-due"
    assert bench.current(OPENROUTER) == original and bench.record("openrouter") is None
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "rotation.toml").write_text("[openrouter]\nmax_age_days = 0\ngrace_hours = 0\n")
    due = bench.cli("rotate", "openrouter", "--if-due",
                    env={"IMPROMPTU_PATHS_POLICIES_DIR": str(policies)})
    assert due.returncode == 0, due.stderr
    assert_openrouter_settled(bench, rotated=True, original=original)  # grace 0 from policy
    (policies / "rotation.toml").write_text("[openrouter]\nmax_age_days = -1\n")
    bad = bench.cli("rotate", "openrouter", "--if-due",
                    env={"IMPROMPTU_PATHS_POLICIES_DIR": str(policies)})
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "max_age_days: must be a non-negative number" in bad.stderr
