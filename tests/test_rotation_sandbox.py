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
from impromptu_ops.rotation.record import State
from impromptu_ops.sandbox.server import SandboxServer
from tests.rotation_env import OPENROUTER, Bench, Watcher, make_bench


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def assert_openrouter_settled(bench: Bench, *, rotated: bool, original: str) -> None:
    """Exactly one current key; it works; no orphan; BYOK holds it; nothing pending."""
    current = bench.current(OPENROUTER)
    assert bench.openrouter_works(current)
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
