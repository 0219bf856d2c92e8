"""Same operations, same answers: the local store and OpenBao side by side, by Hypothesis.

The contract suite checks chosen cases; this drives random sequences of writes (with
right, stale and future CAS), deletes, undeletes, ``max_versions`` changes, rollbacks and
reads through both backends at once and requires the same observable outcome from each
step: the same result, or the same error class. A difference is a semantic drift between
"local" and "Vault" that an operator switching backends would trip over.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops.errors import OpsError
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.factory import open_store
from impromptu_ops.store.local import LocalStore
from tests.fixtures_vault import BaoServer

NAMES = ("impromptu-api-key", "_rotation/openrouter")

_op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.sampled_from([0, 0, 0, -1, 1])),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.none()),
    st.tuples(st.just("undelete"), st.sampled_from(NAMES), st.integers(1, 6)),
    st.tuples(st.just("maxv"), st.sampled_from(NAMES), st.integers(1, 4)),
    st.tuples(st.just("rollback"), st.sampled_from(NAMES), st.integers(1, 6)),
    st.tuples(st.just("read"), st.sampled_from(NAMES), st.one_of(st.none(),
                                                                 st.integers(1, 6))),
    st.tuples(st.just("meta"), st.sampled_from(NAMES), st.none()),
)


def _current(store: SecretStore, name: str) -> int:
    try:
        return store.metadata(name).current_version
    except OpsError:
        return 0


def _apply(store: SecretStore, op: tuple[str, str, Any], step: int, cas: int) -> Any:
    kind, name, arg = op
    try:
        if kind == "write":
            return store.write(name, {"value": Secret(f"value-{step:04d}-xyz")}, cas=cas)
        if kind == "delete":
            return store.delete(name)
        if kind == "undelete":
            return store.undelete(name, [arg])
        if kind == "maxv":
            return store.set_max_versions(name, arg)
        if kind == "rollback":
            return store.rollback(name, arg)
        if kind == "read":
            got = store.read(name, arg)
            return (got.version, got.value().reveal())
        meta = store.metadata(name)
        return (meta.current_version, meta.oldest_version, meta.max_versions,
                [(v.version, v.deleted, v.destroyed) for v in meta.versions])
    except OpsError as exc:
        return type(exc).__name__


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, min_size=1, max_size=14))
def test_local_and_vault_agree(bao_server: BaoServer, tmp_path_factory: pytest.TempPathFactory,
                               ops: list[tuple[str, str, Any]]) -> None:
    folder: Path = tmp_path_factory.mktemp("eq")
    local = LocalStore(folder / "secrets.store", folder / "store.key")
    vault = open_store(bao_server.settings(f"eq{uuid.uuid4().hex[:10]}"))
    for step, op in enumerate(ops):
        cas = max(_current(local, op[1]) + (op[2] if op[0] == "write" else 0), 0)
        want = _apply(local, op, step, cas)
        got = _apply(vault, op, step, cas)
        assert got == want, f"step {step} {op}: local {want!r} vs vault {got!r}"
