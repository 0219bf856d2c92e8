"""``impromptu-ops pow solve`` / ``pow verify`` for runbooks: JSON in, JSON out, one-line errors."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.cli.pow import ProgressBar
from impromptu_ops.pow.solver import Progress


def challenge_doc(difficulty: int = 5) -> dict[str, Any]:
    return {
        "chainId": str(uuid.uuid4()),
        "algorithm": "argon2id",
        "params": {"memoryKiB": 16, "iterations": 1, "parallelism": 1, "hashLength": 32},
        "rounds": [{"index": i, "salt": base64.b64encode(bytes([i]) * 16).decode(),
                    "difficulty": difficulty} for i in range(4)],
        "expiresAt": (datetime.now(UTC) + timedelta(minutes=15)).isoformat(),
    }


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_solve_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMPROMPTU_POW_CALIBRATION_SECONDS", "0.02")
    challenge = tmp_path / "challenge.json"
    challenge.write_text(json.dumps({"challenge": challenge_doc()}))  # wrapped, as served
    code, out, err = cli(capsys, "pow", "solve", "--challenge", str(challenge), "--workers", "2")
    assert code == 0, err
    assert "PoW: 4 rounds of 5-5 bits" in err and "x2" in err and "solved 4 rounds" in err
    solution = tmp_path / "solution.json"
    solution.write_text(out)
    assert len(json.loads(out)["nonces"]) == 4
    code, out, _ = cli(capsys, "pow", "verify", "--challenge", str(challenge),
                       "--solution", str(solution))
    assert code == 0 and "valid: all 4 rounds" in out
    doc = json.loads(solution.read_text())
    doc["nonces"][2] = -1
    solution.write_text(json.dumps({"pow": doc}))
    code, _, err = cli(capsys, "pow", "verify", "--challenge", str(challenge),
                       "--solution", str(solution))
    assert code == 65 and "non-negative" in err and err.count("\n") == 1
    doc["nonces"][2] = 10**9 + 7  # almost surely not a solution of a 5-bit round
    solution.write_text(json.dumps(doc))
    code, _, err = cli(capsys, "pow", "verify", "--challenge", str(challenge),
                       "--solution", str(solution))
    assert code == 65 and "fails round(s) [2] of 4" in err


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "is not valid JSON"),
    (json.dumps({**challenge_doc(), "rounds": []}), "rounds must be a non-empty list"),
    (json.dumps({**challenge_doc(), "params": {"memoryKiB": 0, "iterations": 1,
                                               "parallelism": 1, "hashLength": 32}}),
     "memoryKiB=0 is outside"),
])
def test_bad_challenge_files(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                             message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    code, out, err = cli(capsys, "pow", "solve", "--challenge", str(path))
    assert code == 65 and message in err and err.count("\n") == 1 and out == ""
    code, _, err = cli(capsys, "pow", "solve", "--challenge", str(tmp_path / "missing.json"))
    assert code == 65 and "cannot read the challenge" in err


def test_caps_from_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(challenge_doc(difficulty=20)))
    code, _, err = cli(capsys, "pow", "solve", "--challenge", str(path), "--max-difficulty", "8")
    assert code == 1 and "above the cap of 8" in err


def test_progress_bar_draws_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    ProgressBar(enabled=False)(Progress(1, 10, 5, 1.0))
    assert capsys.readouterr().err == ""
    bar = ProgressBar(enabled=True, width=10)
    bar(Progress(10, 10, 40, 2.0))
    err = capsys.readouterr().err
    assert "[##########] 10/10 rounds" in err and "20.0 h/s" in err and "00:02" in err
