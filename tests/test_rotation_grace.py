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
