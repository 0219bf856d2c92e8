"""Issue 11, finding 6: SIGKILL while the old key's revoke is in flight, then rollback.

The sandbox's ``latency`` fault holds a request for ``delay`` seconds BEFORE the endpoint
runs (``sandbox/faults.py``), so a DELETE sent by a run that is then SIGKILLed still
lands seconds later: exactly a slow revoke whose client died. The rollback that follows
must never write back a key whose revoke may be in flight; to make the race decisive (not
a matter of timing) the rollback pauses at its ``rollback-restored`` boundary (after any
restore, before it touches the new key) until the revoke has landed.

Afterwards the store's current key must work, ``resume``/``rollback`` exit 0 or 1 (never
2), and in the end exactly one provider key is live: the stored one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.rotation.crash import CRASH_ENV
from impromptu_ops.sandbox.server import SandboxServer
from tests.rotation_env import (
    IMPROMPTU,
    OPENROUTER,
    Bench,
    Watcher,
    impromptu_watcher,
    make_bench,
    openrouter_watcher,
)

DELAY = 5.0  # how long the sandbox holds the revoke: longer than a rollback's restore
REVOKE = {"impromptu": r"/agent/keys/[^/]+$", "openrouter": r"/openrouter/.*keys/[^/]+$"}
SECRET = {"impromptu": IMPROMPTU, "openrouter": OPENROUTER}


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def stored_works(bench: Bench, provider: str) -> bool | None:
    value = bench.current(SECRET[provider])
    return (bench.impromptu_works(value) if provider == "impromptu"
            else bench.openrouter_works(value))


def live_keys(bench: Bench, provider: str) -> list[dict[str, Any]]:
    """Every key of the account the provider still has (disabled ones included)."""
    if provider == "impromptu":
        return [k for k in bench.impromptu_keys() if k.get("revokedAt") is None]
    resp = httpx.get(f"{bench.sandbox.openrouter_url}/keys",
                     params={"include_disabled": "true"},
                     headers={"Authorization": f"Bearer {bench.provisioning}"}, timeout=10)
    resp.raise_for_status()
    keys: list[dict[str, Any]] = resp.json()["data"]
    return keys


def kill_during_revoke(bench: Bench, provider: str) -> None:
    """Rotate with grace 0; SIGKILL the run the moment its revoke of the old key is held."""
    rule = bench.fault(path=REVOKE[provider], method="DELETE", kind="latency", delay=DELAY)
    env = {k: v for k, v in bench.env.items() if k != CRASH_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "impromptu_ops.cli", "rotate", provider,
                             "--grace", "0"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not bench.fired(rule):
            assert proc.poll() is None, "the rotation ended before its revoke was held"
            assert time.monotonic() < deadline, "the revoke was never sent"
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("provider", ["impromptu", "openrouter"])
def test_sigkill_during_slow_revoke_then_rollback_keeps_a_working_key(
        bench: Bench, provider: str) -> None:
    original = bench.current(SECRET[provider])
    kill_during_revoke(bench, provider)
    killed_at = time.monotonic()

    def old_revoked() -> bool:
        if provider == "impromptu":
            return bench.impromptu_live(original) is False
        return bench.openrouter_works(original) is False and len(live_keys(bench, provider)) == 1

    def hold_until_revoke_lands(boundary: str) -> None:
        if boundary == "rollback-restored":
            while not old_revoked() and time.monotonic() < killed_at + DELAY + 10:
                time.sleep(0.05)

    watcher: Watcher = (impromptu_watcher(bench, by_state=True) if provider == "impromptu"
                        else openrouter_watcher(bench))
    watcher.on_boundary = hold_until_revoke_lands
    with watcher.watching():
        back = bench.cli("rotate", "rollback", provider, env=watcher.env())
        while not old_revoked() and time.monotonic() < killed_at + DELAY + 10:
            time.sleep(0.05)  # the held revoke has landed before anything is judged
        assert back.returncode in (0, 1), back.stdout + back.stderr
        assert "Traceback" not in back.stderr and back.stderr.count("\n") <= 1
        assert stored_works(bench, provider) is True, back.stdout + back.stderr
        assert bench.current(SECRET[provider]) != original  # a revoked key is never restored
        if back.returncode == 1:
            assert "point of no return" in back.stderr
            assert "(checked just now)" in back.stderr  # it says only what it checked
        done = bench.cli("rotate", "resume", provider, env=watcher.env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert stored_works(bench, provider) is True
    keys = live_keys(bench, provider)
    assert len(keys) == 1, keys
    again = bench.cli("rotate", "resume", provider)
    assert again.returncode == 0 and "no rotation to resume" in again.stdout
    assert not watcher.violations, watcher.violations[:3]


def test_stored_key_refused_but_pending_key_works_is_restored_not_paged(
        bench: Bench) -> None:
    """Whenever a working key of the rotation exists in the store (here the pending copy of
    the new key), a failed run puts it back as current and exits 1, never 2: the store's
    current key is made to fail (revoked behind the tool's back) after the promotion."""
    killed = bench.cli("rotate", "impromptu", "--grace", "1h", crash_at="promoted")
    assert killed.returncode == -9
    new = bench.current(IMPROMPTU)
    rec = bench.record("impromptu")
    assert rec is not None
    # someone writes the (still live) old key back by hand, then the platform revokes it
    bench.put(IMPROMPTU, bench.store.read(IMPROMPTU, rec.old.version).value("value").reveal())
    old_id = rec.old.key_id
    httpx.delete(f"{bench.sandbox.base_url}/v1/agent/keys/{old_id}",
                 headers={"Authorization": f"Bearer {new}"}, timeout=10).raise_for_status()
    back = bench.cli("rotate", "rollback", "impromptu")
    assert back.returncode == 1, back.stdout + back.stderr
    assert "which works (checked just now), is current again" in back.stderr, back.stderr
    assert bench.current(IMPROMPTU) == new and bench.impromptu_works(new) is True
    assert bench.cli("rotate", "resume", "impromptu").returncode == 0
    assert bench.current(IMPROMPTU) == new
    assert [k["id"] for k in live_keys(bench, "impromptu")] == [rec.new.key_id]
