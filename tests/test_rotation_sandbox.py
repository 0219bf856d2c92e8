"""Rotation end to end: the real CLI in child processes, the sandbox over HTTP, a real store.

Crash tests SIGKILL the job at every step boundary (``IMPROMPTU_TEST_CRASH_AT``); a watcher
thread checks throughout that the store's current key works against the sandbox.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from impromptu_ops.errors import SecretNotFound
from impromptu_ops.rotation.crash import BOUNDARIES
from impromptu_ops.rotation.record import State
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_sandbox import SandboxFactory
from tests.rotation_env import IMPROMPTU, OPENROUTER, Bench, Watcher, make_bench


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def assert_openrouter_settled(bench: Bench, *, rotated: bool, original: str) -> None:
    """Exactly one current key; it works; no orphan; BYOK holds it; nothing pending."""
    current = bench.current(OPENROUTER)
    assert bench.openrouter_works(current) is True
    assert (current != original) is rotated
    keys = bench.openrouter_keys()
    assert [k["hash"] for k in keys] == [hashlib.sha256(current.encode()).hexdigest()], keys
    rec = bench.record("openrouter")
    assert rec is not None and not rec.active
    assert rec.state == (State.DONE if rotated else State.ROLLED_BACK)
    if rotated:
        assert bench.byok_active_sha() == [hashlib.sha256(current.encode()).hexdigest()]
    with pytest.raises(SecretNotFound):
        bench.store.read("_pending/" + OPENROUTER)


def test_rotate_openrouter_happy_path(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    watcher = Watcher(bench, OPENROUTER)
    with watcher.watching():
        proc = bench.cli("rotate", "openrouter", "--grace", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout.splitlines()[-1])
    assert outcome["state"] == "done" and outcome["step"] == "done"
    assert_openrouter_settled(bench, rotated=True, original=original)
    assert watcher.checks > 0 and not watcher.violations
    # values never leave the process: not on stdout/stderr, not in the audit log
    current = bench.current(OPENROUTER)
    audit = (Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl").read_text()
    for text in (proc.stdout, proc.stderr, audit):
        assert current not in text and original not in text
    status = bench.cli("rotate", "status", "--json")
    assert status.returncode == 0
    views = json.loads(status.stdout)
    assert views[0]["record"]["state"] == "done"
    assert any(e["event"] == "rotation.step" for e in views[0]["audit"])
    assert views[0]["audit_chain"] == "intact"


FORWARD = [b for b in BOUNDARIES if b != "rollback-restored"]


@pytest.mark.parametrize("boundary", FORWARD)
def test_openrouter_sigkill_at_every_boundary_then_resume(bench: Bench, boundary: str) -> None:
    original = bench.current(OPENROUTER)
    watcher = Watcher(bench, OPENROUTER)
    with watcher.watching():
        killed = bench.cli("rotate", "openrouter", "--grace", "0", crash_at=boundary)
        assert killed.returncode == -9, (boundary, killed.stderr)
        resumed = bench.cli("rotate", "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_openrouter_settled(bench, rotated=True, original=original)
    assert watcher.checks > 0 and not watcher.violations, watcher.violations[:3]


@pytest.mark.parametrize("boundary", ["created", "pending-written", "stored", "activated",
                                      "canonical-written", "promoted", "old-disabled"])
def test_openrouter_sigkill_then_rollback(bench: Bench, boundary: str) -> None:
    original = bench.current(OPENROUTER)
    watcher = Watcher(bench, OPENROUTER)
    with watcher.watching():
        killed = bench.cli("rotate", "openrouter", "--grace", "0", crash_at=boundary)
        assert killed.returncode == -9
        back = bench.cli("rotate", "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert_openrouter_settled(bench, rotated=False, original=original)
    assert bench.byok_active_sha() in ([], [hashlib.sha256(original.encode()).hexdigest()])
    assert not watcher.violations, watcher.violations[:3]


def test_rollback_refused_after_old_key_deleted(bench: Bench) -> None:
    killed = bench.cli("rotate", "openrouter", "--grace", "0", crash_at="old-deleted")
    assert killed.returncode == -9
    back = bench.cli("rotate", "rollback")
    assert back.returncode == 1 and "point of no return" in back.stderr
    assert bench.cli("rotate", "resume").returncode == 0


def test_grace_period_keeps_old_key_disabled_then_resume_deletes(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    first = bench.cli("rotate", "openrouter", "--grace", "2s", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["step"] == "old-disabled"
    old = [k for k in bench.openrouter_keys()
           if k["hash"] == hashlib.sha256(original.encode()).hexdigest()]
    assert len(old) == 1 and old[0]["disabled"] is True
    assert bench.openrouter_works(original) is False
    busy = bench.cli("rotate", "openrouter")
    assert busy.returncode == 75, busy.stderr
    import time

    time.sleep(2.1)
    assert bench.cli("rotate", "resume").returncode == 0
    assert_openrouter_settled(bench, rotated=True, original=original)


def impromptu_settled(bench: Bench, original: str) -> str:
    current = bench.current(IMPROMPTU)
    assert current != original and bench.impromptu_works(current) is True
    assert bench.impromptu_works(original) is False
    active = [k for k in bench.impromptu_keys() if k.get("revokedAt") is None]
    assert len(active) == 1, active
    rec = bench.record("impromptu")
    assert rec is not None and rec.state == State.DONE
    return current


@pytest.mark.parametrize("boundary", ["intent", "created", "pending-written", "stored",
                                      "verified", "canonical-written", "old-disabled", "done"])
def test_impromptu_sigkill_then_resume(bench: Bench, boundary: str) -> None:
    original = bench.current(IMPROMPTU)
    watcher = Watcher(bench, IMPROMPTU)
    with watcher.watching():
        killed = bench.cli("rotate", "impromptu", "--grace", "0", crash_at=boundary)
        assert killed.returncode == -9, killed.stderr
        resumed = bench.cli("rotate", "resume", "impromptu")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    impromptu_settled(bench, original)
    assert watcher.checks > 0 and not watcher.violations, watcher.violations[:3]


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
    original = bench.current(IMPROMPTU)
    proc = bench.cli("rotate", "impromptu")
    assert proc.returncode == 0, proc.stderr
    assert "rotation not supported" in proc.stdout and "expires in" in proc.stdout
    assert bench.current(IMPROMPTU) == original and bench.record("impromptu") is None
