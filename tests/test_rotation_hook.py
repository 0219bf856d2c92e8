"""The reload hook (issue 11, Build 4): run after promotion so running consumers reload.

A real CLI run against the sandbox, with a hook that is a small Python program writing
what it received (argv, environment, the store's current key at that instant) to a file.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.errors import ConfigError
from impromptu_ops.policy.rotation import parse_command, parse_rotation_policy
from impromptu_ops.rotation.hook import hook_env, run_hook
from impromptu_ops.sandbox.server import SandboxServer
from tests.rotation_env import IMPROMPTU, OPENROUTER, Bench, make_bench

RECORDER = """
import json, os, sys
from pathlib import Path
Path(sys.argv[1]).write_text(json.dumps({"argv": sys.argv, "env": dict(os.environ)}))
sys.exit(int(sys.argv[2]))
"""


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def recorder(tmp_path: Path, code: int = 0) -> tuple[str, Path]:
    script = tmp_path / "hook.py"
    script.write_text(RECORDER)
    seen = tmp_path / "seen.json"
    return shlex.join([sys.executable, str(script), str(seen), str(code)]), seen


def audit(bench: Bench) -> list[dict[str, object]]:
    path = Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hook_runs_after_promotion_without_the_key(bench: Bench, tmp_path: Path) -> None:
    original = bench.current(OPENROUTER)
    command, seen = recorder(tmp_path)
    proc = bench.cli("rotate", "openrouter", "--grace", "1h", "--on-rotate", command,
                     env={"VAULT_TOKEN": "s.not-for-the-hook", "IMPROMPTU_X": "y"})
    assert proc.returncode == 0, proc.stderr
    got = json.loads(seen.read_text())
    new = bench.current(OPENROUTER)
    env = got["env"]
    assert env["IMPROMPTU_ROTATED_SECRET"] == OPENROUTER
    rec = bench.record("openrouter")
    assert rec is not None and env["IMPROMPTU_ROTATION_ID"] == rec.rotation_id
    assert env["IMPROMPTU_OLD_KEY_RETIRES_AT"] == rec.grace_until
    assert env["IMPROMPTU_ROTATION_PROVIDER"] == "openrouter"
    blob = json.dumps(got)
    for secret in (new, original, bench.provisioning, "s.not-for-the-hook"):
        assert secret not in blob
    assert not [k for k in env if k.startswith(("VAULT_", "IMPROMPTU_STORE", "IMPROMPTU_X"))]
    assert rec.hook == "ok"
    events = [(e["event"], e.get("step", "")) for e in audit(bench)]
    assert events.index(("rotation.hook", "")) > events.index(("rotation.step", "promoted"))
    # run once per rotation: resume does not run it again
    seen.unlink()
    assert bench.cli("rotate", "resume").returncode == 0
    assert not seen.exists()


def test_failed_hook_is_exit_1_and_the_rotation_stands(bench: Bench, tmp_path: Path) -> None:
    original = bench.current(IMPROMPTU)
    command, seen = recorder(tmp_path, code=3)
    proc = bench.cli("rotate", "impromptu", "--grace", "1h", "--on-rotate", command)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "the reload hook failed (exit 3 after" in proc.stderr
    assert "rotated impromptu-api-key (the new key is current)" in proc.stderr
    assert seen.exists()
    new = bench.current(IMPROMPTU)
    assert new != original and bench.impromptu_works(new) is True
    assert bench.impromptu_works(original) is True  # grace: still working
    rec = bench.record("impromptu")
    assert rec is not None and rec.hook.startswith("failed: exit 3")
    hook_events = [e for e in audit(bench) if e["event"] == "rotation.hook"]
    assert len(hook_events) == 1 and str(hook_events[0]["result"]).startswith("failed")


def test_policy_hook_per_provider_with_its_timeout(bench: Bench, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    slow = shlex.join([sys.executable, "-c", "import time; time.sleep(30)"])
    (policies / "rotation.toml").write_text(
        f"[default]\non_rotate = {json.dumps(slow)}\non_rotate_timeout_seconds = 0.5\n"
        "[openrouter]\non_rotate = \"\"\n")
    env = {"IMPROMPTU_PATHS_POLICIES_DIR": str(policies)}
    quiet = bench.cli("rotate", "openrouter", "--grace", "0", env=env)
    assert quiet.returncode == 0, quiet.stderr  # [openrouter] turns the default hook off
    timed = bench.cli("rotate", "impromptu", "--grace", "0", env=env)
    assert timed.returncode == 1 and "timed out after 0.5s" in timed.stderr, timed.stderr
    assert bench.impromptu_works(bench.current(IMPROMPTU)) is True
    (policies / "rotation.toml").write_text("[impromptu]\non_rotate = \"unbalanced 'quote\"\n")
    before = bench.current(IMPROMPTU)
    bad = bench.cli("rotate", "impromptu", "--grace", "0", env=env)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "on_rotate" in bad.stderr and "Traceback" not in bad.stderr
    assert bench.current(IMPROMPTU) == before


def test_run_hook_reports_each_failure_kind(tmp_path: Path) -> None:
    assert run_hook("", 1, {}).ok
    assert run_hook(shlex.join([sys.executable, "-c", "pass"]), 5, {}).ok
    missing = run_hook("/nonexistent/reload-me now", 5, {})
    assert not missing.ok and "not found" in missing.detail
    killed = run_hook(shlex.join([sys.executable, "-c",
                                  "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]),
                      5, {})
    assert not killed.ok and "killed by signal 15" in killed.detail
    env = hook_env({"IMPROMPTU_ROTATED_SECRET": "x"},
                   {"PATH": "/bin", "VAULT_TOKEN": "t", "OPENROUTER_API_KEY": "k"})
    assert env == {"PATH": "/bin", "IMPROMPTU_ROTATED_SECRET": "x"}


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (every control character, quote, backslash escaped)."""
    return '"' + "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or c in '\x7f"\\' else c
                         for c in text) + '"'


@given(st.text(max_size=300))
def test_any_on_rotate_text_is_a_word_list_or_one_config_error(text: str) -> None:
    """Hostile policy text: split into words (no NUL) or refused with a ConfigError that
    names the setting; the file parser gives the same verdict as the flag's parser."""
    try:
        words = parse_command(text)
    except ConfigError as exc:
        assert exc.message.startswith("on_rotate"), exc.message
        with pytest.raises(ConfigError, match=r"\[default\]\.on_rotate"):
            parse_rotation_policy(f"[default]\non_rotate = {toml_string(text)}\n")
    else:
        assert all(isinstance(w, str) and "\x00" not in w for w in words)
        policy = parse_rotation_policy(f"[default]\non_rotate = {toml_string(text)}\n")
        assert policy.for_provider("impromptu").on_rotate == text


def test_on_rotate_must_be_a_string() -> None:
    with pytest.raises(ConfigError, match="must be a string"):
        parse_rotation_policy("[default]\non_rotate = 5\n")
