"""HA: a rotation whose Vault leader dies mid-flight completes or resumes on the new leader.

Three OpenBao nodes with integrated Raft storage on loopback. The rotation job talks to
the active node; the leader is SIGKILLed while the job waits
on a slowed OpenRouter create, i.e. after its intent is recorded and before the new key is
stored. Whatever the job then reports (done, or failed with a working key), a ``resume``
against the surviving nodes ends with exactly one current key that works, no orphan, and
the watcher never saw the store hold a dead key.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from impromptu_ops.rotation.record import State
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_raft import RaftCluster
from tests.rotation_env import OPENROUTER, make_bench, openrouter_watcher
from tests.test_rotation_sandbox import assert_openrouter_settled


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_leader_killed_mid_rotation(raft_cluster: RaftCluster, sandbox: SandboxServer,
                                    tmp_path: Path) -> None:
    leader = raft_cluster.wait_for_leader()
    # The job talks to the active node (OpenBao standbys may serve stale reads, and the
    # rotation's read-backs must see its own writes); after the kill it is pointed at the
    # new leader, a surviving node.
    store_env = {"IMPROMPTU_STORE_BACKEND": "vault", "VAULT_ADDR": leader.addr,
                 "VAULT_TOKEN": raft_cluster.root_token,
                 "IMPROMPTU_STORE_AGENT": f"ha{uuid.uuid4().hex[:8]}",
                 "IMPROMPTU_STORE_VAULT_TIMEOUT": "5"}
    bench = make_bench(sandbox, tmp_path / "home", store_env)
    original = bench.current(OPENROUTER)
    bench.fault(path="/openrouter/api/v1/keys$", method="POST", kind="latency", delay=2.5)

    watcher = openrouter_watcher(bench)
    with watcher.watching():
        job = subprocess.Popen(
            [sys.executable, "-m", "impromptu_ops.cli", "rotate", "openrouter", "--grace", "0"],
            env=bench.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while (rec := bench.record("openrouter")) is None or rec.step.value != "intent":
            assert time.monotonic() < deadline and job.poll() is None, "no intent recorded"
            time.sleep(0.05)
        raft_cluster.kill(leader)  # mid-rotation: intent recorded, new key not yet stored
        _out, errs = job.communicate(timeout=90)
        assert job.returncode in (0, 1), (job.returncode, errs)
        new_leader = raft_cluster.wait_for_leader(exclude=leader)
        assert new_leader is not leader
        bench.repoint({"VAULT_ADDR": new_leader.addr})
        if job.returncode == 1:
            assert "rotation failed" in errs and "rotate resume" in errs
            resumed = bench.cli("rotate", "resume")
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_openrouter_settled(bench, rotated=True, original=original)
    rec = bench.record("openrouter")
    assert rec is not None and rec.state == State.DONE
    watcher.assert_clean()
