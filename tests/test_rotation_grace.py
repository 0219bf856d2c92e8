"""Issue 11, finding 4: grace that means grace, end to end (real CLI, sandbox, store).

During the grace period the OLD key keeps working (an agent holding it gets no 401); the
record holds the pending retirement and its due time (``rotate status``); runs before it
is due do nothing and say so (exit 0; a new ``rotate`` is "try later", 75); once due,
``rotate resume``, the scheduled ``rotate --if-due`` or a new ``rotate`` disables and
deletes it. "Due" is reached by moving the record's due time into the past (CAS write),
not by sleeping.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.rotation.record import RecordStore, State, Step
from impromptu_ops.sandbox.server import SandboxServer
from tests.rotation_env import IMPROMPTU, OPENROUTER, Bench, make_bench


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def make_due(bench: Bench, provider: str) -> None:
    records = RecordStore(bench.store)
    rec, ver = records.load(provider)
    assert rec is not None and rec.step == Step.PROMOTED
    records.save(dataclasses.replace(rec, grace_until="2000-01-01T00:00:00Z"), cas=ver)


def openrouter_all(bench: Bench) -> list[dict[str, Any]]:
    resp = httpx.get(f"{bench.sandbox.openrouter_url}/keys",
                     params={"include_disabled": "true"},
                     headers={"Authorization": f"Bearer {bench.provisioning}"}, timeout=10)
    resp.raise_for_status()
    keys: list[dict[str, Any]] = resp.json()["data"]
    return keys


def test_openrouter_old_key_works_through_grace_then_if_due_retires_it(bench: Bench) -> None:
    original = bench.current(OPENROUTER)
    first = bench.cli("rotate", "openrouter", "--grace", "1h", "--json")
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    assert bench.openrouter_works(original) is True  # not disabled: grace means grace
    assert out["step"] == "promoted" and out["state"] == "running" and out["grace_until"]
    assert "keeps working until" in out["message"]
    new = bench.current(OPENROUTER)
    assert new != original and bench.openrouter_works(new) is True
    assert bench.openrouter_works(original) is True  # not disabled: grace means grace
    assert len(openrouter_all(bench)) == 2 and not any(k["disabled"]
                                                      for k in openrouter_all(bench))
    status = bench.cli("rotate", "status", "openrouter", "--json")
    rec = json.loads(status.stdout)[0]["record"]
    assert rec["pending_retirement"].endswith(
        "(`rotate resume` or the next `rotate --if-due` retires it)")
    assert f"works until {out['grace_until']}" in rec["pending_retirement"]
    # before due: each way in does nothing, says so
    early = bench.cli("rotate", "resume")
    assert early.returncode == 0 and "nothing to do yet" in early.stdout, early.stderr
    scheduled = bench.cli("rotate", "openrouter", "--if-due")
    assert scheduled.returncode == 0 and "nothing to do yet" in scheduled.stdout
    again = bench.cli("rotate", "openrouter")
    assert again.returncode == 75 and "keeps working until" in again.stderr
    assert again.stderr.count("\n") == 1
    assert bench.openrouter_works(original) is True and bench.current(OPENROUTER) == new
    # once due: the scheduled run retires it (and, the new key being fresh, rotates nothing)
    make_due(bench, "openrouter")
    due = bench.cli("rotate", "openrouter", "--if-due")
    assert due.returncode == 0, due.stdout + due.stderr
    assert "is deleted (confirmed by the provider)" in due.stdout
    assert bench.openrouter_works(original) is False
    assert bench.current(OPENROUTER) == new and bench.openrouter_works(new) is True
    assert len(openrouter_all(bench)) == 1
    record = bench.record("openrouter")
    assert record is not None and record.state == State.DONE


def test_impromptu_second_rotation_retires_the_due_key_first(bench: Bench) -> None:
    """Two active keys is the platform's cap (KEY_LIMIT): a new rotation while an old key
    is in its grace period is refused with the due time; once due it retires it first."""
    original = bench.current(IMPROMPTU)
    assert bench.cli("rotate", "impromptu", "--grace", "1h").returncode == 0
    second = bench.current(IMPROMPTU)
    assert bench.impromptu_works(original) is True and bench.impromptu_works(second) is True
    refused = bench.cli("rotate", "impromptu", "--grace", "1h")
    assert refused.returncode == 75 and "KEY_LIMIT" not in refused.stderr
    assert "keeps working until" in refused.stderr
    make_due(bench, "impromptu")
    third = bench.cli("rotate", "impromptu", "--grace", "1h")
    assert third.returncode == 0, third.stdout + third.stderr
    assert third.stdout.startswith("impromptu: finished rotation"), third.stdout
    assert bench.impromptu_works(original) is False
    assert bench.impromptu_works(second) is True  # now the one in its grace period
    current = bench.current(IMPROMPTU)
    assert current not in (original, second) and bench.impromptu_works(current) is True
    live = [k for k in bench.impromptu_keys() if k["revokedAt"] is None]
    assert len(live) == 2


def test_rollback_during_grace_restores_the_old_key(bench: Bench) -> None:
    """Until the retirement begins the old key was never touched: rollback may restore it
    (it checks the old key works first) and revokes the new one."""
    original = bench.current(IMPROMPTU)
    assert bench.cli("rotate", "impromptu", "--grace", "1h").returncode == 0
    back = bench.cli("rotate", "rollback", "impromptu")
    assert back.returncode == 0, back.stderr
    assert bench.current(IMPROMPTU) == original and bench.impromptu_works(original) is True
    assert len([k for k in bench.impromptu_keys() if k["revokedAt"] is None]) == 1


AGENT = """
import os, sys, time, urllib.error, urllib.request
url, env_name, out, stop = sys.argv[1:5]
key = os.environ[env_name]  # read once at start, like any agent holding its key
ok = failed = 0
while not os.path.exists(stop):
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            ok += resp.status == 200
    except urllib.error.HTTPError:
        failed += 1
    time.sleep(0.05)
with open(out, "w") as fh:
    fh.write(f"{ok} {failed}")
"""


@pytest.mark.parametrize("provider", ["openrouter", "impromptu"])
def test_an_agent_holding_the_old_key_keeps_working_through_the_grace_period(
        bench: Bench, tmp_path: Path, provider: str) -> None:
    """Finding 4 as a user sees it: an agent started with ``secrets exec`` holds the old key
    in its environment and calls the provider every 50 ms; a rotation with ``--grace 1h``
    must not cost it a single call (the old code disabled the old key at once: 401)."""
    secret, env_name, url = (
        (OPENROUTER, "OPENROUTER_API_KEY", f"{bench.sandbox.openrouter_url}/key")
        if provider == "openrouter" else
        (IMPROMPTU, "IMPROMPTU_API_KEY", f"{bench.sandbox.base_url}/v1/agent/heartbeat"))
    script, out, stop = tmp_path / "agent.py", tmp_path / "agent.out", tmp_path / "stop"
    script.write_text(AGENT)
    agent = subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", "--only", secret, "--",
         sys.executable, str(script), url, env_name, str(out), str(stop)],
        env=bench.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        rotated = bench.cli("rotate", provider, "--grace", "1h")
        assert rotated.returncode == 0, rotated.stderr
        time.sleep(1.0)  # calls after the cut-over, with the old key
        assert bench.cli("rotate", "resume").returncode == 0  # not due: nothing changes
        time.sleep(0.5)
    finally:
        stop.touch()
        _, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err
    ok, failed = (int(n) for n in out.read_text().split())
    assert failed == 0 and ok >= 20, (ok, failed)
