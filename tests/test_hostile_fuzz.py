"""Hostile values into every command that reads a file, a setting or stdin (hypothesis).

Each example runs the real CLI entry point (:func:`impromptu_ops.cli.main.run`) in process,
inside click's test isolation (``CliRunner.isolation``: stdin, stdout, stderr and the
environment replaced), under a per-case alarm, and asserts what issue 13 promises:

- a documented exit code (README "Exit codes"; ``health`` speaks Nagios 0-3);
- at most one line on stderr (exactly one when a general command fails), no traceback,
  never exit 70 ("internal error");
- no hang: a FIFO, ``/dev/zero`` or a huge sparse file where a file is expected must be
  refused, not read forever (the alarm fails the example);
- no change to the store: the store, its key and its rollback counter are byte-identical
  afterwards.

A few of the same cases also run as real subprocesses (a signal or a stuck ``open()``
behaves differently there than under the test runner). The examples are bounded (a few
dozen per test, ``deadline=None``) so that the suite stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops.cli.main import run
from impromptu_ops.secret import Secret
from impromptu_ops.settings import ENV_ALIASES, SECTIONS, env_name, load_settings
from impromptu_ops.store.local import LocalStore

KEY = "impr_sk_" + "Fz" * 20
GENERAL = frozenset({0, 1, 2, 65, 69, 74, 75, 77, 78})
NAGIOS = frozenset({0, 1, 2, 3})
ROTATE = frozenset({0, 1, 2, 64, 75})  # rotate's own contract (see cli/rotate.py)
CASE_SECONDS = 15
FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


class Hung(BaseException):
    """Raised by the alarm: not an Exception, so the CLI's own handlers cannot swallow it."""


@contextlib.contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"the command did not finish within {seconds}s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(args: list[str], stdin: bytes = b"", env: dict[str, str | None] | None = None
           ) -> Result:
    with CliRunner().isolation(input=stdin, env=env) as (out, err, _), alarm(CASE_SECONDS):
        code = run(args)
    return Result(code, out.getvalue().decode("utf-8", "replace"),
                  err.getvalue().decode("utf-8", "replace"))


def check(got: Result, allowed: frozenset[int] = GENERAL, strict_line: bool = True) -> None:
    both = got.out + got.err
    assert got.code in allowed, f"exit {got.code}: {both}"
    assert "Traceback" not in both and "internal error" not in both, both
    lines = got.err.splitlines()
    assert len(lines) <= 1, got.err
    if strict_line and got.code not in (0,):
        assert len(lines) == 1, f"exit {got.code} without a line on stderr: {got.out}"


@dataclasses.dataclass
class Store:
    files: dict[Path, bytes] = dataclasses.field(repr=False)

    def unchanged(self) -> bool:
        return all(p.read_bytes() == data for p, data in self.files.items())


@pytest.fixture(autouse=True)
def loopback_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    """A platform address that refuses at once (the discard port on loopback): a command
    that gets as far as the network fails fast and never leaves the machine."""
    monkeypatch.setenv("IMPROMPTU_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("IMPROMPTU_OPENROUTER_URL", "http://127.0.0.1:9/openrouter")
    monkeypatch.setenv("IMPROMPTU_PLATFORM_DEADLINE", "1")
    monkeypatch.setenv("IMPROMPTU_PLATFORM_BACKOFF_BASE", "0.01")
    monkeypatch.setenv("IMPROMPTU_PLATFORM_BACKOFF_CAP", "0.02")


@pytest.fixture
def store() -> Store:
    s = load_settings()
    local = LocalStore(s.local_store_path, s.local_key_path)
    local.write("impromptu-api-key", {"value": Secret(KEY)}, cas=0)
    files = [s.local_store_path, s.local_key_path, local.counter_path]
    return Store({p: p.read_bytes() for p in files})


# -- what a hostile file can be -----------------------------------------------------------------
KINDS = ("bytes", "fifo", "folder", "missing", "dev-zero", "huge", "deep-json", "deep-toml",
         "dangling-link")


def make(path: Path, kind: str, data: bytes) -> Path:
    """Turn ``path`` into a hostile file of ``kind`` (``data`` for the byte kinds)."""
    if kind == "bytes":
        path.write_bytes(data)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "huge":
        with path.open("wb") as fh:
            fh.truncate(3 * 1024 * 1024 * 1024)  # sparse: 3 GiB of nothing, instantly
    elif kind == "deep-json":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif kind == "deep-toml":
        path.write_text("[store]\nagent = " + "[" * 50_000 + "]" * 50_000 + "\n")
    elif kind == "dangling-link":
        path.symlink_to(path.parent / "nowhere")
    return path


hostile_bytes = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\xff\xfe\x00\x00", b"{}", b"[]", b"null", b'{"a": NaN}',
                     b'{"rounds": [' + b"1," * 5000 + b"1]}", b"IMPROMPTU_API_KEY=\x00x\n",
                     b"[store]\nlocal_path = 5\n", b"[platform]\ndeadline = inf\n",
                     b'[agents.x]\nstore = "y"\n', b"\xef\xbb\xbf[paths]\n",
                     b"export OPENROUTER_API_KEY=sk-or-v1-" + b"a" * 9 + b"\n"]),
)

SETTING_KEYS = sorted((section, f.name) for section, cls in SECTIONS.items()
                      for f in dataclasses.fields(cls))
toml_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=40).map(json.dumps),
    st.sampled_from(["true", "false", "[]", "[1, 'a']", "{}", "{ a = 1 }", "1979-05-27",
                     "07:32:00", "'relative'", "'/'", "'~'", "'http://[::1'", "''",
                     "'/dev/zero'", "1e309", "-0.0", "0", "nan", "inf", "-inf"]),
)


@st.composite
def toml_documents(draw: st.DrawFn) -> bytes:
    """A syntactically valid config whose values have hostile types and ranges."""
    lines: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        section, name = draw(st.sampled_from(SETTING_KEYS))
        prefix = draw(st.sampled_from(["", "", "agents.a1."]))
        lines.append(f"[{prefix}{section}]\n{name} = {draw(toml_values)}")
    return "\n".join(lines).encode()


# Commands that take a file argument; {F} is the hostile file. None of them may write to
# the store when the file is not a valid input.
FILE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("screen", "{F}"),
    ("secrets", "import", "--from-file", "{F}"),
    ("register", "recover", "{F}"),
    ("pow", "verify", "--challenge", "{F}", "--solution", "{F}"),
    ("pow", "solve", "--challenge", "{F}", "--max-difficulty", "1"),
    ("--config", "{F}", "config", "show"),
    ("--config", "{F}", "secrets", "list"),
)


@FUZZ
@given(command=st.sampled_from(FILE_COMMANDS), kind=st.sampled_from(KINDS), data=hostile_bytes)
def test_hostile_file_arguments(store: Store, command: tuple[str, ...], kind: str,
                                data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        target = make(Path(tmp) / "input", kind, data)
        got = invoke([target.as_posix() if part == "{F}" else part for part in command])
    check(got)
    if kind in ("fifo", "folder", "dev-zero", "huge"):  # never read, never "fine"
        assert got.code != 0, got.out
    assert store.unchanged()


# Commands run with a hostile config file at the default location, or state files.
READERS: tuple[tuple[tuple[str, ...], frozenset[int], bool], ...] = (
    (("config", "show"), GENERAL, True),
    (("secrets", "list"), GENERAL, True),
    (("secrets", "get", "impromptu-api-key"), GENERAL, True),
    (("heartbeat",), GENERAL, False),  # its [FAIL] line is on stdout (the original's)
    (("health", "--format", "nagios", "--check", "heartbeat"), NAGIOS, False),
    (("update", "status"), GENERAL, True),
    (("update", "log"), GENERAL, True),
    (("rotate", "status"), ROTATE, True),
)


@FUZZ
@given(reader=st.sampled_from(READERS), kind=st.sampled_from(KINDS),
       data=st.one_of(hostile_bytes, toml_documents()))
def test_hostile_config_file(store: Store, reader: tuple[tuple[str, ...], frozenset[int], bool],
                             kind: str, data: bytes) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "impromptu-ops" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    try:
        make(config, kind, data)
        check(invoke(list(reader[0])), reader[1], reader[2])
    finally:
        if config.is_dir() and not config.is_symlink():
            config.rmdir()
        else:
            config.unlink(missing_ok=True)
    assert store.unchanged()


@FUZZ
@given(reader=st.sampled_from(READERS),
       which=st.sampled_from(["heartbeat.json", "counter", "gate-audit", "rotation-audit"]),
       kind=st.sampled_from(KINDS), data=hostile_bytes)
def test_hostile_state_files(store: Store, reader: tuple[tuple[str, ...], frozenset[int], bool],
                             which: str, kind: str, data: bytes) -> None:
    """Our own files, replaced by someone else: the heartbeat's state, the store's counter,
    the update gate's and the rotations' audit logs."""
    s = load_settings()
    if which == "counter":
        path = next(p for p in store.files if p.name.endswith(".generation"))
    else:
        path = {"heartbeat.json": s.paths.state_dir / "heartbeat.json",
                "gate-audit": s.skill_dir / "audit.jsonl",
                "rotation-audit": s.paths.state_dir / "audit" / "rotation.jsonl"}[which]
        path.parent.mkdir(parents=True, exist_ok=True)
    saved = path.read_bytes() if path.is_file() else None
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    try:
        make(path, kind, data)
        check(invoke(list(reader[0])), reader[1], reader[2])
    finally:
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
        if saved is not None:
            path.write_bytes(saved)
            path.chmod(0o600)
    assert store.unchanged()


# Every setting, from the environment, with a hostile value.
ENV_NAMES = sorted({env_name(f"{section}.{f.name}") for section, cls in SECTIONS.items()
                    for f in dataclasses.fields(cls)} | set(ENV_ALIASES.values())
                   | {"XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "HOME",
                      "IMPROMPTU_CONFIG"})
env_values = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=80),
    st.sampled_from(["inf", "-inf", "nan", "1e308", "-1", "0", "99999999999999999999999",
                     "http://[::1", "relative/path", "~", "/dev/zero", "true", "yes", " 5 ",
                     "0x10", "1_000", "\t", "/", "http://h:0/", "https://u:p@h/x?k=v"]),
)


@FUZZ
@given(name=st.sampled_from(ENV_NAMES), value=env_values,
       reader=st.sampled_from(READERS[:3] + READERS[5:]))
def test_hostile_settings_from_the_environment(
        store: Store, name: str, value: str,
        reader: tuple[tuple[str, ...], frozenset[int], bool]) -> None:
    check(invoke(list(reader[0]), env={name: value}), reader[1], reader[2])
    assert store.unchanged()


@FUZZ
@given(data=st.one_of(hostile_bytes, st.sampled_from([b"impr_sk_" + b"A" * 70_000,
                                                      bytes(range(256)) * 300])))
def test_hostile_stdin_to_secrets_put(store: Store, data: bytes) -> None:
    got = invoke(["secrets", "put", "impromptu-api-key"], stdin=data)
    check(got)
    assert got.code != 0  # nothing here has the shape of a platform key
    assert store.unchanged()


# -- the same, as real processes -----------------------------------------------------------------
@pytest.mark.parametrize(("argv", "kind", "stdin"), [
    (("--config", "{F}", "config", "show"), "dev-zero", b""),
    (("screen", "{F}"), "fifo", b""),
    (("pow", "verify", "--challenge", "{F}", "--solution", "-"), "deep-json",
     b"[" * 100_000),
    (("secrets", "put", "impromptu-api-key"), "missing", b"\x00\xff" * 100),
])
def test_hostile_input_in_a_real_process(store: Store, tmp_path: Path, argv: tuple[str, ...],
                                         kind: str, stdin: bytes) -> None:
    target = make(tmp_path / "input", kind, b"")
    args = [target.as_posix() if a == "{F}" else a for a in argv]
    got = subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args], input=stdin,
                         capture_output=True, timeout=60, check=False)
    err = got.stderr.decode("utf-8", "replace")
    assert got.returncode in GENERAL - {0}, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert store.unchanged()
