"""``secrets exec`` as a supervising parent: least-privilege delivery, masked output, signals,
exit status and restarts on a new secret version. The real CLI runs as a child process.

What we follow (the docs of the tools our users know):

- 1Password ``op run`` (https://developer.1password.com/docs/cli/reference/commands/run):
  "Secrets printed to stdout or stderr are concealed by default. Include the --no-masking
  flag to turn off masking."
- Vault Agent process supervisor mode
  (https://developer.hashicorp.com/vault/docs/agent-and-proxy/agent/process-supervisor, the
  same in OpenBao's docs): the agent restarts the child when an injected secret changes,
  forwards the standard streams and exits with the child's exit code.
- ``doppler run --watch`` (https://docs.doppler.com/docs/automatic-restart): the latest
  secrets are fetched first, then SIGTERM, up to 10 seconds to exit, SIGKILL, and the
  command is run again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops import contract
from impromptu_ops.errors import InputError, SecretNotFound
from impromptu_ops.masking import PLACEHOLDER, SHAPES, StreamMasker
from impromptu_ops.rotation.record import RecordStore, iso
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_vault import BaoServer
from tests.ptys import drain, read_until
from tests.rotation_env import IMPROMPTU, OPENROUTER, Bench, make_bench

API_KEY = "impr_sk_" + "Ex3c" * 10
OR_KEY = "sk-or-v1-" + "c0ffee42" * 8
MGMT_KEY = "sk-or-v1-" + "4d474d54" * 8
WALLET_KEY = "0x" + "ab" * 32
SECRET_ID = "3f1e0c52-9b7a-4f31-8d0e-1c2b3a4d5e6f"
PLACE = PLACEHOLDER.decode()


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMPROMPTU_", "VAULT_", "BAO_", "OPENROUTER_"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
                "IMPROMPTU_STORE_BACKEND": "local", "PYTHONUNBUFFERED": "1", **extra})
    return env


def _put(env: dict[str, str], name: str, value: str) -> int:
    store = open_store(load_settings(env=env, config_file=Path(env["HOME"]) / "none.toml"))
    try:
        cas = store.metadata(name).current_version
    except SecretNotFound:  # absent: a first write
        cas = 0
    return store.write(name, {"value": Secret(value, name)}, cas=cas)


def _exec(env: dict[str, str], *args: str, timeout: float = 60
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", *args],
                          env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def full_store(home: Path) -> dict[str, str]:
    """Every kind of key stored: runtime, management (both names), wallet, Vault."""
    env = _env(home)
    for name, value in (("impromptu-api-key", API_KEY), ("openrouter-api-key", OR_KEY),
                        ("openrouter-provisioning-key", MGMT_KEY),
                        ("openrouter-management-key", MGMT_KEY),
                        ("wallet-private-key", WALLET_KEY), ("vault-secret-id", SECRET_ID)):
        _put(env, name, value)
    return env


PRINT_SECRET_VARS = ("import os; names = {NAMES}; "
                     "print(' '.join(sorted(k for k in os.environ if k in names)))")


def _names_probe() -> str:
    wanted = sorted({*contract.SECRET_ENV.values(), "VAULT_TOKEN", "BAO_TOKEN",
                     "IMPROMPTU_STORE_PASSPHRASE", "IMPROMPTU_SECRETS_DIR"})
    return PRINT_SECRET_VARS.replace("{NAMES}", repr(wanted))


# -- delivery --------------------------------------------------------------------------------
def test_the_child_gets_exactly_the_runtime_keys_by_default(full_store: dict[str, str]) -> None:
    env = {**full_store, "VAULT_TOKEN": "hvs." + "T" * 24}
    done = _exec(env, "--", sys.executable, "-c", _names_probe())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["IMPROMPTU_API_KEY", "OPENROUTER_API_KEY"]
    named = _exec(env, "--only", "openrouter-management-key,wallet-private-key",
                  "--only", "vault-secret-id", "--", sys.executable, "-c", _names_probe())
    assert named.returncode == 0, named.stderr
    assert named.stdout.split() == ["IMPROMPTU_WALLET_PRIVATE_KEY", "OPENROUTER_MANAGEMENT_KEY",
                                    "VAULT_SECRET_ID"]
    unknown = _exec(env, "--only", "everything", "--", "true")
    assert unknown.returncode == InputError.exit_code
    assert len(unknown.stderr.strip().splitlines()) == 1


# -- masking ---------------------------------------------------------------------------------
LEAKY = ("import os, sys, time; k = os.environ['IMPROMPTU_API_KEY']; "
         "print('debug: key=' + k, flush=True); "
         "print('other agent key impr_sk_' + 'Zz9' * 10, flush=True); "
         "sys.stderr.write('err ' + os.environ['OPENROUTER_API_KEY'] + '\\n'); "
         "sys.stdout.write('split ' + k[:13]); sys.stdout.flush(); time.sleep(0.4); "
         "sys.stdout.write(k[13:] + ' done\\n'); sys.stdout.flush(); "
         "print('tty', sys.stdout.isatty(), flush=True); sys.exit(7)")


def test_output_is_masked_through_pipes_and_the_exit_code_passes(
        full_store: dict[str, str]) -> None:
    done = _exec(full_store, "--", sys.executable, "-c", LEAKY)
    assert done.returncode == 7, done.stderr
    assert API_KEY not in done.stdout and OR_KEY not in done.stderr
    assert API_KEY[:13] not in done.stdout  # the key split across two writes
    lines = done.stdout.splitlines()
    assert lines == [f"debug: key={PLACE}", f"other agent key {PLACE}", f"split {PLACE} done",
                     "tty False"]
    assert done.stderr == f"err {PLACE}\n"
    plain = _exec(full_store, "--no-masking", "--", sys.executable, "-c", LEAKY)
    assert plain.returncode == 7 and f"debug: key={API_KEY}" in plain.stdout


def test_output_is_masked_through_a_pty_and_the_child_keeps_its_terminal(
        full_store: dict[str, str]) -> None:
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", "--", sys.executable,
         "-c", LEAKY], env=full_store, stdin=follower, stdout=follower, stderr=follower,
        close_fds=True)
    os.close(follower)
    seen = bytearray()
    try:
        read_until(leader, b"tty True", seen)
        assert proc.wait(timeout=60) == 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        seen += drain(leader)
        os.close(leader)
    text = bytes(seen).decode()
    assert API_KEY not in text and OR_KEY not in text and API_KEY[:13] not in text
    assert f"debug: key={PLACE}" in text and f"split {PLACE} done" in text
    assert f"err {PLACE}" in text


def test_a_terminal_stdout_and_a_piped_stderr_are_each_masked_their_own_way(
        full_store: dict[str, str]) -> None:
    probe = ("import os, sys; k = os.environ['IMPROMPTU_API_KEY']; "
             "print('out', sys.stdout.isatty(), k, flush=True); "
             "sys.stderr.write('err %s %s\\n' % (sys.stderr.isatty(), k))")
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", "--", sys.executable,
         "-c", probe], env=full_store, stdin=subprocess.DEVNULL, stdout=follower,
        stderr=subprocess.PIPE, close_fds=True)
    os.close(follower)
    seen = bytearray()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        seen += drain(leader)
        os.close(leader)
    assert proc.returncode == 0
    assert f"out True {PLACE}" in bytes(seen).decode()
    assert err.decode() == f"err False {PLACE}\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(["ok", "0", "s", "impr", "value=", "10", "x.", "\n",
                                       " ", "sk-or", "hv", "KEY", "café"]), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
       at=st.integers(min_value=0, max_value=12), quiet=st.booleans())
def test_masking_holds_for_any_split_of_the_stream(words: list[str], cuts: list[int],
                                                   at: int, quiet: bool) -> None:
    """Wherever the pipe cuts the stream, and whether or not the child goes quiet at each
    cut (a timed release), no delivered value or key body gets through; without releases
    every other byte arrives, in order (the result equals masking the whole at once)."""
    value = b"p4ss-w0rd-not-shaped!"
    parts = [w.encode() for w in words]
    parts[at:at] = [b" " + value + b" ", b" " + API_KEY.encode() + b"\n",
                    b" " + WALLET_KEY.encode() + b"\t"]
    stream = b"".join(parts)
    masker = StreamMasker([value])
    pieces, last = [], 0
    for cut in sorted({min(c, len(stream)) for c in cuts}):
        pieces.append(masker.feed(stream[last:cut]))
        if quiet:
            pieces.append(masker.release())
        last = cut
    pieces.append(masker.feed(stream[last:]))
    pieces.append(masker.flush())
    out = b"".join(pieces)
    assert value not in out and API_KEY.encode()[:12] not in out
    assert WALLET_KEY.encode()[4:] not in out and value[:1] + b" " not in out
    whole = StreamMasker([value])
    once = whole.feed(stream) + whole.flush()
    if quiet:  # a released key-shape start ("i", "0x") stays on screen before the mask
        before_mask = re.compile(rb"[A-Za-z0-9_.\-]*" + re.escape(PLACEHOLDER))
        assert before_mask.sub(PLACEHOLDER, out) == before_mask.sub(PLACEHOLDER, once)
    else:
        assert out == once


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="abhsvr0x.9fAQ_- \n", max_size=40),
       key=st.sampled_from(["s." + "A9" * 12, "0x" + "af" * 32, "hvs." + "Q" * 24,
                            "hvb." + "z" * 30, "impr_sk_" + "k" * 40, ""]),
       at=st.integers(min_value=0, max_value=40))
def test_the_fast_shape_pattern_matches_what_the_contract_s_does(text: str, key: str,
                                                                 at: int) -> None:
    sample = (text[:at] + key + text[at:]).encode()
    contract_shapes = re.compile(contract.KEY_SHAPES.pattern.encode())
    assert SHAPES.sub(b"#", sample) == contract_shapes.sub(b"#", sample)


def test_masking_passes_ordinary_output_at_once() -> None:
    """Only a tail that could still become a secret waits; a prompt or a progress figure
    is written the moment it arrives."""
    masker = StreamMasker([b"s3cr3t-value"])
    assert masker.feed(b"Password: ") == b"Password: "
    assert masker.feed(b"progress 10") == b"progress 10"
    assert masker.feed(b"id s3cr") == b"id " and masker.pending == 4
    assert masker.feed(b"3t-value\n") == b"<concealed by impromptu-ops>\n"
    assert masker.feed(b"x impr_sk_") == b"x " and masker.flush() == b"impr_sk_"


def test_a_quiet_child_s_key_shape_start_is_shown_but_the_key_is_not() -> None:
    """After a quiet spell only a held tail with no secret in it is written: a prompt that
    ends in ``0`` shows the ``0``; a key body that follows is still concealed; the start of
    a delivered value is never shown."""
    masker = StreamMasker([b"s3cr3t-value", API_KEY.encode()])
    assert masker.feed(b"Count: 0") == b"Count: " and masker.release() == b"0"
    assert masker.feed(WALLET_KEY.encode()[1:] + b"\n") == PLACEHOLDER + b"\n"
    assert masker.feed(b"id s") == b"id " and masker.release() == b""
    assert masker.feed(b"3cr3t-value\n") == PLACEHOLDER + b"\n"
    assert masker.feed(b"x impr_sk_") == b"x " and masker.release() == b"impr_sk_"
    assert masker.feed(API_KEY.encode()[8:20]) == b"" and masker.release() == b""
    assert masker.feed(API_KEY.encode()[20:] + b". ") == PLACEHOLDER + b". "
    assert masker.flush() == b""


def test_a_prompt_is_shown_while_the_child_waits(full_store: dict[str, str]) -> None:
    """Output without a newline reaches us while the child still runs (streaming), even
    when it ends in what could begin a key (``0``): shown after a quiet moment."""
    proc = _start(full_store, "--", sys.executable, "-c",
                  "import sys, time; sys.stdout.write('Retries left: 0'); sys.stdout.flush();"
                  " time.sleep(60)")
    seen = bytearray()
    try:
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), b"Retries left: 0", seen, timeout=20)
        assert proc.poll() is None  # shown while it runs, not at its end
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM and "signal 15 (SIGTERM)" in err


# -- exit status and signals -----------------------------------------------------------------
def test_a_child_killed_by_a_signal_is_reported(full_store: dict[str, str]) -> None:
    done = _exec(full_store, "--", sys.executable, "-c",
                 "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert done.returncode == 128 + signal.SIGKILL
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "ended by signal 9 (SIGKILL)" in lines[0], done.stderr


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def _line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()  # the child prints at a steady pace: no long block
    assert time.monotonic() < deadline and line, "no line from the child"
    return line.strip()


TRAPPER = ("import signal, sys, time\n"
           "def on(sig, _):\n"
           "    print('got', signal.Signals(sig).name, flush=True)\n"
           "    if sig == signal.SIGTERM: sys.exit(3)\n"
           "for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):\n"
           "    signal.signal(s, on)\n"
           "print('ready', flush=True)\n"
           "while True: time.sleep(0.05)\n")


def test_signals_reach_the_child_and_its_status_passes_through(
        full_store: dict[str, str]) -> None:
    proc = _start(full_store, "--", sys.executable, "-c", TRAPPER)
    try:
        assert _line(proc) == "ready"
        proc.send_signal(signal.SIGUSR1)
        assert _line(proc) == "got SIGUSR1"
        proc.send_signal(signal.SIGHUP)
        assert _line(proc) == "got SIGHUP"
        proc.send_signal(signal.SIGTERM)
        assert _line(proc) == "got SIGTERM"
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 3, err  # the child's own exit code, not ours


# -- restart on change -----------------------------------------------------------------------
HASHER = ("import hashlib, os, signal, sys, time\n"
          "signal.signal(signal.SIGTERM, lambda *_: (print('stopping', flush=True), "
          "sys.exit(0)))\n"
          "print(hashlib.sha256(os.environ['IMPROMPTU_API_KEY'].encode()).hexdigest(), "
          "flush=True)\n"
          "while True: time.sleep(0.05)\n")


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _cli_put(env: dict[str, str], name: str, value: str) -> None:
    done = subprocess.run([sys.executable, "-m", "impromptu_ops.cli", "secrets", "put", name],
                          env=env, input=value, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr


@pytest.fixture(params=["local", "vault"])
def store_env(request: pytest.FixtureRequest, full_store: dict[str, str], home: Path,
              unique_agent: str) -> dict[str, str]:
    """The local store, or an OpenBao (KV v2 ``current_version``) holding the same keys."""
    if request.param == "local":
        return full_store
    bao: BaoServer = request.getfixturevalue("bao_server")
    env = {**_env(home), **bao.env(), "IMPROMPTU_STORE_BACKEND": "vault",
           "IMPROMPTU_STORE_AGENT": unique_agent}
    for name, value in (("impromptu-api-key", API_KEY), ("openrouter-api-key", OR_KEY)):
        _cli_put(env, name, value)
    return env


def test_restart_on_change_starts_the_child_again_with_the_new_value(
        store_env: dict[str, str]) -> None:
    env = {**store_env, "IMPROMPTU_EXEC_POLL_SECONDS": "0.1"}
    proc = _start(env, "--restart-on-change", "--", sys.executable, "-c", HASHER)
    new_key = "impr_sk_" + "N3w_" * 10
    try:
        assert _line(proc) == sha(API_KEY)
        _cli_put(env, "openrouter-management-key", "sk-or-v1-" + "9" * 64)  # not delivered
        _cli_put(env, "impromptu-api-key", new_key)
        assert _line(proc) == "stopping"
        assert _line(proc) == sha(new_key)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0 and out.strip() == "stopping"
    notes = [line for line in err.splitlines() if "restarting" in line]
    assert len(notes) == 1 and "impromptu-api-key v1 -> v2" in notes[0], err
    assert new_key not in err and API_KEY not in err


def test_restart_kills_a_child_that_ignores_sigterm(full_store: dict[str, str]) -> None:
    env = {**full_store, "IMPROMPTU_EXEC_POLL_SECONDS": "0.1",
           "IMPROMPTU_EXEC_STOP_TIMEOUT": "0.5"}
    stubborn = HASHER.replace("sys.exit(0)", "None")
    proc = _start(env, "--restart-on-change", "--", sys.executable, "-c", stubborn)
    try:
        assert _line(proc) == sha(API_KEY)
        _put(env, "impromptu-api-key", "impr_sk_" + "S7b_" * 10)
        assert _line(proc) == "stopping"
        assert _line(proc) == sha("impr_sk_" + "S7b_" * 10)
        proc.send_signal(signal.SIGINT)  # forwarded: Python's default ends the child
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert "did not stop within 0.5s of SIGTERM: sending SIGKILL" in err
    assert proc.returncode == 128 + signal.SIGINT and "signal 2 (SIGINT)" in err


# -- issue 11 must-show: a running agent survives rotation of both providers ----------------
AGENT = '''
import hashlib, os, signal, sys, time, urllib.error, urllib.request
results, api, openrouter = sys.argv[1], sys.argv[2], sys.argv[3]
keys = {"impromptu": (api + "/v1/agent/heartbeat", os.environ["IMPROMPTU_API_KEY"]),
        "openrouter": (openrouter + "/key", os.environ["OPENROUTER_API_KEY"])}
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
with open(results, "a", buffering=1) as out:
    while not stop:
        for provider, (url, key) in keys.items():
            request = urllib.request.Request(url, headers={"Authorization": "Bearer " + key})
            try:
                with urllib.request.urlopen(request, timeout=5) as resp:
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                status = "neterr-" + type(exc).__name__
            digest = hashlib.sha256(key.encode()).hexdigest()
            out.write(f"{os.getpid()} {provider} {status} {digest}\\n")
        time.sleep(0.05)
'''


def _calls(results: Path) -> list[tuple[str, str, str, str]]:
    rows = []
    for line in results.read_text().splitlines():
        pid, provider, status, digest = line.split()
        rows.append((pid, provider, status, digest))
    return rows


def _wait_for(results: Path, provider: str, digest: str, count: int = 5,
              timeout: float = 60) -> None:
    """Until the agent has made ``count`` calls to ``provider`` with the key ``digest``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if results.exists():
            done = [r for r in _calls(results) if r[1] == provider and r[3] == digest]
            if len(done) >= count:
                return
        time.sleep(0.05)
    raise AssertionError(f"the agent never made {count} calls to {provider} with that key")


def _make_retirement_due(bench: Bench, provider: str) -> None:
    """Move the pending retirement's due time into the past, as an hour passing would.

    The one place that knows how a rotation records when the old key is due to be retired
    (today ``RotationRecord.grace_until``): if the rotation engine exposes another way to
    advance its clock, use it here.
    """
    records = RecordStore(bench.store)
    record, version = records.load(provider)
    assert record is not None and record.grace_until, "no pending retirement recorded"
    records.save(record.evolve(grace_until=iso(datetime.now(UTC) - timedelta(seconds=1))),
                 version)


def test_an_agent_under_restart_on_change_survives_rotation_with_grace(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    """Issue 11's must-show: an agent started with ``secrets exec --restart-on-change``
    calls both providers every ~50 ms (the platform's heartbeat with its API key, the
    OpenRouter subset's ``GET /key`` with its inference key) through ``rotate impromptu
    --grace 1h``, ``rotate openrouter --grace 1h`` and the later run that retires the old
    keys: not one call fails, and it ends on the new keys.

    Needs the grace period to mean grace (the old key works until it is retired): that is
    the rotation engine's part of issue 11; before it, the old key is disabled at once.
    """
    bench = make_bench(sandbox, tmp_path / "home")
    sandbox.control("PATCH", f"agents/{bench.agent_id}", {"tier": "PARTNER"})
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    results = tmp_path / "calls.log"
    env = {**bench.env, "PYTHONUNBUFFERED": "1"}  # the default poll: once a second
    agent = subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", "--restart-on-change",
         "--", sys.executable, str(script), str(results), sandbox.base_url,
         sandbox.openrouter_url], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        old_values = {"impromptu": bench.current(IMPROMPTU),
                      "openrouter": bench.current(OPENROUTER)}
        old = {p: sha(v) for p, v in old_values.items()}
        _wait_for(results, "impromptu", old["impromptu"])
        for provider, name in (("impromptu", IMPROMPTU), ("openrouter", OPENROUTER)):
            rotated = bench.cli("rotate", provider, "--grace", "1h")
            assert rotated.returncode == 0, rotated.stderr
            works = bench.impromptu_works if provider == "impromptu" else bench.openrouter_works
            assert works(old_values[provider]) is True, "the old key died inside its grace"
            new = sha(bench.current(name))
            assert new != old[provider]
            _wait_for(results, provider, new)
        for provider in ("impromptu", "openrouter"):
            _make_retirement_due(bench, provider)
            retired = bench.cli("rotate", "resume", provider)
            assert retired.returncode == 0, retired.stderr
        # the later run really retired the old keys (else "zero failures" proves nothing)
        assert bench.impromptu_works(old_values["impromptu"]) is False
        assert bench.openrouter_works(old_values["openrouter"]) is False
        mark = len(_calls(results))
        for provider, name in (("impromptu", IMPROMPTU), ("openrouter", OPENROUTER)):
            _wait_for(results, provider, sha(bench.current(name)), count=mark // 2 + 5)
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            _, err = agent.communicate(timeout=30)
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.communicate(timeout=10)
    calls = _calls(results)
    failed = [c for c in calls if c[2] != "200"]
    assert not failed, f"{len(failed)} of {len(calls)} calls failed, first: {failed[:3]}"
    assert agent.returncode == 0, err
    assert err.count("restarting the command") == 2, err
    assert len({c[0] for c in calls}) == 3  # the first agent and one restart per rotation


WINDOW = ("import os, signal, sys, time\n"
          "show = lambda *_: print('size %dx%d' % os.get_terminal_size(1), flush=True)\n"
          "signal.signal(signal.SIGWINCH, show)\n"
          "show()\n"
          "print('stdin-tty', sys.stdin.isatty(), flush=True)\n"
          "sys.stdin.readline()\n"
          "print('bye', flush=True)\n")


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_the_pty_follows_our_window_size_and_passes_keystrokes(
        full_store: dict[str, str]) -> None:
    leader, follower = os.openpty()
    _set_size(follower, 33, 101)
    proc = subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", "--", sys.executable,
         "-c", WINDOW], env=full_store, stdin=follower, stdout=follower, stderr=follower,
        close_fds=True)
    seen = bytearray()
    try:
        read_until(leader, b"stdin-tty True", seen)
        assert b"size 101x33" in seen
        _set_size(follower, 40, 120)
        proc.send_signal(signal.SIGWINCH)
        read_until(leader, b"size 120x40", seen)
        os.write(leader, b"\r")  # a keystroke through our (raw) terminal to the child's pty
        read_until(leader, b"bye", seen)
        assert proc.wait(timeout=60) == 0
        assert termios.tcgetattr(follower)[3] & termios.ECHO  # our terminal's mode is back
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(follower)
        seen += drain(leader)
        os.close(leader)
