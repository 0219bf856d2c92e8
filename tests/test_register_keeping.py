"""Secrets first: the store, else a sealed 0600 emergency file that only `recover` opens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from impromptu_ops.errors import InputError, StoreError, StoreUnavailable, TamperedStore
from impromptu_ops.registration.keeping import (
    SecretsNotStored,
    keep_secrets,
    read_emergency,
    recover,
    write_emergency,
)
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.factory import open_store

KEY = "impr_sk_" + "A" * 40


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def secrets() -> dict[str, Secret]:
    return {"impromptu-api-key": Secret(KEY, "impromptu-api-key"),
            "wallet-private-key": Secret("0x" + "b" * 64, "wallet-private-key")}


def broken_store() -> SecretStore:
    raise StoreUnavailable("vault is sealed")


def test_keep_writes_to_the_store_and_reads_back(settings: Settings) -> None:
    kept = keep_secrets(settings, lambda: open_store(settings), secrets(), "agt_1")
    assert kept.names == ("impromptu-api-key", "wallet-private-key")
    assert open_store(settings).read("impromptu-api-key").data["value"].reveal() == KEY
    # Idempotent for the same values; never overwrites a different one.
    keep_secrets(settings, lambda: open_store(settings), secrets(), "agt_1")
    other = {"impromptu-api-key": Secret("impr_sk_" + "C" * 40)}
    with pytest.raises(SecretsNotStored, match="already holds a different impromptu-api-key"):
        keep_secrets(settings, lambda: open_store(settings), other, "agt_2")


def test_store_failure_goes_to_a_sealed_emergency_file(settings: Settings) -> None:
    with pytest.raises(SecretsNotStored) as info:
        keep_secrets(settings, broken_store, secrets(), "agt_9")
    path = info.value.emergency_file
    assert info.value.exit_code == 74
    assert "vault is sealed" in info.value.diagnostics()
    assert f"impromptu-ops register recover {path}" in info.value.diagnostics()
    assert KEY not in info.value.diagnostics()
    raw = path.read_bytes()
    assert KEY.encode() not in raw and b"b" * 64 not in raw
    assert path.stat().st_mode & 0o777 == 0o600
    key_file = settings.paths.config_dir / "emergency.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent != path.parent
    agent, opened = read_emergency(settings, path)
    assert agent == "agt_9" and opened["impromptu-api-key"].reveal() == KEY
    agent, kept = recover(settings, lambda: open_store(settings), path)
    assert agent == "agt_9" and kept.names == ("impromptu-api-key", "wallet-private-key")
    assert not path.exists()
    assert open_store(settings).read("wallet-private-key").data["value"].reveal() == "0x" + "b" * 64


def test_tampered_or_foreign_emergency_files_are_refused(settings: Settings,
                                                         tmp_path: Path) -> None:
    path = write_emergency(settings, secrets(), "agt_3")
    doc = json.loads(path.read_text())
    for field, value in (("agentId", "agt_4"), ("names", ["x"]),
                         ("ciphertext", doc["ciphertext"][:-8] + "AAAAAAA=")):
        tampered = tmp_path / f"t-{field}.json"
        tampered.write_text(json.dumps({**doc, field: value}))
        with pytest.raises(TamperedStore, match="failed authentication"):
            read_emergency(settings, tampered)
    not_ours = tmp_path / "other.json"
    not_ours.write_text("{}")
    with pytest.raises(InputError, match="not an impromptu-ops emergency file"):
        read_emergency(settings, not_ours)
    with pytest.raises(InputError, match="cannot read"):
        read_emergency(settings, tmp_path / "missing.json")
    (settings.paths.config_dir / "emergency.key").write_bytes(b"\x00" * 32)
    with pytest.raises(TamperedStore):
        read_emergency(settings, path)


def test_nowhere_to_write_says_the_key_is_lost_without_showing_it(settings: Settings,
                                                                   tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    from dataclasses import replace

    cut_off = replace(settings, paths=replace(settings.paths, state_dir=blocker / "state",
                                              config_dir=blocker / "config"))
    with pytest.raises(StoreError) as info:
        keep_secrets(cut_off, broken_store, secrets(), "agt_5")
    assert not isinstance(info.value, SecretsNotStored)
    assert "agent agt_5 was registered" in info.value.diagnostics()
    assert KEY not in info.value.diagnostics()
