"""Agents by name (issue 17, Build 1): the roster, one agent's settings, stable shards.

Server-free: settings, paths and the CLI's agent selection. The store/Vault side of an
agent is exercised in ``tests/test_fleet_sandbox.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.cli.main import cli, run
from impromptu_ops.errors import ConfigError, InputError
from impromptu_ops.fleet import roster
from impromptu_ops.settings import load_settings

CONFIG = """
[chain]
wallet_address = "0x1111111111111111111111111111111111111111"

[agents.alice.chain]
wallet_address = "0x2222222222222222222222222222222222222222"

[agents.bob.platform]
max_retries = 2
"""


def _cfg(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_default_agent_keeps_todays_paths(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    base = load_settings(env=env, config_file=_cfg(tmp_path))
    d = roster.agent_settings(base, "default")
    assert d.paths.state_dir == base.paths.state_dir
    assert d.local_store_path == base.paths.data_dir / "secrets.store"
    assert d.chain.wallet_address.endswith("1111")


def test_named_agents_get_their_own_store_state_and_wallet(tmp_path: Path) -> None:
    base = load_settings(env={"HOME": str(tmp_path)}, config_file=_cfg(tmp_path))
    alice = roster.agent_settings(base, "alice")
    bob = roster.agent_settings(base, "bob")
    assert alice.chain.wallet_address.endswith("2222")
    assert bob.chain.wallet_address.endswith("1111")  # no table value: the file's default
    assert bob.platform.max_retries == 2 and alice.platform.max_retries != 2
    assert alice.local_store_path == base.paths.data_dir / "agents/alice/secrets.store"
    assert alice.paths.state_dir == base.paths.state_dir / "agents/alice"
    assert len({s.local_store_path for s in (alice, bob, base)}) == 3
    assert roster.keys_location(alice) == f"local {alice.local_store_path}"
    # an agent with no table (about to be registered) still gets its own places
    carol = roster.agent_settings(base, "carol")
    assert carol.store.agent == "carol" and carol.paths.state_dir.name == "carol"


def test_vault_path_per_agent(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "VAULT_ADDR": "http://127.0.0.1:8200"}
    base = load_settings(env=env, config_file=_cfg(tmp_path))
    assert roster.keys_location(roster.agent_settings(base, "alice")) == \
        "vault secret/data/impromptu/alice/"


def test_fleet_names(tmp_path: Path) -> None:
    base = load_settings(env={"HOME": str(tmp_path)}, config_file=_cfg(tmp_path))
    assert roster.fleet_names(base) == ["default", "alice", "bob"]
    without = load_settings(env={"HOME": str(tmp_path),
                                 "IMPROMPTU_FLEET_INCLUDE_DEFAULT": "false"},
                            config_file=_cfg(tmp_path))
    assert roster.fleet_names(without) == ["alice", "bob"]


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "../up", "a b", "x" * 64, "é", "a\nb"])
def test_bad_names_refused(bad: str) -> None:
    with pytest.raises(InputError):
        roster.check_name(bad)


def test_env_aliases_select_the_agent(tmp_path: Path) -> None:
    for var in ("IMPROMPTU_AGENT", "IMPROMPTU_STORE_AGENT"):
        s = load_settings(env={"HOME": str(tmp_path), var: "alice"},
                          config_file=_cfg(tmp_path))
        assert s.store.agent == "alice"
    with pytest.raises(ConfigError, match=r"store\.agent"):
        load_settings(env={"HOME": str(tmp_path), "IMPROMPTU_AGENT": "../x"},
                      config_file=_cfg(tmp_path))


def test_cli_agent_option_and_bad_name(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(cfg), "agents", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["agent"]: r for r in json.loads(result.output)}
    assert set(rows) == {"default", "alice", "bob"}
    assert rows["alice"]["keys"].endswith("agents/alice/secrets.store")
    assert rows["alice"]["wallet"].endswith("2222")
    code = run(["--config", str(cfg), "--agent", "a/b", "config", "show"])
    assert code == 2
    code = run(["--config", str(cfg), "secrets", "list", "--agent", "../x"])
    assert code == 2


def test_cli_selection_reaches_the_settings(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    result = CliRunner().invoke(cli, ["--config", str(cfg), "--agent", "alice",
                                      "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    text = json.dumps(shown)
    assert "2222222222" in text and "agents/alice" in text


@given(st.lists(st.from_regex(roster.AGENT_NAME, fullmatch=True), unique=True, max_size=40),
       st.integers(1, 9))
def test_shards_partition_the_fleet(names: list[str], shards: int) -> None:
    served = [n for i in range(shards) for n in roster.select_shard(names, i, shards)]
    assert sorted(served) == sorted(names)  # every agent exactly once


def test_shard_is_sha256_not_hash() -> None:
    # pinned values: the same on every host and Python (PYTHONHASHSEED has no say)
    assert [roster.shard_of(n, 7) for n in ("default", "alice", "bob")] == \
        [int.from_bytes(__import__("hashlib").sha256(n.encode()).digest()[:8], "big") % 7
         for n in ("default", "alice", "bob")]


def test_shard_env(tmp_path: Path) -> None:
    s = load_settings(env={"HOME": str(tmp_path)}, config_file=tmp_path / "none.toml")
    assert roster.shard_from_env({}, s) == (0, 1)
    assert roster.shard_from_env({"JOB_COMPLETION_INDEX": "2",
                                  "IMPROMPTU_FLEET_SHARDS": "3"}, s) == (2, 3)
    for env in ({"JOB_COMPLETION_INDEX": "3", "IMPROMPTU_FLEET_SHARDS": "3"},
                {"JOB_COMPLETION_INDEX": "-1"}, {"IMPROMPTU_FLEET_SHARDS": "0"},
                {"IMPROMPTU_FLEET_SHARDS": "x"}):
        with pytest.raises(ConfigError):
            roster.shard_from_env(env, s)


def test_register_agent_creates_a_named_agent(sandbox_factory: Any,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``register --agent NAME``: the keys go to NAME's own store file, the wallet to
    ``[agents.NAME.chain]``, the registration journal to NAME's state; ``default`` is
    untouched (sandbox: the registration flow of the platform contract)."""
    from impromptu_ops.settings import config_path
    from impromptu_ops.store.factory import open_store
    from tests.fixtures_register import Registrar

    registrar = Registrar(sandbox_factory(), monkeypatch, capsys)
    res = registrar.run("register", "--agent", "alice", "--name", "alice-bot", "--accept-tos",
                        "--json")
    assert res.code == 0, res.err
    wallet = json.loads(res.out)["walletAddress"]
    base = load_settings()
    alice = roster.agent_settings(base, "alice")
    assert open_store(alice).list()  # its keys, in its own file
    assert alice.local_store_path.is_file() and not base.local_store_path.exists()
    assert base.agents["alice"].chain.wallet_address.lower() == wallet.lower()
    assert base.chain.wallet_address == ""  # the default agent's wallet is not touched
    # its registration lock and journal lived in its own state folder, not the default's
    assert (alice.paths.state_dir / "registration.lock").exists()
    assert not (base.paths.state_dir / "registration.lock").exists()
    assert "[agents.alice.chain]" in config_path(__import__("os").environ).read_text()
    listed = CliRunner().invoke(cli, ["agents", "list", "--json"])
    assert {r["agent"] for r in json.loads(listed.output)} == {"default", "alice"}
