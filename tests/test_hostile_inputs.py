"""Bad local input never crashes (exit 70), hangs or loses data: one test per case of issue 13.

Each case failed on the code before this change: a deeply nested config (RecursionError,
exit 70), ``secrets.store`` that is a folder (exit 70) or a FIFO (hang), a FIFO config file
(hang), ``heartbeat.json`` with ``skipUntil: 1e308`` (every later run failed),
``--ping-url 'http://[::1'`` (exit 70), binary bytes on stdin to ``secrets put`` (exit 70),
a full disk during ``secrets put`` and ``rotate`` (exit 70), and settings of the wrong type
or range accepted silently (``store.local_path = 5``, ``deadline = inf``, ``gate.max_files =
-1``, a relative ``XDG_DATA_HOME``).

The full-disk cases use a real 64-256 KiB tmpfs (``mount -t tmpfs``, root only; skipped
elsewhere) and, everywhere, an ENOSPC injected at the atomic-write seam (``os.fsync``,
which reports ENOSPC on real file systems with delayed allocation).

XDG: the Base Directory Specification (specifications.freedesktop.org/basedir-spec) says
"All paths set in these environment variables must be absolute".
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from impromptu_ops import atomic, settings_schema
from impromptu_ops.cli.main import run
from impromptu_ops.errors import ConfigError, LocalIOError, StoreError
from impromptu_ops.heartbeat_state import from_json
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.settings import SECTIONS, load_settings
from impromptu_ops.settings_schema import supported

KEY = "impr_sk_" + "Q7" * 20


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run(list(args))
    got = capsys.readouterr()
    return code, got.out, got.err


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


def proc(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args], input=stdin,
                          capture_output=True, env={**os.environ, **(env or {})},
                          timeout=timeout, check=False)


def config_file() -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "impromptu-ops" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# -- the settings schema -----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "needles"), [
    ("[store]\nlocal_path = 5\n", ["store.local_path", "expected a path"]),
    ("[store]\nlocal_path = 'relative/store'\n", ["store.local_path", "relative"]),
    ("[platform]\ndeadline = inf\n", ["platform.deadline", "finite"]),
    ("[platform]\ndeadline = nan\n", ["platform.deadline", "finite"]),
    ("[platform]\ndeadline = 1e300\n", ["platform.deadline", "at most"]),
    ("[platform]\nconnect_timeout = 0\n", ["platform.connect_timeout", "positive"]),
    ("[gate]\nmax_files = -1\n", ["gate.max_files", "positive"]),
    ("[gate]\nmax_files = 1.5\n", ["gate.max_files", "whole number"]),
    ("[gate]\nmax_files = '10'\n", ["gate.max_files", "whole number"]),
    ("[platform]\nmax_retries = true\n", ["platform.max_retries", "boolean"]),
    ("[rotation]\nbyok = 'yes'\n", ["rotation.byok", "true or false"]),
    ("[jobs]\nping_url = 'http://[::1'\n", ["jobs.ping_url", "not a usable URL"]),
    ("[jobs]\nping_url = 'ftp://example.test/x'\n", ["jobs.ping_url", "http(s)"]),
    ("[platform]\napi_url = 'http://h:99999/'\n", ["platform.api_url", "out of range"]),
    ("[platform]\nuser_agent = \"a\\nb\"\n", ["platform.user_agent", "control"]),
    ("[store]\nscrypt_n = 3000\n", ["store.scrypt_n", "power of two"]),
    ("[pow]\nbackend = 'fastest'\n", ["pow.backend", "not one of"]),
    ("[store]\nagent = ['a']\n", ["store.agent", "a list"]),
    ("platform = 3\n", ["[platform] must be a table"]),
    ("[agents]\nbob = 1\n", ["[agents.bob] must be a table"]),
    ("[agents.bob.store]\nmax_versions = -2\n", ["store.max_versions", "[agents.bob]"]),
    ("[agents.bob.stor]\nx = 1\n", ["unknown section [agents.bob.stor]"]),
    ("[agents.'../x'.store]\nagent = 'a'\n", ["not a plain name"]),
])
def test_bad_settings_name_the_key_and_the_file(text: str, needles: list[str]) -> None:
    path = config_file()
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    line = info.value.diagnostics()
    assert "\n" not in line and info.value.exit_code == 78
    for needle in needles:
        assert needle in line, line
    if "." in needles[0] and not needles[0].startswith("["):
        assert str(path) in line  # the source: the config file


@pytest.mark.parametrize(("env", "needle"), [
    ({"IMPROMPTU_PLATFORM_DEADLINE": "inf"}, "env IMPROMPTU_PLATFORM_DEADLINE"),
    ({"IMPROMPTU_GATE_MAX_FILES": "-1"}, "env IMPROMPTU_GATE_MAX_FILES"),
    ({"IMPROMPTU_STORE_LOCAL_PATH": "5"}, "env IMPROMPTU_STORE_LOCAL_PATH"),
    ({"XDG_DATA_HOME": "relative/data"}, "env XDG_DATA_HOME"),
    ({"XDG_STATE_HOME": "state"}, "env XDG_STATE_HOME"),
    ({"VAULT_ADDR": "http://[::1"}, "env VAULT_ADDR"),
    ({"IMPROMPTU_STORE_LOCAL_KEY_FILE": "/"}, "names a folder"),  # was exit 70 (fuzz found)
])
def test_bad_env_names_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                    needle: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in info.value.diagnostics()


def test_the_cli_says_which_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "heartbeat", "--ping-url", "http://[::1")
    # the heartbeat keeps the original script's interface: its [FAIL] line is on stdout
    assert code == 78 and "jobs.ping_url" in out and "(from flag)" in out
    assert "Traceback" not in out + err
    code, _, err = cli(capsys, "config", "show")
    assert code == 0


def test_a_relative_path_flag_is_taken_from_the_current_folder(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings({"jobs.metrics_file": Path("out/x.prom")})
    assert s.jobs.metrics_file == tmp_path / "out" / "x.prom"


def test_every_field_has_a_type_the_schema_checks() -> None:
    """A field added to a section dataclass gets its checks from its type: this fails when
    someone adds a type the schema cannot read, instead of it being accepted unchecked."""
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            assert supported(hint), f"{name}.{f.name}: {hint}"
    # and every range, choice and check names a real field
    keys = {f"{n}.{f.name}" for n, c in SECTIONS.items() for f in dataclasses.fields(c)}
    for table in (settings_schema.RANGES, settings_schema.CHOICES, settings_schema.CHECKS):
        assert set(table) <= keys, set(table) - keys


def test_defaults_pass_their_own_schema() -> None:
    """Every default, fed back as if from the config file, is accepted unchanged."""
    defaults = load_settings()
    lines = []
    for section in SECTIONS:
        obj = getattr(defaults, section)
        values = []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None or section == "paths":
                continue
            shown = str(value) if isinstance(value, Path) else value
            values.append(f"{f.name} = {json.dumps(shown)}")
        lines.append(f"[{section}]\n" + "\n".join(values))
    config_file().write_text("\n".join(lines) + "\n")
    again = load_settings()
    for section in SECTIONS:
        if section != "paths":
            assert getattr(again, section) == getattr(defaults, section)


def test_agent_tables_are_validated_and_applied() -> None:
    config_file().write_text(
        "[platform]\nmax_retries = 2\n"
        "[agents.alice.platform]\nmax_retries = 4\n"
        "[agents.alice.store]\nlocal_path = '/srv/alice/secrets.store'\n"
        "[agents.bob.jobs]\nping_url = 'https://hc.example.test/ping/abc'\n")
    s = load_settings()
    assert s.platform.max_retries == 2 and set(s.agents) == {"alice", "bob"}
    alice = s.agents["alice"]
    assert alice.platform.max_retries == 4 and alice.store.agent == "alice"
    assert alice.local_store_path == Path("/srv/alice/secrets.store")
    assert "[agents.alice]" in alice.sources["platform.max_retries"]
    assert s.agents["bob"].platform.max_retries == 2


# -- nesting, folders and FIFOs -----------------------------------------------------------------
def test_a_deeply_nested_config_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    config_file().write_text("[store]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = cli(capsys, "config", "show")
    assert code == 78 and one_line(err) and "nested too deeply" in err


def test_a_fifo_config_is_refused_without_blocking() -> None:
    os.mkfifo(config_file())
    got = proc("config", "show", timeout=20)  # it hung forever before
    assert got.returncode == 78 and b"FIFO" in got.stderr and got.stderr.count(b"\n") == 1


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_store_that_is_not_a_file_is_refused(kind: str) -> None:
    store = load_settings().local_store_path
    store.parent.mkdir(parents=True, exist_ok=True)
    if kind == "folder":
        store.mkdir()
    else:
        os.mkfifo(store)
    for args, stdin in ((("secrets", "put", "impromptu-api-key"), KEY.encode()),
                        (("secrets", "list"), b"")):
        got = proc(*args, stdin=stdin, timeout=20)
        assert got.returncode == 74, got.stderr
        assert got.stderr.count(b"\n") == 1 and b"not a regular file" in got.stderr
    assert store.is_dir() if kind == "folder" else store.is_fifo()  # left as it was


def test_screen_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "prompt.md"
    os.mkfifo(fifo)
    got = proc("screen", str(fifo), timeout=20)
    assert got.returncode == 65 and b"FIFO" in got.stderr


# -- stdin ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [b"\xff\xfe\x00garbage", b"impr_sk_\x00abc", b"a\x1b[2Jb",
                                  b"x" * (64 * 1024 + 1), b"\n"])
def test_secrets_put_refuses_bad_stdin_and_stores_nothing(data: bytes) -> None:
    assert proc("secrets", "put", "impromptu-api-key", stdin=KEY.encode()).returncode == 0
    store = load_settings().local_store_path
    before = store.read_bytes()
    got = proc("secrets", "put", "impromptu-api-key", "--force", stdin=data)
    assert got.returncode == 65, got.stderr
    assert got.stderr.count(b"\n") == 1 and b"Traceback" not in got.stderr
    assert store.read_bytes() == before


# -- state files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1e308, -1.0, 2**70, "soon", True])
def test_implausible_skip_until_is_dropped(value: object) -> None:
    st = from_json({"skipUntil": value, "lastRunAt": value})
    assert st.skip_until is None and st.last_run_at is None
    if not isinstance(value, str | bool):
        assert any("skipUntil" in p for p in st.problems)


def test_heartbeat_recovers_from_a_hostile_state_file(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """``skipUntil: 1e308`` made every later run fail; a state nested 100k deep crashed."""
    state = load_settings().paths.state_dir / "heartbeat.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    for text in ('{"skipUntil": 1e308, "skipReason": "x"}', "[" * 100_000,
                 '{"skipUntil": 9e15}'):
        state.write_text(text)
        code, out, err = cli(capsys, "heartbeat")  # no key stored: fails, but as documented
        assert code == 1 and "paused" not in out and "Traceback" not in out + err, out + err
        doc = json.loads(state.read_text())
        assert doc["skipUntil"] is None


# -- a full disk -----------------------------------------------------------------------------------
@contextlib.contextmanager
def tiny_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                              str(where)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): the seam test covers ENOSPC")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(folder: Path) -> None:
    """Write until the file system says ENOSPC."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_secrets_put_on_a_full_disk_is_74_and_keeps_the_old_store(tmp_path: Path) -> None:
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        env = {"IMPROMPTU_STORE_LOCAL_PATH": str(disk / "secrets.store")}
        assert proc("secrets", "put", "impromptu-api-key", stdin=KEY.encode(),
                    env=env).returncode == 0
        before = (disk / "secrets.store").read_bytes()
        fill(disk)
        got = proc("secrets", "put", "impromptu-api-key", stdin=(KEY[:-2] + "zz").encode(),
                   env=env)
        assert got.returncode == 74, got.stderr
        assert got.stderr.count(b"\n") == 1 and b"No space left" in got.stderr
        assert str(disk / "secrets.store").encode() in got.stderr
        assert (disk / "secrets.store").read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "secrets.store",
                                                          "secrets.store.lock"]


def test_enospc_at_the_write_seam_is_74_with_the_path(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic.write_json(target, {"old": True})

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(LocalIOError) as info:
        atomic.write_json(target, {"new": True})
    assert info.value.exit_code == 74 and str(target) in info.value.diagnostics()
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_store_save_on_enospc_is_a_store_error(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from impromptu_ops.secret import Secret
    from impromptu_ops.store.local import LocalStore

    store = LocalStore(tmp_path / "s.store", tmp_path / "s.key")
    store.write("impromptu-api-key", {"value": Secret(KEY)}, cas=0)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreError) as info:
        store.write("impromptu-api-key", {"value": Secret(KEY + "x")}, cas=1)
    assert info.value.exit_code == 74 and "No space left" in info.value.diagnostics()
    monkeypatch.undo()
    assert store.read("impromptu-api-key").value().reveal() == KEY


def test_rotate_on_a_full_disk_fails_safe_not_70(sandbox: SandboxServer, tmp_path: Path) -> None:
    """The platform key rotation with its store and state on a full disk: a documented
    rotate code (1: failed, the agent still on a working key), one line, and the key in the
    store still the one that works."""
    from tests.rotation_env import IMPROMPTU, make_bench

    with tiny_tmpfs(tmp_path / "disk", "256k") as disk:
        bench = make_bench(sandbox, disk / "home")
        original = bench.current(IMPROMPTU)
        fill(disk)
        got = bench.cli("rotate", "impromptu", "--grace", "0", timeout=60)
        assert got.returncode in (1, 75), got.stderr
        assert "Traceback" not in got.stderr and "internal error" not in got.stderr
        assert "No space left" in got.stdout + got.stderr
        assert bench.current(IMPROMPTU) == original
        assert bench.impromptu_works(original) is True


def test_config_show_lists_agent_values_masked(capsys: pytest.CaptureFixture[str]) -> None:
    config_file().write_text(
        "[agents.bob.jobs]\nping_url = 'https://hc.example.test/ping/tok'\n"
        "[agents.bob.store]\nvault_token = 'hvs.bobstokenbobstokenbobstoken'\n")
    code, out, _ = cli(capsys, "config", "show")
    assert code == 0 and "agents.bob.jobs.ping_url" in out and "agents.bob.store.vault_token" in out
    assert "/ping/tok" not in out and "bobstoken" not in out


@pytest.mark.parametrize("log", ["gate", "rotation"])
def test_a_huge_audit_log_is_refused_not_read(capsys: pytest.CaptureFixture[str],
                                              log: str) -> None:
    """A 3 GiB sparse file of zeros is one endless line: it was read until memory ran out
    (found by the fuzz test)."""
    s = load_settings()
    path = (s.skill_dir / "audit.jsonl" if log == "gate"
            else s.paths.state_dir / "audit" / "rotation.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(3 * 1024 * 1024 * 1024)
    code, _, err = cli(capsys, *(("update", "log") if log == "gate" else ("rotate", "status")))
    assert one_line(err) and "implausibly large" in err
    assert code == (65 if log == "gate" else 1)
