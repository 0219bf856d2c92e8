"""Registration records the agent's wallet in the config file; reconcile then needs only an
RPC URL.

The config edit goes through tomlkit: the user's comments, key order and other sections
must come back byte for byte, only the one key added.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.errors import ConfigError
from impromptu_ops.registration.config_file import record_wallet
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.settings import load_settings
from tests.fixtures_chain import Anvil

WALLET = "0x" + "Ab" * 20
OTHER = "0x" + "cd" * 20
NOW = datetime(2026, 12, 3, tzinfo=UTC)
ORIGINAL = """\
# my impromptu-ops settings
[platform]
api_url = "https://api.example"   # staging

[chain]
# my own node
rpc_url = "http://127.0.0.1:8545"
confirmations = 20
"""


def test_comments_and_layout_survive(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(ORIGINAL)
    assert record_wallet(path, WALLET, agent_name="alice", now=NOW) is True
    text = path.read_text()
    assert text.startswith(ORIGINAL)  # everything the user wrote, unchanged, in order
    added = text[len(ORIGINAL):]
    assert added.strip().splitlines() == [
        f'wallet_address = "{WALLET.lower()}" # wallet of agent alice, recorded by '
        "impromptu-ops register 2026-12-03"]
    settings = load_settings(config_file=path, env={})
    assert settings.chain.wallet_address == WALLET.lower()
    assert settings.chain.confirmations == 20
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_missing_file_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    assert record_wallet(path, WALLET, now=NOW)
    assert load_settings(config_file=path, env={}).chain.wallet_address == WALLET.lower()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not record_wallet(path, WALLET.upper().replace("0X", "0x"), now=NOW)  # same


def test_a_different_address_is_kept_as_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[chain]\nwallet_address = "{OTHER}"\n')
    assert record_wallet(path, WALLET, now=NOW)
    text = path.read_text()
    assert f'# wallet_address = "{OTHER}"  (replaced 2026-12-03' in text
    assert load_settings(config_file=path, env={}).chain.wallet_address == WALLET.lower()


@pytest.mark.parametrize("content", ["[chain\nrpc_url = 1\n", "chain = 5\n"])
def test_a_broken_file_is_refused_and_left_alone(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(content)
    with pytest.raises(ConfigError):
        record_wallet(path, WALLET, now=NOW)
    assert path.read_text() == content


def test_a_malformed_wallet_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="malformed wallet"):
        record_wallet(tmp_path / "c.toml", "0x123", now=NOW)
    assert not (tmp_path / "c.toml").exists()


def test_register_then_reconcile_with_only_an_rpc_url(
        ledger_sandbox: SandboxServer, anvil: Anvil, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("IMPROMPTU_API_URL", ledger_sandbox.base_url)
    monkeypatch.setenv("IMPROMPTU_POW_CALIBRATION_SECONDS", "0.02")
    config = Path.home() / ".config" / "impromptu-ops" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("# written by hand\n[platform]\nmax_retries = 2  # keep\n")
    assert run(["register", "--name", "ledger-owner", "--accept-tos", "--json"]) == 0
    out = capsys.readouterr().out
    assert str(config) in out
    wallet = load_settings().chain.wallet_address
    assert wallet.startswith("0x") and len(wallet) == 42
    assert config.read_text().startswith("# written by hand\n[platform]\nmax_retries = 2  # keep")
    # the sandbox's token stands in for IMPRMPT (the default token address)
    token = ledger_sandbox.control("POST", "ledger/token", {})
    monkeypatch.setenv("IMPROMPTU_CHAIN_TOKEN_ADDRESS", token["address"])
    report = tmp_path / "r.html"
    code = run(["earnings", "reconcile", "--rpc-url", anvil.url, "--since", "2020-01-01",
                "--format", "html", "--output", str(report)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "no agent wallet address configured" not in err
    assert "ledger-owner" in report.read_text()
