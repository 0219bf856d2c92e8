"""An RPC URL often carries the provider's API key in its path (and a ping URL is a token):
``config show`` masks them, in text and JSON, and the reconcile command never prints them."""

from __future__ import annotations

import json

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.settings import describe, load_settings
from impromptu_ops.settings_schema import mask_url

KEY = "Zq7XkP2vR9sLmN4tW8yB"  # a provider key's shape: no prefix the redactor knows
RPC = f"https://base-mainnet.g.alchemy.com/v2/{KEY}"
PING = f"https://hc-ping.com/{KEY}-ping"


@pytest.mark.parametrize(("url", "shown"), [
    (RPC, "https://base-mainnet.g.alchemy.com/****"),
    (f"https://rpc.example?apikey={KEY}", "https://rpc.example/****"),
    (f"https://user:{KEY}@rpc.example:8443/x", "https://****@rpc.example:8443/****"),
    (f"https://[::1]:8545/{KEY}", "https://[::1]:8545/****"),
    ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),  # nothing to hide: shown as is
    ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
    (f"no-scheme/{KEY}", "****"),
    ("http://[bad", "****"),
])
def test_mask_url_for_credential_urls(url: str, shown: str) -> None:
    assert mask_url(url, path=True) == shown


def test_other_urls_keep_their_path_but_lose_user_info() -> None:
    assert mask_url("http://127.0.0.1:1/api", path=False) == "http://127.0.0.1:1/api"
    assert mask_url(f"https://me:{KEY}@vault.example:8200/v1", path=False) == \
        "https://****@vault.example:8200/v1"


def test_describe_masks_rpc_and_ping_urls() -> None:
    s = load_settings({"chain.rpc_url": RPC, "jobs.ping_url": PING,
                       "platform.api_url": "http://127.0.0.1:1/api"}, env={})
    rows = {k: v for k, v, _ in describe(s)}
    assert rows["chain.rpc_url"] == "https://base-mainnet.g.alchemy.com/****"
    assert rows["jobs.ping_url"] == "https://hc-ping.com/****"
    assert rows["platform.api_url"] == "http://127.0.0.1:1/api"
    assert KEY not in " ".join(rows.values())
    assert s.chain.rpc_url == RPC  # only the display is masked


def test_config_show_never_prints_the_rpc_key(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMPROMPTU_CHAIN_RPC", RPC)
    monkeypatch.setenv("IMPROMPTU_JOBS_PING_URL", PING)
    assert run(["config", "show"]) == 0
    text = capsys.readouterr().out
    assert "base-mainnet.g.alchemy.com/****" in text and KEY not in text
    assert run(["config", "show", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["chain.rpc_url"]["value"] == "https://base-mainnet.g.alchemy.com/****"
    assert KEY not in json.dumps(doc)


def test_reconcile_failure_names_only_the_rpc_host(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMPROMPTU_CHAIN_RPC", f"http://127.0.0.1:9/v2/{KEY}")
    monkeypatch.setenv("IMPROMPTU_CHAIN_WALLET_ADDRESS", "0x" + "ab" * 20)
    from impromptu_ops.secret import Secret
    from impromptu_ops.store.factory import open_store
    open_store(load_settings()).write("impromptu-api-key",
                                      {"value": Secret("impr_sk_" + "a" * 40)}, cas=None)
    assert run(["earnings", "reconcile"]) == 3
    captured = capsys.readouterr()
    assert "127.0.0.1:9" in captured.err and KEY not in captured.out + captured.err
    assert len(captured.err.strip().splitlines()) == 1
