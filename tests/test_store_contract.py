"""The one contract both secret-store backends must pass: local encrypted file and OpenBao.

Every test runs twice (``[local]`` and ``[vault]``): versions, check-and-set, not-found,
list, soft delete/undelete, rollback, custom metadata that does not reset other fields,
pruning and pruning refusal, and two processes incrementing one counter under CAS with
no lost update.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from impromptu_ops.errors import CasConflict, InputError, SecretNotFound
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore, VersionPruningRefused
from impromptu_ops.store.factory import open_store
from impromptu_ops.store.local import LocalStore
from tests.fixtures_vault import BaoServer

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Backend:
    kind: str
    make: Callable[[], SecretStore]  # another client on the same storage
    child_env: dict[str, str]  # environment that makes open_store() find it

    @property
    def store(self) -> SecretStore:
        return self.make()


@pytest.fixture(params=["local", "vault"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, unique_agent: str) -> Backend:
    import os

    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("IMPROMPTU_", "VAULT_", "BAO_"))}
    if request.param == "local":
        path, key = tmp_path / "s" / "secrets.store", tmp_path / "s" / "store.key"
        env = {**base_env, "IMPROMPTU_STORE_BACKEND": "local",
               "IMPROMPTU_STORE_LOCAL_PATH": str(path),
               "IMPROMPTU_STORE_LOCAL_KEY_FILE": str(key)}
        return Backend("local", lambda: LocalStore(path, key), env)
    bao: BaoServer = request.getfixturevalue("bao_server")
    settings = bao.settings(unique_agent)
    env = {**bao.env(), "IMPROMPTU_STORE_BACKEND": "vault",
           "IMPROMPTU_STORE_AGENT": unique_agent}
    return Backend("vault", lambda: open_store(settings), env)


def v(text: str) -> dict[str, Secret]:
    return {"value": Secret(text)}


def test_versions_and_reads(backend: Backend) -> None:
    store = backend.store
    assert store.write("impromptu-api-key", v("first-value-1"), cas=0) == 1
    assert store.write("impromptu-api-key", v("second-value-2"), cas=1) == 2
    latest = store.read("impromptu-api-key")
    assert (latest.version, latest.value().reveal()) == (2, "second-value-2")
    assert store.read("impromptu-api-key", 1).value().reveal() == "first-value-1"
    assert "second-value-2" not in repr(latest)
    meta = store.metadata("impromptu-api-key")
    assert meta.current_version == 2
    assert [i.version for i in meta.versions] == [1, 2]
    assert meta.created_time <= meta.updated_time
    # another client sees the same thing
    assert backend.make().read("impromptu-api-key").version == 2


def test_multi_key_data_round_trips(backend: Backend) -> None:
    store = backend.store
    store.write("wallet-private-key", {"value": Secret("0x" + "ab" * 32),
                                       "address": Secret("0x" + "cd" * 20)}, cas=0)
    got = store.read("wallet-private-key")
    assert set(got.data) == {"value", "address"}
    assert got.data["address"].reveal() == "0x" + "cd" * 20


def test_check_and_set(backend: Backend) -> None:
    store = backend.store
    store.write("openrouter-api-key", v("one-111111"), cas=None)  # None = create only
    with pytest.raises(CasConflict):
        store.write("openrouter-api-key", v("two-222222"), cas=0)
    with pytest.raises(CasConflict):
        store.write("openrouter-api-key", v("two-222222"), cas=None)
    store.write("openrouter-api-key", v("two-222222"), cas=1)
    with pytest.raises(CasConflict) as err:
        store.write("openrouter-api-key", v("stale-33333"), cas=1)
    assert err.value.exit_code == 75
    assert store.read("openrouter-api-key").value().reveal() == "two-222222"


def test_not_found(backend: Backend) -> None:
    store = backend.store
    with pytest.raises(SecretNotFound):
        store.read("impromptu-api-key")
    with pytest.raises(SecretNotFound):
        store.metadata("impromptu-api-key")
    store.write("impromptu-api-key", v("value-abcdef"), cas=0)
    with pytest.raises(SecretNotFound):
        store.read("impromptu-api-key", 7)


@pytest.mark.parametrize("bad", ["../etc", "a//b", "UPPER", "", "x/../y", "a b", "-lead"])
def test_names_are_checked(backend: Backend, bad: str) -> None:
    with pytest.raises(InputError):
        backend.store.write(bad, v("value-abcdef"), cas=0)


def test_list(backend: Backend) -> None:
    store = backend.store
    assert store.list() == []
    for name in ("impromptu-api-key", "openrouter-api-key", "_rotation/openrouter"):
        store.write(name, v("value-abcdef"), cas=0)
    assert store.list() == ["_rotation/openrouter", "impromptu-api-key", "openrouter-api-key"]
    assert store.list("open") == ["openrouter-api-key"]
    assert store.list("_rotation/") == ["_rotation/openrouter"]


def test_delete_undelete(backend: Backend) -> None:
    store = backend.store
    store.write("impromptu-api-key", v("value-one-1"), cas=0)
    store.write("impromptu-api-key", v("value-two-2"), cas=1)
    store.delete("impromptu-api-key")
    with pytest.raises(SecretNotFound, match="deleted"):
        store.read("impromptu-api-key")
    assert store.read("impromptu-api-key", 1).value().reveal() == "value-one-1"
    meta = store.metadata("impromptu-api-key")
    assert [(i.version, i.deleted) for i in meta.versions] == [(1, False), (2, True)]
    store.undelete("impromptu-api-key", [2])
    assert store.read("impromptu-api-key").value().reveal() == "value-two-2"
    store.delete("impromptu-api-key", [1])
    with pytest.raises(SecretNotFound):
        store.read("impromptu-api-key", 1)


def test_rollback(backend: Backend) -> None:
    store = backend.store
    store.write("openrouter-api-key", v("good-value-1"), cas=0)
    store.write("openrouter-api-key", v("bad-value-22"), cas=1)
    assert store.rollback("openrouter-api-key", 1) == 3
    assert store.read("openrouter-api-key").value().reveal() == "good-value-1"
    assert store.read("openrouter-api-key", 2).value().reveal() == "bad-value-22"


def test_custom_metadata_touches_nothing_else(backend: Backend) -> None:
    store = backend.store
    store.write("openrouter-api-key", v("value-abcdef"), cas=0)
    store.set_max_versions("openrouter-api-key", 4)
    store.set_custom_metadata("openrouter-api-key", {"rotation": "phase=created"})
    store.set_custom_metadata("openrouter-api-key", {"rotation": "phase=done", "by": "t"})
    meta = store.metadata("openrouter-api-key")
    assert dict(meta.custom) == {"rotation": "phase=done", "by": "t"}
    assert meta.max_versions == 4
    assert meta.current_version == 1
    with pytest.raises(SecretNotFound):
        store.set_custom_metadata("impromptu-api-key", {"a": "b"})


def test_pruning_keeps_max_versions(backend: Backend) -> None:
    store = backend.store
    store.write("impromptu-api-key", v("value-0-abc"), cas=0)
    store.set_max_versions("impromptu-api-key", 3)
    for n in range(1, 5):
        store.write("impromptu-api-key", v(f"value-{n}-abc"), cas=n)
    meta = store.metadata("impromptu-api-key")
    assert meta.current_version == 5
    assert [i.version for i in meta.versions] == [3, 4, 5]
    with pytest.raises(SecretNotFound):
        store.read("impromptu-api-key", 1)


def test_pruning_refused_when_it_would_destroy_the_good_version(backend: Backend) -> None:
    store = backend.store
    store.write("impromptu-api-key", v("good-value-1"), cas=0)
    store.set_max_versions("impromptu-api-key", 1)
    with pytest.raises(VersionPruningRefused):
        store.write("impromptu-api-key", v("next-value-2"), cas=1)
    assert store.read("impromptu-api-key").value().reveal() == "good-value-1"
    # max 2 with the newest version soft-deleted: the last good one is version 1
    store.set_max_versions("impromptu-api-key", 2)
    store.write("impromptu-api-key", v("next-value-2"), cas=1)
    store.delete("impromptu-api-key", [2])
    with pytest.raises(VersionPruningRefused, match="version 1"):
        store.write("impromptu-api-key", v("next-value-3"), cas=2)
    assert store.read("impromptu-api-key", 1).value().reveal() == "good-value-1"
    store.undelete("impromptu-api-key", [2])
    assert store.write("impromptu-api-key", v("next-value-3"), cas=2) == 3


def test_concurrent_writers_lose_no_update(backend: Backend) -> None:
    rounds = 15
    worker = REPO / "tests" / "store_worker.py"
    procs = [subprocess.Popen([sys.executable, str(worker), "_test/counter", str(rounds)],
                              env=backend.child_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, errout) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, errout.decode()[-2000:]
        assert out.decode().startswith("conflicts=")
    final = backend.store.read("_test/counter")
    assert final.value().reveal() == str(2 * rounds)
    assert final.version == 2 * rounds
