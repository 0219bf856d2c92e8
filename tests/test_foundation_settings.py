"""Settings precedence (flag > env > file > default), validation and masking."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from impromptu_ops.errors import ConfigError
from impromptu_ops.settings import describe, load_settings


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_and_derived(tmp_path: Path) -> None:
    s = load_settings(env={}, config_file=tmp_path / "none.toml")
    assert s.platform.path_prefix == "v1"
    assert s.store_backend == "local"
    assert s.local_store_path.name == "secrets.store"


def test_precedence(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.toml", '[platform]\napi_url = "http://file:1/api"\nmax_retries = 2\n')
    env = {"IMPROMPTU_API_URL": "http://env:1/api", "IMPROMPTU_PLATFORM_MAX_RETRIES": "3"}
    s = load_settings(env=env, config_file=cfg)
    assert s.platform.api_url == "http://env:1/api"
    assert s.platform.max_retries == 3
    assert s.sources["platform.max_retries"] == "env IMPROMPTU_PLATFORM_MAX_RETRIES"
    s = load_settings({"platform.api_url": "http://flag:1/api"}, env=env, config_file=cfg)
    assert s.platform.api_url == "http://flag:1/api"
    assert s.sources["platform.api_url"] == "flag"
    s = load_settings(env={}, config_file=cfg)
    assert s.platform.max_retries == 2 and s.sources["platform.max_retries"].startswith("file")


def test_vault_token_is_secret_and_masked(tmp_path: Path) -> None:
    token = "hvs." + "T" * 30
    s = load_settings(env={"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": token},
                      config_file=tmp_path / "none.toml")
    assert s.store_backend == "vault"
    shown = " ".join(v for _, v, _ in describe(s))
    assert token not in shown
    assert s.store.vault_token is not None and s.store.vault_token.reveal() == token


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[platfrom]\napi_url='x'\n", "unknown section"),
        ("[platform]\napi_ulr='x'\n", "unknown key platform.api_ulr"),
        ("[platform]\nmax_retries='many'\n", "platform.max_retries"),
        ("[platform]\npath_prefix='v9'\n", "path_prefix"),
        ("[platform\n", "config file"),
        ("[store]\nbackend='vault'\n", "no Vault address"),
        ("[platform]\ndeadline=-1\n", "must be positive"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    cfg = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, config_file=cfg)
    line = info.value.diagnostics()
    assert needle in line and "\n" not in line


def test_paths_follow_the_env_given(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "h"), "XDG_DATA_HOME": str(tmp_path / "data")}
    s = load_settings(env=env, config_file=tmp_path / "none.toml")
    assert s.paths.data_dir == tmp_path / "data" / "impromptu-ops"
    assert s.paths.config_dir == tmp_path / "h" / ".config" / "impromptu-ops"
    assert s.local_store_path == tmp_path / "data" / "impromptu-ops" / "secrets.store"


def test_unknown_override_key_is_an_error(tmp_path: Path) -> None:
    """A misspelt flag override used to be dropped silently; now it names the key."""
    cfg = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match=r"unknown setting 'platform\.api_ur'"):
        load_settings({"platform.api_ur": "http://127.0.0.1:1"}, env={}, config_file=cfg)
    with pytest.raises(ConfigError, match=r"unknown setting 'nosuch\.field'"):
        load_settings({"nosuch.field": 1}, env={}, config_file=cfg)
    # a known key still works, and a None value (a flag not given) is still fine
    s = load_settings({"platform.api_url": "http://127.0.0.1:1", "jobs.ping_url": None},
                      env={}, config_file=cfg)
    assert s.platform.api_url == "http://127.0.0.1:1"


@hyp_settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_unknown_override_key_is_a_config_error(key: str) -> None:
    """Whatever the key, the answer is a ConfigError naming it or a valid setting."""
    import dataclasses

    from impromptu_ops.settings import SECTIONS

    known = {f"{s}.{f.name}" for s, c in SECTIONS.items() for f in dataclasses.fields(c)}
    if key in known:
        return
    with pytest.raises(ConfigError) as err:
        load_settings({key: "x"}, env={}, config_file=Path("/nonexistent/impromptu.toml"))
    assert "unknown setting" in err.value.message
