"""Rotation under sandbox faults (429, 5xx, timeouts, dropped and truncated answers) at each
provider call, for OpenRouter and Impromptu; the exit codes 1 and 2; one machine's lock.

A run under a fault either completes or fails with exit 1 (never 2: the agent keeps a
working key); after the fault clears, ``rotate resume`` finishes, with no orphaned key.
Every test checks that its fault really fired (the sandbox counts uses), and a watcher
checks the store's key throughout and at every step boundary.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.sandbox.server import SandboxServer
from tests.rotation_env import (
    IMPROMPTU,
    OPENROUTER,
    PROVISIONING,
    Bench,
    impromptu_watcher,
    make_bench,
    openrouter_watcher,
)
from tests.test_rotation_sandbox import assert_openrouter_settled, impromptu_settled

# The job's read timeout is 1 s here, so a 1.4 s latency is a timeout (the answer is late).
TIMEOUT_ENV = {"IMPROMPTU_PLATFORM_READ_TIMEOUT": "1"}
LATE = 1.4


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    bench = make_bench(sandbox, tmp_path / "home")
    bench.env.update(TIMEOUT_ENV)
    return bench


def audit_events(bench: Bench) -> list[dict[str, Any]]:
    path = Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_under_fault(bench: Bench, provider: str, rule: dict[str, Any], watch_state: bool
                    ) -> subprocess.CompletedProcess[str]:
    """Rotate under ``rule``; then, fault cleared, resume (or rerun) until done."""
    added = bench.fault(**rule)
    watcher = (openrouter_watcher(bench) if provider == "openrouter"
               else impromptu_watcher(bench, by_state=watch_state))
    with watcher.watching():
        first = bench.cli("rotate", provider, "--grace", "0", env=watcher.env())
        # 75 ("try later") only for a rate limit met before anything started (OpenRouter's
        # GET /key, which identifies the current key, answered 429)
        assert first.returncode in (0, 1) or (
            first.returncode == 75 and rule.get("status") == 429
            and bench.record(provider) is None), (rule, first.returncode, first.stderr)
        if first.returncode == 1:
            assert first.stderr.count("\n") == 1 and "Traceback" not in first.stderr
            # it states only what it checked just now: "works" only after a real call
            assert ("the agent still has a working key (checked just now)" in first.stderr
                    or "could not be re-checked just now" in first.stderr
                    or "nothing was changed" in first.stderr), first.stderr
        assert bench.fired(added), f"the fault never fired: {rule}"
        bench.clear_faults()
        if bench.record(provider) is None:  # failed before recording an intent: rerun
            again = bench.cli("rotate", provider, "--grace", "0", env=watcher.env())
        else:
            again = bench.cli("rotate", "resume", provider, env=watcher.env())
    assert again.returncode == 0, again.stdout + again.stderr
    watcher.assert_clean("done")
    return first


OR = "/openrouter/api/v1"
OPENROUTER_FAULTS: list[tuple[str, dict[str, Any]]] = [
    # create: the key exists but the answer is lost -> read back by name, discard, mint again
    ("create-truncated", {"path": f"{OR}/keys$", "method": "POST", "kind": "truncate"}),
    ("create-dropped", {"path": f"{OR}/keys$", "method": "POST", "kind": "drop"}),
    ("create-503", {"path": f"{OR}/keys$", "method": "POST", "kind": "status", "status": 503,
                    "times": 10}),
    ("create-429", {"path": f"{OR}/keys$", "method": "POST", "kind": "status", "status": 429,
                    "retryAfter": 0, "times": 10}),
    ("create-timeout", {"path": f"{OR}/keys$", "method": "POST", "kind": "latency",
                        "delay": LATE}),
    ("list-503", {"path": f"{OR}/keys$", "method": "GET", "kind": "status", "status": 503,
                  "times": 10}),
    ("list-dropped", {"path": f"{OR}/keys$", "method": "GET", "kind": "drop", "times": 6}),
    ("verify-503", {"path": f"{OR}/key$", "method": "GET", "kind": "status", "status": 503,
                    "times": 10}),
    ("verify-429", {"path": f"{OR}/key$", "method": "GET", "kind": "status", "status": 429,
                    "retryAfter": 0, "times": 10}),
    ("verify-timeout", {"path": f"{OR}/key$", "method": "GET", "kind": "latency",
                        "delay": LATE, "times": 2}),
    ("verify-malformed", {"path": f"{OR}/key$", "method": "GET", "kind": "malformed"}),
    ("byok-put-503", {"path": "/agent/credentials", "method": "PUT", "kind": "status",
                      "status": 503, "times": 10}),
    ("byok-put-dropped", {"path": "/agent/credentials", "method": "PUT", "kind": "drop"}),
    ("byok-put-timeout", {"path": "/agent/credentials", "method": "PUT", "kind": "latency",
                          "delay": LATE, "times": 2}),
    ("byok-list-429", {"path": "/agent/credentials$", "method": "GET", "kind": "status",
                       "status": 429, "retryAfter": 0, "times": 10}),
    ("disable-dropped", {"path": f"{OR}/keys/", "method": "PATCH", "kind": "drop"}),
    ("disable-429", {"path": f"{OR}/keys/", "method": "PATCH", "kind": "status",
                     "status": 429, "retryAfter": 0, "times": 10}),
    ("disable-timeout", {"path": f"{OR}/keys/", "method": "PATCH", "kind": "latency",
                         "delay": LATE}),
    ("delete-truncated", {"path": f"{OR}/keys/", "method": "DELETE", "kind": "truncate"}),
    ("delete-500", {"path": f"{OR}/keys/", "method": "DELETE", "kind": "status",
                    "status": 500, "times": 10}),
    ("delete-timeout", {"path": f"{OR}/keys/", "method": "DELETE", "kind": "latency",
                        "delay": LATE, "times": 2}),
]


@pytest.mark.parametrize(("label", "rule"), OPENROUTER_FAULTS,
                         ids=[f[0] for f in OPENROUTER_FAULTS])
def test_fault_at_each_openrouter_call(bench: Bench, label: str, rule: dict[str, Any]) -> None:
    original = bench.current(OPENROUTER)
    run_under_fault(bench, "openrouter", rule, watch_state=False)
    if label == "create-timeout":
        # A late create may land after this rotation's read-back: the next run's sweep
        # finds it by its rotation label and removes it.
        time.sleep(LATE)
        assert bench.cli("rotate", "openrouter", "--grace", "0").returncode == 0
        original = ""
    assert_openrouter_settled(bench, rotated=True, original=original)


@pytest.mark.parametrize("kind", ["truncate", "drop"])
def test_ambiguous_create_is_settled_by_reading_back(bench: Bench, kind: str) -> None:
    """The create's answer is lost. The job does not blindly mint again: it lists the keys
    named after its rotation, discards the one whose value it never saw (truncate: the key
    exists), then mints the next attempt; all in one run, exit 0, one key left."""
    original = bench.current(OPENROUTER)
    bench.fault(path=f"{OR}/keys$", method="POST", kind=kind)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    events = audit_events(bench)
    names = [e["event"] for e in events]
    first_bad = names.index("rotation.create-ambiguous")
    after = events[first_bad + 1:]
    discarded = [e for e in after if e["event"] == "rotation.orphan-removed"
                 and e["reason"] == "create outcome unknown; value never seen"]
    stored = next(e for e in after if e.get("step") == "stored")
    assert stored["attempt"] == 2  # the second attempt's key is the one stored
    if kind == "truncate":  # the lost key was found by its name and removed before attempt 2
        assert len(discarded) == 1 and after.index(discarded[0]) < after.index(stored)
    else:  # the request never reached the handler: nothing to discard
        assert discarded == []
    assert_openrouter_settled(bench, rotated=True, original=original)


AP = "/api/v1/agent"
IMPROMPTU_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("identify-503", {"path": f"{AP}/keys$", "method": "GET", "kind": "status", "status": 503,
                      "times": 10}),
    ("create-truncated", {"path": f"{AP}/keys$", "method": "POST", "kind": "truncate"}),
    ("create-dropped", {"path": f"{AP}/keys$", "method": "POST", "kind": "drop", "times": 2}),
    ("create-503", {"path": f"{AP}/keys$", "method": "POST", "kind": "status", "status": 503,
                    "times": 10}),
    ("create-429", {"path": f"{AP}/keys$", "method": "POST", "kind": "status", "status": 429,
                    "retryAfter": 0, "times": 10}),
    ("create-timeout", {"path": f"{AP}/keys$", "method": "POST", "kind": "latency",
                        "delay": LATE, "times": 2}),
    ("heartbeat-503", {"path": f"{AP}/heartbeat$", "method": "GET", "kind": "status",
                       "status": 503, "times": 10}),
    ("heartbeat-dropped", {"path": f"{AP}/heartbeat$", "method": "GET", "kind": "drop",
                           "times": 5}),
    ("heartbeat-timeout", {"path": f"{AP}/heartbeat$", "method": "GET", "kind": "latency",
                           "delay": LATE, "times": 2}),
    ("revoke-500", {"path": f"{AP}/keys/", "method": "DELETE", "kind": "status",
                    "status": 500, "times": 10}),
    ("revoke-dropped", {"path": f"{AP}/keys/", "method": "DELETE", "kind": "drop"}),
    ("revoke-429", {"path": f"{AP}/keys/", "method": "DELETE", "kind": "status",
                    "status": 429, "retryAfter": 0, "times": 10}),
]


@pytest.mark.parametrize(("label", "rule"), IMPROMPTU_FAULTS,
                         ids=[f[0] for f in IMPROMPTU_FAULTS])
def test_fault_at_each_impromptu_call(bench: Bench, label: str, rule: dict[str, Any]) -> None:
    original = bench.current(IMPROMPTU)
    run_under_fault(bench, "impromptu", rule, watch_state=label.startswith("heartbeat"))
    impromptu_settled(bench, original)  # exactly one live key: the idempotent replay
    # of an ambiguous create returned the same key instead of minting a third


def test_exit_1_failed_with_a_working_key(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    bench.fault(path=f"{OR}/keys$", method="POST", kind="status", status=503, times=None)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "the agent still has a working key" in proc.stderr and "rotate resume" in proc.stderr
    assert bench.current(OPENROUTER) == original and bench.openrouter_works(original)
    bench.clear_faults()
    assert bench.cli("rotate", "resume").returncode == 0
    assert_openrouter_settled(bench, rotated=True, original=original)


def test_exit_2_when_the_current_key_is_refused(bench: Bench) -> None:
    """Someone disabled the agent's key behind our back and the rotation cannot finish: the
    run proves the key in the store is refused and says to page someone."""
    original = bench.current(OPENROUTER)
    original_hash = bench.openrouter_hash(original)
    resp = bench.sandbox.control("GET", "state")["openrouter"]["keys"][original_hash]
    assert resp["disabled"] is False
    provisioning = bench.current(PROVISIONING)
    import httpx

    httpx.patch(f"{bench.sandbox.openrouter_url}/keys/{original_hash}", json={"disabled": True},
                headers={"Authorization": f"Bearer {provisioning}"}, timeout=10
                ).raise_for_status()
    bench.fault(path=f"{OR}/keys$", method="POST", kind="status", status=503, times=None)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "page someone" in proc.stderr
    assert original not in proc.stderr


def test_same_machine_second_run_is_skipped_by_the_local_lock(bench: Bench) -> None:
    """While one run is paused mid-rotation (test hook), a second run on the same machine
    exits 75 at once and changes nothing."""
    seen: list[subprocess.CompletedProcess[str]] = []

    def second_run(boundary: str) -> None:
        if boundary == "stored" and not seen:
            seen.append(bench.cli("rotate", "openrouter", "--grace", "0"))

    watcher = openrouter_watcher(bench)
    watcher.on_boundary = second_run
    with watcher.watching():
        first = bench.cli("rotate", "openrouter", "--grace", "0", env=watcher.env())
    assert first.returncode == 0, first.stderr
    (second,) = seen
    assert second.returncode == 75, second.stderr
    assert second.stderr.count("\n") == 1 and "rotate openrouter" in second.stderr
    assert len(bench.openrouter_keys()) == 1
    watcher.assert_clean("stored", "done")


def test_make_bench_isolated(sandbox: SandboxServer, tmp_path: Path) -> None:
    """Two benches on one sandbox do not see each other's keys (guards the fixtures)."""
    a = make_bench(sandbox, tmp_path / "a")
    b = make_bench(sandbox, tmp_path / "b")
    assert a.current(OPENROUTER) != b.current(OPENROUTER)
