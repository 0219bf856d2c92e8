"""``scripts/impromptu-health`` keeps the original impromptu-health.sh's interface.

Facts from /work/shared/original-interfaces.md (impromptu-health.sh): six sections, each an
empty line, the title and 60 ``-``; ``[OK]``/``[WARN]``/``[FAIL]`` lines with the original's
texts and five-space details; ``Status: HEALTHY|DEGRADED|UNHEALTHY`` then an empty line and
the original's sentence; exit 0/2/1; 10 s per request; null fields tolerated; colours only
on a terminal. Every test runs the drop-in as a real process, HOME in a temp folder, against
one sandbox per module; where the original (reconstructed from the same facts in
bench/original/impromptu-health.sh) must say the same, the test runs it too and compares.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops import __version__
from impromptu_ops.api import Agent as OpsAgent
from impromptu_ops.sandbox.server import SandboxServer
from tests.dropins import REPO, closed_port_url, module_sandbox, run
from tests.fixtures_jobs import Agent, make_agent

ORIGINAL = REPO / "bench" / "original" / "impromptu-health.sh"
RULE = "-" * 60
TITLES = ["Checking dependencies...", "Checking environment...",
          "Checking API connectivity...", "Checking agent registration...",
          "Checking skill manifest...", "Health Check Summary"]
HEALTHY = ["Status: HEALTHY", "", "All checks passed. Your agent is ready to participate."]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    yield from module_sandbox(tmp_path_factory)


@pytest.fixture(autouse=True)
def _no_faults_left(shared: SandboxServer) -> Iterator[None]:
    yield
    shared.control("DELETE", "faults")


def agent_in(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Agent:
    return make_agent(shared, monkeypatch, **kw)


def cache_manifest(home: Path, version: str = "3.3.1", age_hours: float = 0.0) -> Path:
    """~/.impromptu/impromptu.skill.json as the original cached it, ``age_hours`` old."""
    path = home / ".impromptu" / "impromptu.skill.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f'{{"name": "impromptu", "version": "{version}"}}')
    then = time.time() - age_hours * 3600
    os.utime(path, (then, then))
    return path


def health(env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    proc = run("impromptu-health", env)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


def original(env: dict[str, str]) -> tuple[int, list[str]]:
    proc = run(ORIGINAL, env)
    return proc.returncode, proc.stdout.splitlines()


def section(lines: list[str], title: str) -> list[str]:
    """The lines of one section (after its rule, up to the next empty line)."""
    start = lines.index(title)
    assert lines[start - 1] == "" and lines[start + 1] == RULE, lines
    body: list[str] = []
    for line in lines[start + 2:]:
        if line == "":
            break
        body.append(line)
    return body


def checks(lines: list[str]) -> list[str]:
    """Every check line but the dependency section's (curl/jq there, ours here)."""
    deps = set(section(lines, TITLES[0]))
    return [ln for ln in lines if ln.startswith(("[OK]", "[WARN]", "[FAIL]"))
            and ln not in deps]


def summary(lines: list[str]) -> list[str]:
    return lines[lines.index("Health Check Summary") + 3:]


def masked(key: str) -> str:
    return f"{key[:8]}...{key[-4:]}"


def test_healthy_every_section_and_line(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                                        isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    code, out, err = health()
    assert code == 0 and err == ""
    assert [ln for ln in out if ln in TITLES] == TITLES
    assert out[0] == "" and out.count(RULE) == 6
    assert section(out, TITLES[0])[0] == f"[OK] impromptu-ops installed (v{__version__})"
    assert re.fullmatch(r"\[OK\] Python installed \(v3\.\d+\.\d+\)", section(out, TITLES[0])[1])
    assert section(out, TITLES[1]) == [
        f"[OK] IMPROMPTU_API_KEY configured ({masked(agent.api_key)})",
        f"[OK] OPENROUTER_API_KEY configured ({masked(agent.openrouter_key)})"]
    assert section(out, TITLES[2]) == [f"[OK] API endpoint reachable ({shared.base_url})",
                                       "[OK] API status: ok"]
    assert section(out, TITLES[3]) == [
        "[OK] Agent registered and authenticated", f"[OK] Agent ID: {agent.agent_id}",
        "     Name: hb-agent", "[OK] Current tier: REGISTERED", "     Reputation: 0",
        "[OK] Token balance: 0 IMPRMPT", "     Budget balance: 100",
        "[OK] No pending notifications"]
    assert section(out, TITLES[4]) == ["[OK] Skill manifest cached (v3.3.1)"]
    assert summary(out) == HEALTHY
    assert "\033[" not in "\n".join(out)  # not a terminal: no colours
    # the original, given the same keys in its environment, says the same
    o_code, o_out = original({"IMPROMPTU_API_KEY": agent.api_key,
                              "OPENROUTER_API_KEY": agent.openrouter_key})
    assert o_code == 0 and checks(o_out) == checks(out) and summary(o_out) == HEALTHY


def test_fresh_setup_is_degraded(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # what quickstart leaves: a platform key, no OpenRouter key, no cached manifest
    agent = agent_in(shared, monkeypatch)
    from impromptu_ops.settings import load_settings
    from impromptu_ops.store.factory import open_store

    open_store(load_settings()).delete("openrouter-api-key")
    code, out, _ = health()
    assert code == 2
    assert section(out, TITLES[1])[1:] == [
        "[WARN] OPENROUTER_API_KEY not set (optional for LLM inference)",
        "     Get one at: https://openrouter.ai/keys"]
    assert section(out, TITLES[4]) == [
        "[WARN] Skill manifest not cached",
        "     Install it through the update gate: impromptu-ops update fetch"]
    assert summary(out) == ["Status: DEGRADED", "", "2 warning(s) detected. Your agent is "
                            "operational but some optional features may be missing."]
    o_code, o_out = original({"IMPROMPTU_API_KEY": agent.api_key})
    assert o_code == 2 and checks(o_out) == checks(out) and summary(o_out) == summary(out)


def test_no_key_anywhere(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                         isolated_home: Path) -> None:
    agent_in(shared, monkeypatch, store_platform_key=False)
    cache_manifest(isolated_home)
    code, out, _ = health()
    assert code == 1
    assert section(out, TITLES[1])[:3] == [
        "[FAIL] IMPROMPTU_API_KEY not set",
        "     Get your key at: https://impromptusocial.ai/agents/setup",
        "     Then: impromptu-ops secrets put impromptu-api-key"]
    assert section(out, TITLES[3]) == ["[FAIL] Cannot check registration (no API key)"]
    assert summary(out) == ["Status: UNHEALTHY", "", "2 error(s) detected. Please resolve "
                            "the issues above before proceeding."]
    o_code, o_out = original({"OPENROUTER_API_KEY": "sk-or-v1-" + "a" * 64})
    assert o_code == 1 and [ln for ln in checks(o_out) if ln.startswith("[FAIL]")] == [
        ln for ln in checks(out) if ln.startswith("[FAIL]")]


def test_key_only_in_the_environment_still_works_with_a_hint(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch, store_platform_key=False)
    cache_manifest(isolated_home)
    code, out, err = health({"IMPROMPTU_API_KEY": agent.api_key})
    assert code == 0 and summary(out) == HEALTHY
    assert section(out, TITLES[1])[0] == (
        f"[OK] IMPROMPTU_API_KEY configured ({masked(agent.api_key)})")
    assert section(out, TITLES[3])[1] == f"[OK] Agent ID: {agent.agent_id}"
    assert err.splitlines() == [
        "impromptu-health: IMPROMPTU_API_KEY read from the environment; move it into the "
        "secret store with `impromptu-ops secrets import --from-env`, then unset the variable"]
    assert agent.api_key not in out and agent.api_key not in err


def test_store_key_wins_over_the_environment(shared: SandboxServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    agent = agent_in(shared, monkeypatch)
    code, out, err = health({"IMPROMPTU_API_KEY": "impr_sk_" + "x" * 40})
    assert section(out, TITLES[3])[0] == "[OK] Agent registered and authenticated"
    assert err == "" and masked(agent.api_key) in "\n".join(out) and code == 2


def test_invalid_key(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                     isolated_home: Path) -> None:
    agent_in(shared, monkeypatch, store_platform_key=False)
    cache_manifest(isolated_home)
    bad = "impr_sk_" + "Q" * 40
    code, out, _ = health({"IMPROMPTU_API_KEY": bad})
    assert code == 1
    assert section(out, TITLES[3]) == [
        "[FAIL] Agent not registered or invalid API key",
        "     Register at: https://impromptusocial.ai/agents/setup"]
    assert summary(out)[0] == "Status: UNHEALTHY"
    o_code, o_out = original({"IMPROMPTU_API_KEY": bad,
                              "OPENROUTER_API_KEY": "sk-or-v1-" + "a" * 64})
    assert o_code == 1 and section(o_out, TITLES[3]) == section(out, TITLES[3])


def test_a_body_with_an_error_member_fails_as_in_the_original(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    # the original greps the heartbeat's body for "error" (quotes included): an agent named
    # exactly "error" reads as a failure there, and here too (kept: a runbook may rely on it)
    agent = agent_in(shared, monkeypatch, name="error")
    cache_manifest(isolated_home)
    code, out, _ = health()
    assert code == 1 and section(out, TITLES[3])[0] == (
        "[FAIL] Agent not registered or invalid API key")
    o_code, o_out = original({"IMPROMPTU_API_KEY": agent.api_key,
                              "OPENROUTER_API_KEY": agent.openrouter_key})
    assert o_code == 1 and section(o_out, TITLES[3]) == section(out, TITLES[3])


def test_platform_down(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                       isolated_home: Path) -> None:
    agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    down = closed_port_url()
    code, out, _ = health({"IMPROMPTU_API_URL": down})
    assert code == 1
    assert section(out, TITLES[2]) == [
        f"[FAIL] Cannot reach API endpoint ({down})",
        "     Check your network connection or try again later",
        "     Status page: https://status.impromptusocial.ai"]
    # the original said "Agent not registered or invalid API key" here: it blamed the key
    # for an outage. We say we could not ask (still one error, still UNHEALTHY).
    assert section(out, TITLES[3]) == ["[FAIL] Cannot check registration (API unreachable)"]
    assert summary(out)[0] == "Status: UNHEALTHY" and summary(out)[2].startswith("2 error(s)")


def test_four_seconds_of_latency_is_still_healthy(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    # the original waits up to 10 s per request (curl --max-time 10); so do we
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    agent.fault(path=r"/api/v1/agent/heartbeat$", kind="latency", delay=4, times=1)
    started = time.monotonic()
    code, out, _ = health()
    assert code == 0 and summary(out) == HEALTHY, out
    assert time.monotonic() - started >= 4  # the request really waited


def test_each_request_gets_the_originals_ten_seconds(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    # (a real 10 s wait would cost the suite 10 s: the limit each request is given is checked
    # here, and that a 4 s answer is still waited for, above)
    import time as clock

    from impromptu_ops.health import probe
    from impromptu_ops.legacy.health import run_checks
    from impromptu_ops.settings import load_settings

    agent_in(shared, monkeypatch)
    real, seen = probe.get, []

    def spy(url: str, **kw: Any) -> Any:
        seen.append((url.rsplit("/api", 1)[1], kw["timeout"]))
        return real(url, **kw)

    monkeypatch.setattr(probe, "get", spy)
    settings = load_settings({"platform.read_timeout": 30.0, "platform.deadline": 120.0})
    result = run_checks(settings, {}, isolated_home, clock.time(),
                        open_store=lambda: OpsAgent.from_settings(settings).store)
    assert seen == [("/health", 10.0), ("/v1/agent/heartbeat", 10.0)]
    assert result.errors == 0


def test_all_heartbeat_fields_null_are_defaults_not_failures(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    agent.fault(path=r"/agent/heartbeat$", kind="nulls", times=None)
    code, out, _ = health()
    assert code == 0 and summary(out) == HEALTHY
    assert section(out, TITLES[3]) == [
        "[OK] Agent registered and authenticated", "[OK] Agent ID: unknown",
        "     Name: unknown", "[OK] Current tier: unknown", "     Reputation: 0",
        "[OK] Token balance: 0 IMPRMPT", "     Budget balance: 0",
        "[OK] No pending notifications"]
    o_code, o_out = original({"IMPROMPTU_API_KEY": agent.api_key,
                              "OPENROUTER_API_KEY": agent.openrouter_key,
                              "IMPROMPTU_API_URL": shared.base_url})
    # the original reads the legacy path; the rule above matches both
    assert o_code == 0 and section(o_out, TITLES[3]) == section(out, TITLES[3])


def test_unread_notifications_are_a_warning(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    agent.notify("an answer to your thread")
    agent.notify("a message that says error")
    code, out, _ = health()
    assert code == 2
    assert section(out, TITLES[3])[-2:] == [
        "[WARN] 2 unread notifications",
        "     Check at: https://impromptusocial.ai/notifications"]
    assert summary(out)[0] == "Status: DEGRADED" and summary(out)[2].startswith("1 warning(s)")
    o_code, o_out = original({"IMPROMPTU_API_KEY": agent.api_key,
                              "OPENROUTER_API_KEY": agent.openrouter_key})
    assert o_code == 2 and checks(o_out) == checks(out)


def test_budget_below_ten_is_shown_not_judged(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    agent.patch(budget=5)
    code, out, _ = health()
    assert code == 0 and "     Budget balance: 5" in section(out, TITLES[3])


def test_stale_manifest(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                        isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home, "3.3.0", age_hours=30.5)
    code, out, _ = health()
    assert code == 2
    assert section(out, TITLES[4]) == [
        "[OK] Skill manifest cached (v3.3.0)",
        "[WARN] Skill manifest is stale (30 hours old)",
        "     Run scripts/heartbeat to check the platform's manifest"]
    o_code, o_out = original({"IMPROMPTU_API_KEY": agent.api_key,
                              "OPENROUTER_API_KEY": agent.openrouter_key})
    assert o_code == 2 and section(o_out, TITLES[4])[:2] == section(out, TITLES[4])[:2]


def test_a_daily_check_by_the_heartbeat_keeps_the_manifest_fresh(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    from tests.fixtures_jobs import ops

    agent_in(sandbox, monkeypatch)
    cache_manifest(isolated_home, "3.3.0", age_hours=30.5)
    sandbox.control("POST", "skill/publish", {
        "version": "3.4.0", "files": [{"path": "SKILL.md", "content": "# skill\n"}]})
    beat = ops("heartbeat")
    assert beat.returncode == 0, beat.stdout
    # the native heartbeat looked (installing nothing) and says a newer one waits for review
    assert ("[WARN] skill: v3.4.0 published (none installed): waiting for your review, see "
            "`impromptu-ops update fetch`") in beat.stdout.splitlines()
    code, out, _ = health()
    assert code == 0 and section(out, TITLES[4]) == ["[OK] Skill manifest cached (v3.3.0)"]
    assert not (isolated_home / ".local/share/impromptu-ops/skill/current").exists()


def test_legacy_path_prefix_uses_the_original_heartbeat_path(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    agent.fault(path=r"^/api/v1/agent/heartbeat$", kind="status", status=401,
                code="UNAUTHORIZED", times=None)
    code, out, _ = health({"IMPROMPTU_PLATFORM_PATH_PREFIX": "legacy"})
    assert code == 0 and section(out, TITLES[3])[0] == "[OK] Agent registered and authenticated"
    code, out, _ = health()  # v1 (the default) hits the refusal: the key is blamed
    assert code == 1 and section(out, TITLES[3])[0] == (
        "[FAIL] Agent not registered or invalid API key")


def test_colours_only_on_a_terminal(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                                    isolated_home: Path) -> None:
    import pty
    import subprocess

    from tests.ptys import drain

    agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    parent, child = pty.openpty()
    proc = subprocess.Popen([str(REPO / "scripts" / "impromptu-health")], stdout=child,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    os.close(child)
    try:
        seen = drain(parent)
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(parent)
        if proc.poll() is None:
            proc.kill()
        assert proc.stderr is not None
        proc.stderr.close()
    text = seen.decode()
    assert "\033[0;32m[OK]\033[0m impromptu-ops installed" in text
    assert "Status: \033[0;32mHEALTHY\033[0m" in text


def test_without_the_toolkit_it_still_speaks_the_format(tmp_path: Path) -> None:
    import shutil

    fake = tmp_path / "repo"
    (fake / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "impromptu-health", fake / "scripts")
    proc = __import__("subprocess").run([str(fake / "scripts" / "impromptu-health")],
                                        capture_output=True, text=True, timeout=30)
    out = proc.stdout.splitlines()
    assert proc.returncode == 1
    assert section(out, TITLES[0]) == [
        f"[FAIL] impromptu-ops not installed ({fake}/.venv)",
        f"     Install with: {fake}/scripts/install"]
    assert summary(out) == ["Status: UNHEALTHY", "", "1 error(s) detected. Please resolve "
                            "the issues above before proceeding."]


def test_arguments_are_ignored_as_the_original_did(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    proc = run("impromptu-health", args=("--no-such-flag",))
    assert proc.returncode == 0 and proc.stdout.splitlines()[-3:] == HEALTHY


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(st.none(), st.text(max_size=600), st.integers(), st.booleans(),
                       st.floats(allow_nan=True, allow_infinity=True)))
def test_a_remote_value_is_shown_on_one_printable_line(value: object) -> None:
    from impromptu_ops.legacy import shown

    text = shown(value, "unknown", 200)
    assert text.isprintable() and len(text) <= 201
    if value is None:
        assert text == "unknown"
    elif isinstance(value, str) and value.isprintable() and len(value) <= 200:
        assert text == value  # what jq -r printed, unchanged


def test_a_version_installed_through_the_gate_counts_as_cached(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, gate_env: Any) -> None:
    from tests.fixtures_gate import BENIGN_V1
    from tests.fixtures_jobs import ops

    agent_in(sandbox, monkeypatch)
    gate_env.install("3.3.2", BENIGN_V1)
    code, out, _ = health()  # no ~/.impromptu file, and no look at the platform yet
    assert code == 2 and section(out, TITLES[4]) == [
        "[OK] Skill manifest cached (v3.3.2)",
        "[WARN] Skill manifest is stale (never checked)",
        "     Run scripts/heartbeat to check the platform's manifest"]
    sandbox.control("POST", "skill/publish", {
        "version": "3.3.2", "files": [{"path": "SKILL.md", "content": "# skill\n"}]})
    beat = ops("heartbeat")
    assert ("[OK] skill: v3.3.2 published, v3.3.2 installed: up to date"
            in beat.stdout.splitlines()), beat.stdout
    code, out, _ = health()
    assert code == 0 and section(out, TITLES[4]) == ["[OK] Skill manifest cached (v3.3.2)"]


def test_wallet_sync_failing_is_not_the_health_checks_business(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    # the original's health check never synced the wallet: a failing sync changes nothing
    agent = agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    agent.fault(path=r"/agent/wallet/sync$", kind="status", status=500, times=None)
    code, out, _ = health()
    assert code == 0 and summary(out) == HEALTHY


def test_an_unreachable_store_is_not_reported_as_a_missing_key(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    agent_in(shared, monkeypatch)
    cache_manifest(isolated_home)
    down = {"VAULT_ADDR": closed_port_url().removesuffix("/api"), "VAULT_TOKEN": "t"}
    code, out, _ = health(down)
    assert code == 1
    env_lines = section(out, TITLES[1])
    assert env_lines[0] == "[FAIL] IMPROMPTU_API_KEY cannot be read (the secret store is " \
                           "unavailable)"
    assert env_lines[1].startswith("     Vault at http://127.0.0.1:")
    assert section(out, TITLES[3]) == ["[FAIL] Cannot check registration (no API key)"]
