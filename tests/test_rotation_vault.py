"""Rotating the jobs' own AppRole secret_id on a real OpenBao, through the CLI; and two
rotations on two "machines" sharing that Vault.

The store is the Vault backend on the same server; the rotation job holds a token allowed
to manage the role's secret_ids. After rotation: the store and the jobs' secret_id file
hold the new secret_id, it logs in, the old one does not, and the role has exactly one
secret_id left (none orphaned), also after a SIGKILL at every step boundary. A watcher logs
in with the store's secret_id and with the file's, continuously and at each boundary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from impromptu_ops.rotation.crash import BARRIER_ENV, BOUNDARIES
from impromptu_ops.rotation.record import RecordStore, State
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_vault import BaoServer
from tests.rotation_env import OPENROUTER, AppRoleBench, VaultFaultProxy, make_bench
from tests.test_rotation_sandbox import assert_openrouter_settled

FORWARD = [b for b in BOUNDARIES if b != "rollback-restored"]


@pytest.fixture
def approle(bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> AppRoleBench:
    return AppRoleBench(bao_server, unique_agent, tmp_path)


def test_rotate_secret_id(approle: AppRoleBench) -> None:
    watcher = approle.watcher()
    with watcher.watching():
        proc = approle.cli("rotate", "vault-secret-id", "--grace", "0", env=watcher.env())
    assert proc.returncode == 0, proc.stderr
    approle.assert_rotated()
    # a named agent keeps its state in its own folder (issue 17: STATE/agents/NAME)
    audit = (Path(approle.env["XDG_STATE_HOME"]) / "impromptu-ops/agents"
             / approle.env["IMPROMPTU_STORE_AGENT"]
             / "audit/rotation.jsonl").read_text()
    for value in (approle.current(), approle.initial):
        assert value not in proc.stdout + proc.stderr + audit
    watcher.assert_clean(*FORWARD)


@pytest.mark.parametrize("boundary", FORWARD)
def test_secret_id_sigkill_at_every_boundary_then_resume(approle: AppRoleBench,
                                                         boundary: str) -> None:
    watcher = approle.watcher()
    with watcher.watching():
        killed = approle.cli("rotate", "vault-secret-id", "--grace", "0", crash_at=boundary,
                             env=watcher.env())
        assert killed.returncode == -9, killed.stderr
        # whatever instant it died at, the store's secret_id and the jobs' file log in
        assert approle.logs_in(approle.current()) is True
        assert approle.file_problem() is None
        resumed = approle.cli("rotate", "resume", env=watcher.env())
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    approle.assert_rotated()
    watcher.assert_clean(boundary, "done")


def test_secret_id_crash_after_create_then_rollback_destroys_it(approle: AppRoleBench) -> None:
    killed = approle.cli("rotate", "vault-secret-id", "--grace", "0", crash_at="created")
    assert killed.returncode == -9
    assert len(approle.accessors()) == 2  # minted, never stored: found by its metadata
    back = approle.cli("rotate", "rollback")
    assert back.returncode == 0, back.stderr
    assert len(approle.accessors()) == 1
    assert approle.current() == approle.initial and approle.logs_in(approle.initial)


R = r"/v1/auth/approle/role/[^/]+"
VAULT_FAULTS: list[tuple[str, str, str, str, int]] = [
    ("identify-503", "POST", f"{R}/secret-id/lookup$", "status", 503),
    ("create-503", "POST", f"{R}/secret-id$", "status", 503),
    ("create-dropped", "POST", f"{R}/secret-id$", "drop", 0),
    ("create-late", "POST", f"{R}/secret-id$", "late", 0),  # minted; the answer is lost
    ("list-503", "LIST", f"{R}/secret-id$", "status", 503),
    ("lookup-dropped", "POST", f"{R}/secret-id-accessor/lookup$", "drop", 0),
    ("login-503", "POST", r"/v1/auth/approle/login$", "status", 503),
    ("login-dropped", "POST", r"/v1/auth/approle/login$", "drop", 0),
    ("destroy-500", "POST", f"{R}/secret-id-accessor/destroy$", "status", 500),
    ("destroy-late", "POST", f"{R}/secret-id-accessor/destroy$", "late", 0),
]


@pytest.mark.parametrize(("label", "method", "path", "kind", "status"), VAULT_FAULTS,
                         ids=[f[0] for f in VAULT_FAULTS])
def test_fault_at_each_vault_call(approle: AppRoleBench, label: str, method: str, path: str,
                                  kind: str, status: int) -> None:
    """Faults on the AppRole calls (an HTTP proxy in front of OpenBao; the KV store's calls
    pass untouched): the run completes or fails with exit 1, the resume finishes, one
    secret_id is left and the jobs' file logs in throughout."""
    proxy = VaultFaultProxy(approle.bao.addr)
    try:
        approle.env.update(VAULT_ADDR=proxy.addr, BAO_ADDR=proxy.addr)
        rule = proxy.add(method, path, kind, status=status)
        watcher = approle.watcher()
        with watcher.watching():
            first = approle.cli("rotate", "vault-secret-id", "--grace", "0", env=watcher.env())
            assert first.returncode in (0, 1), (label, first.stdout, first.stderr)
            if first.returncode == 1:
                assert first.stderr.count("\n") == 1 and "Traceback" not in first.stderr
            assert rule.fired == 1, f"the fault never fired: {label}"
            proxy.clear()
            args = (("resume",) if approle.record() is not None
                    else ("vault-secret-id", "--grace", "0"))  # nothing started: run again
            again = approle.cli("rotate", *args, env=watcher.env())
        assert again.returncode == 0, again.stdout + again.stderr
        approle.assert_rotated()
        watcher.assert_clean("done")
        if label == "create-late":  # minted, answer lost: found by its metadata and
            # destroyed by the read-back before the next attempt, not by a later sweep
            audit = (Path(approle.env["XDG_STATE_HOME"]) / "impromptu-ops/agents"
                     / approle.env["IMPROMPTU_STORE_AGENT"] / "audit/"
                     "rotation.jsonl").read_text().splitlines()
            events = [json.loads(line) for line in audit]
            names = [e["event"] for e in events]
            lost = names.index("rotation.create-ambiguous")
            removed = names.index("rotation.orphan-removed", lost)
            stored = next(i for i, e in enumerate(events) if e.get("step") == "stored")
            assert lost < removed < stored
            assert events[removed]["reason"] == "create outcome unknown; value never seen"
    finally:
        proxy.close()


def test_secret_id_needs_role_name(approle: AppRoleBench) -> None:
    approle.env.pop("IMPROMPTU_ROTATION_APPROLE_ROLE")
    proc = approle.cli("rotate", "vault-secret-id")
    assert proc.returncode == 1 and "role name" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert approle.current() == approle.initial


def test_two_machines_sharing_vault_the_cas_decides(bao_server: BaoServer, unique_agent: str,
                                                    sandbox: SandboxServer,
                                                    tmp_path: Path) -> None:
    """Two rotation processes with DIFFERENT lock files (two machines) and one Vault. A
    test-only barrier holds both just after they read "no rotation", so both then race to
    write the intent: exactly one CAS write succeeds; the other exits 75 having minted
    nothing, and the winner's rotation completes."""
    store_env = {**bao_server.env(), "IMPROMPTU_STORE_BACKEND": "vault",
                 "IMPROMPTU_STORE_AGENT": unique_agent}
    bench = make_bench(sandbox, tmp_path / "home", store_env)
    original = bench.current(OPENROUTER)
    meet = tmp_path / "barrier"
    meet.mkdir()
    procs = []
    for n in (1, 2):
        env = {**bench.env, "XDG_STATE_HOME": str(tmp_path / f"machine{n}"),
               BARRIER_ENV: f"loaded:{meet}:2"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "impromptu_ops.cli", "rotate", "openrouter", "--grace", "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    results = [(p.returncode, errs) for p, (_out, errs) in zip(procs, outs, strict=True)]
    assert len(list(meet.iterdir())) == 2  # both really reached the barrier
    assert sorted(code for code, _ in results) == [0, 75], results
    loser = next(text for code, text in results if code == 75)
    assert "recorded its intent first" in loser and loser.count("\n") == 1
    assert_openrouter_settled(bench, rotated=True, original=original)
    # the loser wrote nothing: the record went straight from the winner's intent to done
    rec, _version = RecordStore(bench.store).load("openrouter")
    assert rec is not None and rec.state == State.DONE and rec.attempt == 1
    for n in (1, 2):
        assert (tmp_path / f"machine{n}" / "impromptu-ops/agents" / unique_agent
                / "locks").is_dir()  # the agent's own state folder (issue 17)
