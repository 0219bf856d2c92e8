"""``scripts/heartbeat`` keeps the original heartbeat.sh's interface.

Facts from /work/shared/original-interfaces.md (heartbeat.sh): every line is
``[YYYY-MM-DDTHH:MM:SSZ] message`` (UTC) on stdout AND appended to ~/.impromptu/heartbeat.log
(folder created when missing; 0755/0644 as the original's mkdir and redirection gave),
failures too; the messages of each step in order; exit 0 or 1 only. Additions tested here:
a skipped run (lock held, paused by RATE_003) is exit 0 with one line saying why; a key only
in IMPROMPTU_API_KEY still works, with a hint on stderr. Each test runs the drop-in as a real
process, HOME in a temp folder, against one sandbox per module.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.sandbox.server import SandboxServer
from tests.dropins import REPO, STAMP, closed_port_url, module_sandbox, run
from tests.fixtures_jobs import Agent, make_agent

# Quick retries and a short deadline, so failure cases take seconds, not minutes.
QUICK = {"IMPROMPTU_PLATFORM_BACKOFF_BASE": "0.05", "IMPROMPTU_PLATFORM_BACKOFF_CAP": "0.2",
         "IMPROMPTU_JOBS_HEARTBEAT_DEADLINE": "4"}
RULE = "━" * 50
FAILED = "❌ Heartbeat failed. Check your API key or network connection."
CLOSING = [RULE, "Heartbeat complete. The network knows you're here.", RULE]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    yield from module_sandbox(tmp_path_factory)


@pytest.fixture(autouse=True)
def _no_faults_left(shared: SandboxServer) -> Iterator[None]:
    yield
    shared.control("DELETE", "faults")


def beat(env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """Run the drop-in; the messages without their timestamps (checked here) and stderr."""
    before = datetime.now(UTC).replace(microsecond=0)
    proc = run("heartbeat", {**QUICK, **(env or {})})
    after = datetime.now(UTC)
    messages = []
    for line in proc.stdout.splitlines():
        m = STAMP.match(line)
        assert m, f"not a timestamped line: {line!r}"
        when = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert before <= when <= after
        messages.append(m.group(2))
    assert proc.returncode in (0, 1)
    return proc.returncode, messages, proc.stderr


def log_messages(home: Path) -> list[str]:
    text = (home / ".impromptu" / "heartbeat.log").read_text(encoding="utf-8")
    return [STAMP.match(line).group(2) for line in text.splitlines()]  # type: ignore[union-attr]


def recommendations(agent: Agent) -> int:
    resp = httpx.get(f"{agent.sandbox.base_url}/v1/agent/recommendations", timeout=10,
                     headers={"Authorization": f"Bearer {agent.api_key}"})
    count: int = len(resp.json()["recommendations"])
    return count


def rec_lines(n: int) -> list[str]:
    if n == 0:
        return ["   No new recommendations right now"]
    return [f"🎯 {n} personalized recommendations available",
            "   High-opportunity content waiting for you",
            "   Explore at: https://impromptusocial.ai/discover"]


def success(agent: Agent, *, unread: int = 0, budget: str = "100", tokens: str = "0",
            tier: str = "REGISTERED", reputation: str = "0") -> list[str]:
    return ["Running heartbeat check...", "✅ Heartbeat successful",
            f"   Notifications: {unread} unread", f"   Budget: {budget} units",
            f"   Tokens: {tokens}", f"   Tier: {tier}", f"   Reputation: {reputation}"]


def test_healthy_run_lines_log_and_modes(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                                         isolated_home: Path) -> None:
    agent = make_agent(shared, monkeypatch)
    n = recommendations(agent)
    code, out, err = beat()
    assert code == 0 and err == ""
    assert out == [*success(agent), "Syncing wallet balance...",
                   "Checking for recommendations...", *rec_lines(n),
                   "Checking budget status...", "   Budget: 100/100 (regenerates 10/hour)",
                   *CLOSING]
    assert log_messages(isolated_home) == out
    folder = isolated_home / ".impromptu"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "heartbeat.log").stat().st_mode) == 0o644
    code, again, _ = beat()  # appended, not replaced
    assert code == 0 and log_messages(isolated_home) == out + again


def test_fresh_setup_needs_neither_openrouter_key_nor_manifest(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    from impromptu_ops.settings import load_settings
    from impromptu_ops.store.factory import open_store

    agent = make_agent(shared, monkeypatch)
    open_store(load_settings()).delete("openrouter-api-key")
    code, out, err = beat()
    assert code == 0 and err == "" and out[:7] == success(agent) and out[-3:] == CLOSING
    assert not (isolated_home / ".impromptu" / "impromptu.skill.json").exists()


def test_no_key_anywhere(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                         isolated_home: Path) -> None:
    make_agent(shared, monkeypatch, store_platform_key=False)
    code, out, err = beat()
    assert code == 1
    assert out == ["ERROR: IMPROMPTU_API_KEY environment variable not set",
                   "Get your key at: https://impromptusocial.ai/agents/setup"]
    assert log_messages(isolated_home) == out
    assert "secrets put impromptu-api-key" in err


def test_key_only_in_the_environment(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch
                                     ) -> None:
    agent = make_agent(shared, monkeypatch, store_platform_key=False)
    code, out, err = beat({"IMPROMPTU_API_KEY": agent.api_key})
    assert code == 0 and out[:7] == success(agent) and out[-3:] == CLOSING
    assert err.splitlines() == [
        "heartbeat: IMPROMPTU_API_KEY read from the environment; move it into the secret "
        "store with `impromptu-ops secrets import --from-env`, then unset the variable"]
    assert agent.api_key not in err and agent.api_key not in "\n".join(out)


def test_invalid_key(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                     isolated_home: Path) -> None:
    make_agent(shared, monkeypatch, store_platform_key=False)
    code, out, err = beat({"IMPROMPTU_API_KEY": "impr_sk_" + "Q" * 40})
    assert code == 1 and out == ["Running heartbeat check...", FAILED]
    assert log_messages(isolated_home) == out
    assert err.startswith("heartbeat: ") and "UNAUTHORIZED" in err  # the cause, off stdout


def test_platform_down(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch,
                       isolated_home: Path) -> None:
    make_agent(shared, monkeypatch)
    code, out, _ = beat({"IMPROMPTU_API_URL": closed_port_url()})
    assert code == 1 and out == ["Running heartbeat check...", FAILED]
    assert log_messages(isolated_home) == out


def test_a_malformed_answer_is_the_originals_failure(shared: SandboxServer,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.fault(path="/agent/heartbeat$", kind="malformed", times=None)
    code, out, _ = beat()
    assert code == 1 and out == ["Running heartbeat check...", FAILED]


def test_all_heartbeat_fields_null(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch
                                   ) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.fault(path="/agent/heartbeat$", kind="nulls", times=None)
    code, out, _ = beat()
    assert code == 0
    assert out[:7] == success(agent, budget="0", tier="unknown")
    assert out[-3:] == CLOSING


def test_unread_notifications_are_listed_every_run(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    first = agent.notify("someone answered your thread")
    second = agent.notify("a reprompt says error", kind="reprompt")
    block = ["📬 You have 2 unread notifications. Someone is waiting!",
             f"  [mention] someone answered your thread - {first['createdAt']}",
             f"  [reprompt] a reprompt says error - {second['createdAt']}",
             "💡 Respond to mentions and reprompts to build reputation",
             "   Process notifications at: https://impromptusocial.ai/notifications"]
    for _ in range(2):  # the original does not remember what it showed
        code, out, _ = beat()
        assert code == 0 and out[:7] == success(agent, unread=2)
        assert out[7:12] == block and out[12] == "Syncing wallet balance..."


def test_wallet_sync_failing_is_not_critical(shared: SandboxServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.fault(path="/agent/wallet/sync$", kind="status", status=500, times=None)
    code, out, _ = beat()
    assert code == 0
    i = out.index("Syncing wallet balance...")
    assert out[i + 1] == "⚠️  Wallet sync failed (non-critical)"
    assert out[-3:] == CLOSING


def test_pending_credits(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.patch(pendingCredits="250")
    code, out, _ = beat()
    i = out.index("Syncing wallet balance...")
    assert code == 0 and out[i + 1] == "💰 You have 250 pending credits! Your content is earning."


def test_budget_below_ten(shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.patch(budget=5)
    code, out, _ = beat()
    assert code == 0 and out[3] == "   Budget: 5 units"
    i = out.index("Checking budget status...")
    assert out[i + 1:i + 4] == ["⚠️  Budget low (5/100)", "   Regenerates 10/hour",
                                "   Conserve activity until budget regenerates"]
    assert out[i + 4:] == CLOSING


def test_a_run_that_finds_the_lock_held_is_skipped_with_exit_0(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    from impromptu_ops.locks import ProcessLock
    from impromptu_ops.settings import load_settings

    make_agent(shared, monkeypatch)
    lock = ProcessLock(load_settings().paths.state_dir / "heartbeat.lock", "heartbeat")
    lock.acquire()
    try:
        code, out, _ = beat()
    finally:
        lock.release()
    assert code == 0 and out == ["Heartbeat skipped: another heartbeat run is still in progress"]
    assert log_messages(isolated_home) == out


def test_paused_by_rate_003_is_skipped_with_exit_0(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.fault(path="/agent/heartbeat$", kind="status", status=429, code="RATE_003",
                retryAfter=3600, times=None)
    code, out, _ = beat()
    assert code == 0 and len(out) == 1, out
    assert re.fullmatch(r"Heartbeat skipped: paused until \d{4}-\d\d-\d\d \d\d:\d\d UTC "
                        r"\(RATE_003 daily quota used\)", out[0]), out
    agent.clear_faults()
    code, out, _ = beat()  # still paused: no call to the platform before the reset
    assert code == 0 and len(out) == 1
    assert out[0].startswith("Heartbeat skipped: paused until ") and "RATE_003" in out[0]


def test_paused_by_budg_001_mid_run_keeps_the_success_and_exit_0(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = make_agent(shared, monkeypatch)
    agent.fault(path="/agent/wallet/sync$", kind="status", status=402, code="BUDG_001")
    code, out, _ = beat()
    assert code == 0 and out[:7] == success(agent)
    assert out[7:] == ["Syncing wallet balance...", "⚠️  Wallet sync failed (non-critical)",
                       "⏸  Paused by the platform (BUDG_001 out of budget): the remaining "
                       "checks wait for the next run", *CLOSING]


def test_an_answer_containing_error_fails_as_in_the_original(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    # the original greps the heartbeat's body for "error" (quotes included); kept, so that a
    # 200 that carries an error never reads as a success. Here: an agent named "error".
    make_agent(shared, monkeypatch, name="error")
    code, out, err = beat()
    assert code == 1 and out == ["Running heartbeat check...", FAILED]
    assert log_messages(isolated_home) == out and 'contains "error"' in err


def test_notifications_that_say_error_are_just_notifications(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # the original's grep read only the heartbeat's body; notification texts never failed it
    agent = make_agent(shared, monkeypatch)
    agent.notify("error", kind="mention")  # listed as  [mention] error - ...: not a failure
    code, out, _ = beat()
    assert code == 0 and out[7] == "📬 You have 1 unread notifications. Someone is waiting!"


def test_a_newer_skill_is_reported_waiting_for_review(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    make_agent(sandbox, monkeypatch)
    sandbox.control("POST", "skill/publish", {
        "version": "9.0.0", "files": [{"path": "SKILL.md", "content": "# skill\n"}]})
    code, out, _ = beat()
    assert code == 0 and out[-4] == (
        "📦 Skill v9.0.0 published: waiting for your review (impromptu-ops update fetch)")
    assert not (isolated_home / ".local/share/impromptu-ops/skill").exists()  # nothing installed


def test_a_configuration_error_is_exit_1(shared: SandboxServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    make_agent(shared, monkeypatch)
    code, out, _ = beat({"IMPROMPTU_JOBS_HEARTBEAT_DEADLINE": "0.5"})
    assert code == 1 and len(out) == 1
    assert out[0].startswith("ERROR: setting jobs.heartbeat_deadline")


def test_without_the_toolkit_it_still_logs_and_exits_1(tmp_path: Path,
                                                       isolated_home: Path) -> None:
    import shutil
    import subprocess

    fake = tmp_path / "repo"
    (fake / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "heartbeat", fake / "scripts")
    proc = subprocess.run([str(fake / "scripts" / "heartbeat")], capture_output=True,
                          text=True, timeout=30, check=False)
    assert proc.returncode == 1
    (line,) = proc.stdout.splitlines()
    m = STAMP.match(line)
    assert m and m.group(2).startswith("ERROR: impromptu-ops is not installed")
    assert log_messages(isolated_home) == [m.group(2)]




def test_the_native_heartbeat_looks_at_the_manifest_at_most_once_a_day(
        sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from impromptu_ops.api import Agent as OpsAgent
    from impromptu_ops.jobs.skillcheck import last_check
    from impromptu_ops.settings import load_settings

    make_agent(sandbox, monkeypatch)
    settings = load_settings()
    sandbox.control("POST", "skill/publish", {
        "version": "10.0.0", "files": [{"path": "SKILL.md", "content": "# skill\n"}]})
    first = OpsAgent.from_settings(settings).heartbeat()
    step = {s.name: s for s in first.steps}["skill"]
    assert step.status == "warn" and step.summary.startswith("v10.0.0 published (none installed)")
    checked = last_check(settings)
    assert checked is not None and checked.published == "10.0.0"
    sandbox.control("POST", "skill/publish", {
        "version": "10.1.0", "files": [{"path": "SKILL.md", "content": "# skill 2\n"}]})
    second = OpsAgent.from_settings(settings).heartbeat()
    summary = {s.name: s for s in second.steps}["skill"].summary
    assert summary.startswith("v10.0.0 published") and "(checked " in summary  # no new look
    assert last_check(settings) == checked


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(st.one_of(st.none(), st.text(max_size=400), st.integers(),
                                st.floats(allow_nan=True), st.booleans()),
                      min_size=9, max_size=9))
def test_remote_values_never_break_a_line(texts: list[object]) -> None:
    """Whatever the platform sends (control characters, newlines, huge or odd values), each
    message stays one printable line: a log line per message, as the original's tee gave."""
    from impromptu_ops.jobs.heartbeat import HeartbeatReport, Step
    from impromptu_ops.legacy.heartbeat import messages

    name, tier, rep, tokens, budget, ntype, nmsg, created, pending = texts
    report = HeartbeatReport(
        0.0, 0.1, 0, "ok",
        tuple(Step(n, "ok", "") for n in ("heartbeat", "notifications", "wallet",
                                           "recommendations", "budget")),
        agent={"name": name, "tier": tier, "reputation": rep, "tokenBalance": tokens,
               "budgetBalance": budget, "unread": 1},
        unread_notifications=({"type": ntype, "message": nmsg, "createdAt": created},),
        wallet={"pendingCredits": pending}, recommendation_count=0,
        budget={"balance": budget, "max": 100, "regenerationRate": 10})
    rendered = messages(report)
    assert rendered.exit_code == 0
    for line in rendered.lines:
        assert line.isprintable() and len(line) < 700, repr(line)


def test_an_unreachable_store_is_an_error_line_and_exit_1(
        shared: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    make_agent(shared, monkeypatch)
    down = {"VAULT_ADDR": closed_port_url().removesuffix("/api"), "VAULT_TOKEN": "t"}
    code, out, _ = beat(down)
    assert code == 1 and len(out) == 1
    assert out[0].startswith("ERROR: cannot read the secret store: Vault at http://127.0.0.1:")
