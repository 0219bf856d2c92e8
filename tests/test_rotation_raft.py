"""HA: a rotation whose Vault leader dies mid-flight completes on the new leader.

Three OpenBao nodes with integrated Raft storage on loopback, behind a load balancer that
sends each new connection to the active node (:class:`tests.fixtures_raft.LeaderProxy`):
the job has ONE Vault address, as in production. The job is paused (test hook) just after
it minted the new OpenRouter key, whose value then exists only in its memory, and the
leader is SIGKILLed right there; then the job goes on. It must wait out the election and
finish on the new leader: exactly one current key that works, no orphan, the record done,
and the watcher never saw the store hold a dead key.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from impromptu_ops.rotation.record import State
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_raft import RaftCluster, RaftNode
from tests.rotation_env import OPENROUTER, make_bench, openrouter_watcher
from tests.test_rotation_sandbox import assert_openrouter_settled


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_leader_killed_mid_rotation(raft_cluster: RaftCluster, sandbox: SandboxServer,
                                    tmp_path: Path) -> None:
    leader = raft_cluster.wait_for_leader()
    balancer = raft_cluster.proxy()
    store_env = {"IMPROMPTU_STORE_BACKEND": "vault", "VAULT_ADDR": balancer.addr,
                 "VAULT_TOKEN": raft_cluster.root_token,
                 "IMPROMPTU_STORE_AGENT": f"ha{uuid.uuid4().hex[:8]}",
                 "IMPROMPTU_STORE_VAULT_TIMEOUT": "3"}
    bench = make_bench(sandbox, tmp_path / "home", store_env)
    original = bench.current(OPENROUTER)
    killed: list[RaftNode] = []

    def kill_leader_at(boundary: str) -> None:
        if boundary == "created" and not killed:  # the new key is only in the job's memory
            raft_cluster.kill(leader)
            killed.append(leader)

    watcher = openrouter_watcher(bench)
    watcher.on_boundary = kill_leader_at
    with watcher.watching():
        job = subprocess.run(
            [sys.executable, "-m", "impromptu_ops.cli", "rotate", "openrouter", "--grace", "0"],
            env={**bench.env, **watcher.env()}, capture_output=True, text=True, timeout=90,
            check=False)
    assert killed == [leader], "the leader was not killed mid-rotation"
    new_leader = raft_cluster.wait_for_leader(exclude=leader)
    assert new_leader is not leader and new_leader.alive
    assert job.returncode == 0, job.stdout + job.stderr  # completed on the new leader
    assert_openrouter_settled(bench, rotated=True, original=original)
    rec = bench.record("openrouter")
    assert rec is not None and rec.state == State.DONE
    watcher.assert_clean("created", "stored", "promoted", "done")
    # a named agent keeps its state in its own folder (issue 17: STATE/agents/NAME)
    audit = (Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/agents"
             / store_env["IMPROMPTU_STORE_AGENT"] / "audit/rotation.jsonl").read_text()
    assert "store-retry" in audit or "store-outage" in audit  # it did meet the outage
