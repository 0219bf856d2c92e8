"""Local encrypted store: file safety, tamper and truncation refusal, key handling.

The shared KV v2 behaviour is in ``test_store_contract.py``; this file covers what only a
file can get wrong. Hostile files are generated with Hypothesis: any flipped byte or any
truncation must be refused with TamperedStore, and the file must be left as it was.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops.errors import ConfigError, TamperedStore
from impromptu_ops.secret import Secret
from impromptu_ops.store import sealed
from impromptu_ops.store.local import LocalStore

VALUE = "impr_sk_" + "Q" * 40


def _filled(tmp_path: Path, **kw: object) -> LocalStore:
    store = LocalStore(tmp_path / "d" / "secrets.store", tmp_path / "k" / "store.key",
                       **kw)  # type: ignore[arg-type]
    store.write("impromptu-api-key", {"value": Secret(VALUE)}, cas=0)
    store.write("impromptu-api-key", {"value": Secret(VALUE + "x")}, cas=1)
    return store


def test_files_are_private_and_hold_no_plaintext(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    for path in (store.path, store.key_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    blob = store.path.read_bytes()
    assert VALUE.encode() not in blob
    assert b"impromptu-api-key" not in blob  # names are encrypted too
    leftovers = [p.name for p in store.path.parent.iterdir()
                 if p.name not in ("secrets.store", "secrets.store.lock")]
    assert leftovers == []


def test_reads_create_nothing(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "secrets.store", tmp_path / "store.key")
    assert store.list() == []
    assert not store.path.exists() and not store.key_path.exists()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_flipped_byte_is_refused_and_left_alone(tmp_path_factory: pytest.TempPathFactory,
                                                    data: st.DataObject) -> None:
    store = _filled(tmp_path_factory.mktemp("flip"))
    blob = bytearray(store.path.read_bytes())
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    store.path.write_bytes(bytes(blob))
    fresh = LocalStore(store.path, store.key_path)
    with pytest.raises(TamperedStore):
        fresh.read("impromptu-api-key")
    with pytest.raises(TamperedStore):
        fresh.write("openrouter-api-key", {"value": Secret("x" * 20)}, cas=0)
    assert store.path.read_bytes() == bytes(blob)  # never reset or "repaired"


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_truncation_is_refused(tmp_path_factory: pytest.TempPathFactory,
                                   data: st.DataObject) -> None:
    store = _filled(tmp_path_factory.mktemp("trunc"))
    blob = store.path.read_bytes()
    cut = data.draw(st.integers(0, len(blob) - 1))
    store.path.write_bytes(blob[:cut])
    with pytest.raises(TamperedStore) as err:
        LocalStore(store.path, store.key_path).list()
    assert err.value.exit_code == 65
    assert store.path.read_bytes() == blob[:cut]


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    other = tmp_path / "other.key"
    fd = os.open(other, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, __import__("base64").b64encode(os.urandom(32)))
    os.close(fd)
    with pytest.raises(TamperedStore, match="authentication"):
        LocalStore(store.path, other).read("impromptu-api-key")


def test_missing_key_file_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    before = store.path.read_bytes()
    store.key_path.unlink()
    fresh = LocalStore(store.path, store.key_path)
    with pytest.raises(ConfigError, match="key file"):
        fresh.read("impromptu-api-key")
    with pytest.raises(ConfigError, match="key file"):
        fresh.write("openrouter-api-key", {"value": Secret("x" * 20)}, cas=0)
    assert store.path.read_bytes() == before
    assert not store.key_path.exists()  # no fresh key papering over the loss


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    store.key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        LocalStore(store.path, store.key_path).read("impromptu-api-key")


def test_hostile_header_cannot_make_us_burn_memory(tmp_path: Path) -> None:
    path = tmp_path / "secrets.store"
    header = json.dumps({"format": 1, "kdf": "scrypt", "salt": "A" * 24, "n": 2**30,
                         "r": 8, "p": 1}).encode()
    path.write_bytes(sealed.MAGIC + header + b"\n" + os.urandom(64))
    path.chmod(0o600)
    with pytest.raises(TamperedStore, match="out-of-bounds"):
        LocalStore(path, tmp_path / "k", passphrase=Secret("pass phrase 1")).list()


def test_passphrase_store(tmp_path: Path) -> None:
    path, key = tmp_path / "secrets.store", tmp_path / "unused.key"
    good = Secret("correct horse battery staple")
    store = LocalStore(path, key, passphrase=good, scrypt_n=2**12)
    store.write("wallet-private-key", {"value": Secret("0x" + "1f" * 32)}, cas=0)
    assert not key.exists()  # no key file in passphrase mode
    again = LocalStore(path, key, passphrase=good)
    assert again.read("wallet-private-key").value().reveal() == "0x" + "1f" * 32
    with pytest.raises(TamperedStore):
        LocalStore(path, key, passphrase=Secret("wrong horse battery")).list()
    with pytest.raises(ConfigError, match="passphrase"):
        LocalStore(path, key).list()


def test_swapping_in_a_weaker_header_fails_authentication(tmp_path: Path) -> None:
    path = tmp_path / "secrets.store"
    LocalStore(path, tmp_path / "k", passphrase=Secret("pass phrase 12"),
               scrypt_n=2**12).write("impromptu-api-key", {"value": Secret(VALUE)}, cas=0)
    blob = path.read_bytes()
    header, offset = sealed.parse_header(blob)
    weaker = sealed.Header("scrypt", header.salt, 2**10, header.r, header.p)
    path.write_bytes(sealed.MAGIC + weaker.encode() + blob[offset:])
    with pytest.raises(TamperedStore):
        LocalStore(path, tmp_path / "k", passphrase=Secret("pass phrase 12")).list()


def test_store_readable_by_others_is_refused(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    store.path.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        store.read("impromptu-api-key")


@pytest.mark.parametrize("delay", [0.4, 0.9])
def test_kill_9_mid_write_leaves_the_old_or_the_new_store(tmp_path: Path, delay: float) -> None:
    """The local analogue of an ambiguous write: the writer dies at an arbitrary instant."""
    import signal
    import subprocess
    import sys
    import time

    path, key = tmp_path / "s" / "secrets.store", tmp_path / "s" / "store.key"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMPROMPTU_", "VAULT_"))}
    env.update(IMPROMPTU_STORE_BACKEND="local", IMPROMPTU_STORE_LOCAL_PATH=str(path),
               IMPROMPTU_STORE_LOCAL_KEY_FILE=str(key), IMPROMPTU_STORE_MAX_VERSIONS="0")
    worker = Path(__file__).parent / "store_worker.py"
    proc = subprocess.Popen([sys.executable, str(worker), "_test/counter", "100000"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    got = LocalStore(path, key).read("_test/counter")  # never TamperedStore
    assert got.version >= 1
    assert got.value().reveal() == str(got.version)  # no half-applied write
    meta = LocalStore(path, key).metadata("_test/counter")
    assert [v.version for v in meta.versions] == list(range(1, got.version + 1))
    # the next writer carries on from there
    LocalStore(path, key).write("_test/counter", {"value": Secret("x" * 8)}, cas=got.version)


def test_an_older_copy_put_back_is_refused_not_used(tmp_path: Path) -> None:
    """Authentication cannot tell an old genuine copy from the current file; the counter
    kept beside the key can. The copy is left as it is, and a deliberate restore is
    accepted once the operator removes the counter."""
    store = _filled(tmp_path)
    old = store.path.read_bytes()  # generation 2: the value before the rotation below
    store.write("impromptu-api-key", {"value": Secret(VALUE + "new")}, cas=2)
    assert store.counter_path.parent == store.key_path.parent
    assert stat.S_IMODE(store.counter_path.stat().st_mode) == 0o600
    store.path.write_bytes(old)
    fresh = LocalStore(store.path, store.key_path)
    for call in (lambda: fresh.read("impromptu-api-key"),
                 lambda: fresh.write("impromptu-api-key", {"value": Secret(VALUE)}, cas=2)):
        with pytest.raises(TamperedStore, match="older copy") as err:
            call()
        assert err.value.exit_code == 65
        assert str(store.counter_path) in err.value.diagnostics()
    assert store.path.read_bytes() == old
    store.counter_path.unlink()  # the operator restored this copy on purpose
    assert fresh.read("impromptu-api-key").version == 2
    assert fresh.write("impromptu-api-key", {"value": Secret(VALUE + "z")}, cas=2) == 3
    assert store.counter_path.read_text() == "3\n"


def test_a_deleted_store_is_refused_not_recreated_empty(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    store.path.unlink()
    fresh = LocalStore(store.path, store.key_path)
    with pytest.raises(TamperedStore, match="missing"):
        fresh.list()
    with pytest.raises(TamperedStore, match="missing"):
        fresh.write("openrouter-api-key", {"value": Secret("x" * 20)}, cas=0)
    assert not store.path.exists()


def test_a_copy_at_another_path_opens_and_keeps_its_own_counter(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    moved = tmp_path / "elsewhere" / "secrets.store"
    moved.parent.mkdir(mode=0o700)
    moved.write_bytes(store.path.read_bytes())
    moved.chmod(0o600)
    copy = LocalStore(moved, store.key_path)
    assert copy.counter_path != store.counter_path
    assert copy.read("impromptu-api-key").version == 2
    copy.write("impromptu-api-key", {"value": Secret(VALUE + "c")}, cas=2)
    assert store.read("impromptu-api-key").version == 2  # the original is unaffected


def test_a_store_from_before_the_counter_opens_and_starts_counting(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "secrets.store", tmp_path / "store.key")
    store.write("impromptu-api-key", {"value": Secret(VALUE)}, cas=0)
    key = __import__("base64").b64decode(store.key_path.read_bytes())
    body = json.loads(sealed.unseal(store.path.read_bytes(), key,
                                    sealed.parse_header(store.path.read_bytes())[1]))
    del body["generation"]
    store.path.write_bytes(sealed.seal(sealed.Header("keyfile"), key, json.dumps(body).encode()))
    store.counter_path.unlink()
    assert store.read("impromptu-api-key").version == 1
    store.write("impromptu-api-key", {"value": Secret(VALUE + "2")}, cas=1)
    assert store.counter_path.read_text() == "1\n"


@pytest.mark.parametrize("text", [b"", b"-1\n", b"12x\n", b"9" * 100])
def test_a_malformed_counter_is_refused(tmp_path: Path, text: bytes) -> None:
    store = _filled(tmp_path)
    store.counter_path.write_bytes(text)
    with pytest.raises(TamperedStore, match="rollback counter"):
        LocalStore(store.path, store.key_path).read("impromptu-api-key")


def test_an_unwritable_counter_never_fails_a_landed_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key passed as a read-only systemd credential: the write lands and says so."""
    import errno

    from impromptu_ops import atomic

    store = _filled(tmp_path)
    real = atomic.write_bytes

    def read_only_counter(path: Path, data: bytes, mode: int = 0o600) -> None:
        if path == store.counter_path:
            raise OSError(errno.EROFS, "Read-only file system")
        real(path, data, mode)

    monkeypatch.setattr(atomic, "write_bytes", read_only_counter)
    assert store.write("impromptu-api-key", {"value": Secret(VALUE + "r")}, cas=2) == 3
    assert store.counter_path.read_text() == "2\n"  # behind the store: no false alarm
    assert LocalStore(store.path, store.key_path).read("impromptu-api-key").version == 3
