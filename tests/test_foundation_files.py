"""Atomic writes, locks and the hash-chained audit log."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from impromptu_ops import atomic
from impromptu_ops.audit import AuditLog
from impromptu_ops.errors import IntegrityError, LockBusy
from impromptu_ops.locks import ProcessLock
from impromptu_ops.secret import Secret


def test_write_json_is_private_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "state" / "s.json"
    atomic.write_json(target, {"a": 1})
    atomic.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["s.json"]


def test_create_exclusive_refuses_existing(tmp_path: Path) -> None:
    atomic.create_exclusive(tmp_path / "k", b"x")
    with pytest.raises(FileExistsError):
        atomic.create_exclusive(tmp_path / "k", b"y")
    assert (tmp_path / "k").read_bytes() == b"x"


def test_private_dir_tightens(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    atomic.private_dir(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_lock_is_exclusive_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "job.lock"
    code = (
        "import sys,time; from pathlib import Path; from impromptu_ops.locks import ProcessLock\n"
        f"l=ProcessLock(Path({str(path)!r}),'job'); l.acquire(); print('held', flush=True);"
        " time.sleep(30)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "held"
            with pytest.raises(LockBusy) as info:
                ProcessLock(path, "job").acquire()
            assert info.value.exit_code == 75
            assert str(child.pid) in info.value.diagnostics()
        finally:
            child.kill()
    with ProcessLock(path, "job"):  # the kernel released it when the holder died
        pass


def test_audit_chain_detects_edits(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    secret = Secret("impr_sk_" + "z" * 40)
    log.append("start", detail=f"using {secret.reveal()}")
    log.append("step", n=2)
    log.append("done")
    assert log.verify().ok and log.require_intact() == 3
    text = (tmp_path / "audit.jsonl").read_text()
    assert secret.reveal() not in text
    lines = text.splitlines()
    lines[1] = lines[1].replace('"n":2', '"n":3')
    (tmp_path / "audit.jsonl").write_text("\n".join(lines) + "\n")
    rep = log.verify()
    assert not rep.ok and rep.first_bad_line == 2
    with pytest.raises(IntegrityError):
        log.require_intact()


def test_audit_chain_detects_dropped_line(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a.jsonl")
    for i in range(4):
        log.append("e", i=i)
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    del lines[2]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n")
    assert log.verify().first_bad_line == 3
    assert os.environ.get("HOME")  # isolated_home fixture is active
