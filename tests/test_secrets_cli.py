"""``impromptu-ops secrets`` end to end: exit codes, stdout and stderr checked separately.

In-process through ``cli.main.run`` for most commands; as a real child process where the
behaviour depends on process boundaries (``exec`` replaces the process; ``--files`` must
clean up on a signal). Vault failures (sealed, unreachable) must be one line and exit 69.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impromptu_ops.cli.main import run
from tests.fixtures_vault import BaoServer
from tests.ptys import drain, read_until

API_KEY = "impr_sk_" + "K3y_" * 10
OR_KEY = "sk-or-v1-" + "a1b2" * 16


def _run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str | None = None,
         monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = run(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args], env=env,
                          check=False, capture_output=True, text=True, timeout=60)


def test_put_get_list_history_rollback(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY + "\n",
                          monkeypatch)
    assert (code, err) == (0, "")
    assert "version 1" in out and API_KEY not in out
    code, out, _ = _run(["secrets", "put", "impromptu-api-key", "--backend", "local"],
                        capsys, API_KEY.replace("K", "Z"), monkeypatch)
    assert code == 0 and "version 2" in out
    code, out, err = _run(["secrets", "get", "impromptu-api-key"], capsys)
    assert code == 0 and "v2" in out and "impr_sk_****" in out
    assert API_KEY.replace("K", "Z") not in out + err
    code, out, _ = _run(["secrets", "list", "--json"], capsys)
    assert '"impromptu-api-key"' in out and '"version": 2' in out
    code, out, _ = _run(["secrets", "history", "impromptu-api-key"], capsys)
    assert code == 0 and "ok,current" in out
    code, out, _ = _run(["secrets", "rollback", "impromptu-api-key", "--version", "1"], capsys)
    assert code == 0 and "restored as version 3" in out
    code, out, err = _run(["secrets", "get", "impromptu-api-key", "--reveal"], capsys)
    assert code == 1 and out == "" and "refusing to reveal" in err  # stdout is not a TTY
    code, out, _ = _run(["secrets", "get", "impromptu-api-key", "--reveal", "--force"], capsys)
    assert (code, out) == (0, API_KEY + "\n")


def test_put_refuses_bad_values_and_names(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(["secrets", "put", "impromptu-api-key"], capsys, "impr_sk_short",
                          monkeypatch)
    assert code == 65 and "shape" in err and err.count("\n") == 1
    code, _, err = _run(["secrets", "put", "impromptu-api-key"], capsys, "", monkeypatch)
    assert code == 65 and "empty" in err
    code, _, err = _run(["secrets", "put", "../../etc/passwd"], capsys, API_KEY, monkeypatch)
    assert code == 65 and "unknown secret name" in err
    code, out, _ = _run(["secrets", "put", "openrouter-api-key", "--force"], capsys,
                        "not-an-openrouter-key", monkeypatch)
    assert code == 0 and "version 1" in out


def test_get_missing_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["secrets", "get", "openrouter-api-key"], capsys)
    assert code == 1 and out == "" and err.count("\n") == 1


def test_import_from_env_and_file(capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IMPROMPTU_API_KEY", API_KEY)
    code, out, _ = _run(["secrets", "import", "--from-env"], capsys)
    assert code == 0 and "stored impromptu-api-key version 1" in out
    code, out, _ = _run(["secrets", "import", "--from-env"], capsys)
    assert code == 0 and "unchanged impromptu-api-key" in out
    envfile = tmp_path / "env"
    envfile.write_text(f"# comment\nexport OPENROUTER_API_KEY=\"{OR_KEY}\"\n"
                       "IMPROMPTU_API_KEY=$(cat /somewhere)\nOTHER=1\n")
    code, out, err = _run(["secrets", "import", "--from-file", str(envfile)], capsys)
    assert code == 0 and "stored openrouter-api-key version 1" in out
    assert "scan --fix" in err  # tells the operator the file still holds the value
    code, _, err = _run(["secrets", "import"], capsys)
    assert code == 2


def _store_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["IMPROMPTU_STORE_BACKEND"] = "local"
    return env


def test_exec_puts_secrets_in_the_child_environment_only(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        isolated_home: Path) -> None:
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    _run(["secrets", "put", "openrouter-api-key"], capsys, OR_KEY, monkeypatch)
    env = _store_env(isolated_home)
    env["VAULT_TOKEN"] = "must-not-reach-the-child"
    probe = ("import hashlib, os, sys; v = os.environ.get('IMPROMPTU_API_KEY', ''); "
             "print(hashlib.sha256(v.encode()).hexdigest(), "
             "'OPENROUTER_API_KEY' in os.environ, 'VAULT_TOKEN' in os.environ, "
             "' '.join(sys.argv[1:])); sys.exit(7)")
    done = _cli(["secrets", "exec", "--only", "impromptu-api-key", "--", sys.executable,
                 "-c", probe, "arg1"], env)
    assert done.returncode == 7, done.stderr
    digest, has_or, has_vault, args = done.stdout.split(" ", 3)
    assert digest == hashlib.sha256(API_KEY.encode()).hexdigest()
    assert (has_or, has_vault, args.strip()) == ("False", "False", "arg1")
    everything = _cli(["secrets", "exec", "--", sys.executable, "-c",
                       "import os; print(sorted(k for k in os.environ if 'API_KEY' in k))"],
                      env)
    assert everything.stdout.strip() == "['IMPROMPTU_API_KEY', 'OPENROUTER_API_KEY']"


def test_exec_files_mode_cleans_up_and_propagates_exit_code(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        isolated_home: Path, tmp_path: Path) -> None:
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    parent = tmp_path / "shm"
    parent.mkdir()
    probe = ("import os, stat, sys; d = os.environ['IMPROMPTU_SECRETS_DIR']; "
             "f = os.environ['IMPROMPTU_API_KEY_FILE']; "
             "print(d, oct(stat.S_IMODE(os.stat(d).st_mode)), "
             "oct(stat.S_IMODE(os.stat(f).st_mode)), open(f).read() == sys.argv[1], "
             "'IMPROMPTU_API_KEY' in os.environ); sys.exit(5)")
    done = _cli(["secrets", "exec", "--files", str(parent), "--", sys.executable, "-c",
                 probe, API_KEY], _store_env(isolated_home))
    assert done.returncode == 5, done.stderr
    folder, dmode, fmode, same, in_env = done.stdout.split()
    assert (dmode, fmode, same, in_env) == ("0o700", "0o400", "True", "False")
    assert Path(folder).parent == parent and not Path(folder).exists()


def test_exec_files_mode_cleans_up_on_signal(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        isolated_home: Path, tmp_path: Path) -> None:
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    parent = tmp_path / "shm"
    parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec", "--files", str(parent),
         "--", sys.executable, "-c", "import time; time.sleep(60)"],
        env=_store_env(isolated_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not list(parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(parent.iterdir()), "the private folder never appeared"
    proc.send_signal(signal.SIGTERM)
    _, errout = proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGTERM, errout
    assert list(parent.iterdir()) == []


def test_unreachable_vault_is_one_line_exit_69(capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("VAULT_TOKEN", "some-token-value")
    for argv in (["secrets", "check"], ["secrets", "get", "impromptu-api-key"],
                 ["secrets", "list", "--backend", "vault"]):
        code, out, err = _run(argv, capsys)
        assert code == 69, (argv, err)
        assert out == "" and err.count("\n") == 1 and "unreachable" in err
        assert "Traceback" not in err


@pytest.mark.parametrize("addr", ["notaurl", "127.0.0.1:8200", "ftp://vault.example"])
def test_a_vault_address_that_is_no_url_is_a_config_error(
        addr: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", addr)
    monkeypatch.setenv("VAULT_TOKEN", "some-token-value")
    code, out, err = _run(["secrets", "list"], capsys)
    assert (code, out) == (78, "") and err.count("\n") == 1 and "not an http(s) URL" in err
    assert "some-token-value" not in err


def test_sealed_vault_is_one_line_exit_69(fresh_bao_server: BaoServer,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", fresh_bao_server.addr)
    monkeypatch.setenv("VAULT_TOKEN", fresh_bao_server.root_token)
    code, out, _ = _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    assert code == 0 and "vault" in out
    fresh_bao_server.seal()
    for argv in (["secrets", "check"], ["secrets", "get", "impromptu-api-key"]):
        code, out, err = _run(argv, capsys)
        assert code == 69, (argv, err)
        assert out == "" and err.count("\n") == 1 and "sealed" in err


def test_uninitialised_vault_is_one_line_exit_69(uninitialised_bao: BaoServer,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", uninitialised_bao.addr)
    monkeypatch.setenv("VAULT_TOKEN", "no-token-exists-yet")
    for argv in (["secrets", "check"], ["secrets", "get", "impromptu-api-key"],
                 ["secrets", "list"]):
        code, out, err = _run(argv, capsys)
        assert code == 69, (argv, err)
        assert out == "" and err.count("\n") == 1 and "uninitialised" in err


def test_vault_backend_round_trip(bao_server: BaoServer, unique_agent: str,
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", bao_server.addr)
    monkeypatch.setenv("VAULT_TOKEN", bao_server.root_token)
    code, out, _ = _run(["secrets", "put", "openrouter-api-key", "--agent", unique_agent],
                        capsys, OR_KEY, monkeypatch)
    assert code == 0 and f"secret/impromptu/{unique_agent}" in out
    code, out, _ = _run(["secrets", "get", "openrouter-api-key", "--agent", unique_agent,
                         "--json"], capsys)
    assert code == 0 and '"version": 1' in out and OR_KEY not in out
    # the local store knows nothing of it: --backend really switches
    code, _, _ = _run(["secrets", "get", "openrouter-api-key", "--backend", "local"], capsys)
    assert code == 1


def test_policy_renders_for_an_agent(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["secrets", "policy", "rotation", "--agent", "a7"], capsys)
    assert code == 0 and 'path "secret/data/impromptu/a7/*"' in out and "${" not in out
    # --agent is the global agent option now: a name that is not plain is a usage error
    code, _, err = _run(["secrets", "policy", "rotation", "--agent", "../x"], capsys)
    assert code == 2 and "is not a plain name" in err


def test_passphrase_store_through_the_environment(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        isolated_home: Path) -> None:
    from impromptu_ops.store.local import kdf_of

    monkeypatch.setenv("IMPROMPTU_STORE_PASSPHRASE", "a long passphrase, not argv")
    monkeypatch.setenv("IMPROMPTU_STORE_SCRYPT_N", "4096")
    code, out, _ = _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    assert code == 0
    store_file = isolated_home / ".local/share/impromptu-ops/secrets.store"
    assert kdf_of(store_file) == "scrypt"
    assert not (isolated_home / ".config/impromptu-ops/store.key").exists()
    monkeypatch.delenv("IMPROMPTU_STORE_PASSPHRASE")
    code, out, err = _run(["secrets", "get", "impromptu-api-key"], capsys)
    assert code == 78 and out == "" and "passphrase" in err and err.count("\n") == 1
    monkeypatch.setenv("IMPROMPTU_STORE_PASSPHRASE", "the wrong passphrase")
    code, out, err = _run(["secrets", "get", "impromptu-api-key"], capsys)
    assert code == 65 and out == "" and "authentication" in err


def test_local_backend_never_imports_hvac(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch,
                                          isolated_home: Path) -> None:
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    probe = ("import sys; from impromptu_ops.cli.main import run; "
             "code = run(['secrets', 'get', 'impromptu-api-key']); "
             "print('HVAC' if 'hvac' in sys.modules else 'NO-HVAC', code)")
    done = subprocess.run([sys.executable, "-c", probe], env=_store_env(isolated_home),
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.stdout.split()[-2:] == ["NO-HVAC", "0"], done.stderr


def test_tampered_truncated_or_rolled_back_store_is_one_line_exit_65(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        isolated_home: Path) -> None:
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    store_file = isolated_home / ".local/share/impromptu-ops/secrets.store"
    first = store_file.read_bytes()
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY.replace("K", "Q"),
         monkeypatch)
    good = store_file.read_bytes()
    flipped = bytearray(good)
    flipped[-3] ^= 0x40
    for hostile, words in ((good[: len(good) // 2], "authentication"),
                           (bytes(flipped), "authentication"),
                           (b"", "empty"),
                           (first, "older copy")):
        store_file.write_bytes(hostile)
        for argv, stdin in ((["secrets", "get", "impromptu-api-key"], None),
                            (["secrets", "put", "openrouter-api-key"], OR_KEY)):
            code, out, err = _run(argv, capsys, stdin, monkeypatch)
            assert code == 65 and out == "", (hostile[:20], argv, err)
            assert err.count("\n") == 1 and words in err and "NOT reset" in err
            assert API_KEY not in err and "Traceback" not in err
        assert store_file.read_bytes() == hostile  # never reset, never rewritten
    store_file.write_bytes(good)
    code, out, _ = _run(["secrets", "get", "impromptu-api-key"], capsys)
    assert code == 0 and " v2 " in out


def test_exec_files_mode_cleans_up_when_the_command_cannot_start(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        isolated_home: Path, tmp_path: Path) -> None:
    _run(["secrets", "put", "impromptu-api-key"], capsys, API_KEY, monkeypatch)
    parent = tmp_path / "shm"
    parent.mkdir()
    done = _cli(["secrets", "exec", "--files", str(parent), "--",
                 str(tmp_path / "no-such-program")], _store_env(isolated_home))
    assert done.returncode == 65 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "cannot run" in done.stderr
    assert list(parent.iterdir()) == []


def test_put_on_a_terminal_asks_twice_and_never_echoes(tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "impromptu_ops.cli", "secrets", "put",
                             "impromptu-api-key"],
                            stdin=follower, stdout=follower, stderr=follower, env=os.environ)
    os.close(follower)
    seen = bytearray()
    try:
        read_until(leader, b"value for impromptu-api-key", seen)
        os.write(leader, API_KEY.encode() + b"\n")
        read_until(leader, b"Repeat", seen)  # click's confirmation prompt
        os.write(leader, API_KEY.encode() + b"\n")
        assert proc.wait(timeout=60) == 0, bytes(seen)
        read_until(leader, b"\n", seen, timeout=1)
    finally:
        if proc.poll() is None:  # a failed step above: never block on a live child
            proc.kill()
            proc.wait(10)
        seen += drain(leader)
        os.close(leader)
    assert API_KEY.encode() not in seen  # typed, but never shown on the terminal
    env = {**os.environ}
    child = _cli(["secrets", "exec", "--", sys.executable, "-c",
                  "import os, hashlib; print(hashlib.sha256("
                  "os.environ['IMPROMPTU_API_KEY'].encode()).hexdigest())"], env)
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == hashlib.sha256(API_KEY.encode()).hexdigest()
