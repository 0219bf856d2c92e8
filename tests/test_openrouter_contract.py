"""The OpenRouter subset of the sandbox follows OpenRouter's public API reference.

Each test pins one documented fact (its docstring names the page); where the reference is
silent the sandbox takes the strictest plausible reading, and the test says so. Pages:

- LIST: https://openrouter.ai/docs/api/api-reference/api-keys/list
- CREATE: https://openrouter.ai/docs/api/api-reference/api-keys/create-keys
- CURRENT: https://openrouter.ai/docs/api/api-reference/api-keys/get-current-key
- DELETE: https://openrouter.ai/docs/api/api-reference/api-keys/delete-keys
- GUIDE: https://openrouter.ai/docs/guides/overview/auth/management-api-keys

The client side (:class:`OpenRouterClient`) is checked against the same sandbox at the end.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops import errors
from impromptu_ops.platform.openrouter import KeySpec, OpenRouterClient
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from tests.fixtures_sandbox import SandboxFactory


class Account:
    """One management key on the sandbox, and raw HTTP calls with it."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.url = sandbox.openrouter_url
        self.management = str(sandbox.control("POST", "openrouter/provisioning-key")["key"])

    def call(self, method: str, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.management}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def create(self, **body: Any) -> dict[str, Any]:
        resp = self.call("POST", "/keys", json={"name": "k", **body})
        assert resp.status_code == 201, resp.text
        got: dict[str, Any] = resp.json()
        return got

    def listing(self, **params: Any) -> list[dict[str, Any]]:
        resp = self.call("GET", "/keys", params=params)
        assert resp.status_code == 200, resp.text
        data: list[dict[str, Any]] = resp.json()["data"]
        return data


@pytest.fixture
def account(sandbox: SandboxServer) -> Account:
    return Account(sandbox)


def stamp(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_hash_is_an_opaque_id_not_derived_from_the_key(account: Account) -> None:
    """CREATE: the answer carries ``key`` (shown once) and ``data.hash``, "the hash
    identifier" used by every other call. The reference never says how it is derived, so
    the sandbox makes it random: a client that computes sha256(key) finds nothing."""
    made = [account.create() for _ in range(3)]
    for doc in made:
        key, key_hash = doc["key"], doc["data"]["hash"]
        assert key_hash not in (hashlib.sha256(key.encode()).hexdigest(), key)
        assert key not in str(doc["data"])  # the listing view never holds the key
    assert len({d["data"]["hash"] for d in made}) == 3


def test_list_hides_disabled_keys_unless_include_disabled(account: Account) -> None:
    """LIST: ``include_disabled`` — "Whether to include disabled API keys in the response";
    so by default they are left out."""
    live, off = account.create(name="live"), account.create(name="off")
    patched = account.call("PATCH", f"/keys/{off['data']['hash']}", json={"disabled": True})
    assert patched.status_code == 200 and patched.json()["data"]["disabled"] is True
    assert [k["hash"] for k in account.listing()] == [live["data"]["hash"]]
    both = account.listing(include_disabled="true")
    assert {k["hash"] for k in both} == {live["data"]["hash"], off["data"]["hash"]}
    assert account.call("GET", "/keys", params={"include_disabled": "maybe"}).status_code == 400


def test_list_pages_hold_the_most_recent_100_from_offset(account: Account) -> None:
    """GUIDE: "List the most recent 100 API keys ... You can paginate using the offset
    parameter"; LIST: ``offset`` is the "Number of API keys to skip for pagination"."""
    names = [f"k{i:03d}" for i in range(130)]
    for name in names:
        account.create(name=name)
    pages = [account.listing(offset=o) for o in (0, 100, 130)]
    assert [len(p) for p in pages] == [100, 30, 0]
    assert [k["name"] for p in pages for k in p] == names[::-1]  # newest first
    assert account.call("GET", "/keys", params={"offset": "-1"}).status_code == 400


def test_create_stores_and_returns_the_documented_settings(account: Account) -> None:
    """CREATE: ``name`` (required), ``limit``, ``limit_reset``, ``include_byok_in_limit``,
    ``expires_at``; the created key's data (and GET /keys/{hash}, GET /keys) return them."""
    expires = stamp(timedelta(days=30))
    doc = account.create(name="prod", limit=10, limit_reset="monthly",
                         include_byok_in_limit=True, expires_at=expires)
    for view in (doc["data"], account.call("GET", f"/keys/{doc['data']['hash']}").json()["data"],
                 account.listing()[0]):
        assert (view["name"], view["limit"], view["limit_reset"], view["include_byok_in_limit"],
                view["expires_at"], view["disabled"]) == ("prod", 10, "monthly", True, expires,
                                                          False)
        assert view["limit_remaining"] == 10 and view["label"] == doc["data"]["label"]
    plain = account.create(name="plain")["data"]
    assert (plain["limit"], plain["limit_reset"], plain["include_byok_in_limit"],
            plain["expires_at"]) == (None, None, False, None)


@pytest.mark.parametrize("body, why", [
    ({"limit": 5, "limit_reset": "yearly"}, "limit_reset is daily, weekly, monthly or null"),
    ({"limit_reset": "daily"}, "strictest reading: a reset without a limit means nothing"),
    ({"expires_at": "2099-01-01T00:00:00+02:00"}, "Must be UTC, other timezones rejected"),
    ({"expires_at": "2099-01-01T00:00:00"}, "strictest reading: no zone is not UTC"),
    ({"expires_at": "2001-01-01T00:00:00Z"}, "strictest reading: an expiry in the past"),
    ({"expires_at": "tomorrow"}, "ISO 8601"),
    ({"include_byok_in_limit": "yes"}, "a boolean"),
    ({"limit": -1}, "a spending limit in USD"),
    ({"name": ""}, "name is required"),
    ({"colour": "red"}, "strictest reading: unknown members are refused"),
])
def test_create_validates_like_the_reference(account: Account, body: dict[str, Any],
                                             why: str) -> None:
    """CREATE: 400 "Bad Request - Invalid request parameters or malformed input"; the
    ``limit_reset`` values and the UTC-only ``expires_at`` are the reference's own words."""
    resp = account.call("POST", "/keys", json={"name": "k", **body})
    assert resp.status_code == 400, (why, resp.text)
    assert resp.json()["error"]["code"] == 400
    assert account.listing(include_disabled="true") == []


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reset=st.text(max_size=12).filter(lambda s: s not in ("daily", "weekly", "monthly")))
def test_any_other_limit_reset_is_refused(account: Account, reset: str) -> None:
    """CREATE: "Type of limit reset ... (daily, weekly, monthly, or null for no reset)"."""
    resp = account.call("POST", "/keys", json={"name": "k", "limit": 1, "limit_reset": reset})
    assert resp.status_code == 400


def test_current_key_answers_documented_fields_with_a_masked_label(account: Account) -> None:
    """CURRENT: ``GET /key`` answers ``data`` with ``label`` (a masked form of the key,
    ``sk-or-v1-au7...890``), ``limit``, ``usage``, ``limit_remaining``, ``limit_reset``,
    ``include_byok_in_limit``, ``expires_at``, ``is_free_tier``, ``is_management_key``; the
    same ``label`` the management listing shows for that key."""
    expires = stamp(timedelta(days=7))
    doc = account.create(limit=3, limit_reset="weekly", expires_at=expires)
    got = account.call("GET", "/key", doc["key"])
    assert got.status_code == 200
    data = got.json()["data"]
    assert data["label"] == doc["data"]["label"] and "..." in data["label"]
    assert doc["key"] not in got.text and len(data["label"]) < len(doc["key"])
    assert (data["limit"], data["limit_remaining"], data["limit_reset"],
            data["include_byok_in_limit"], data["expires_at"], data["is_management_key"],
            data["is_free_tier"]) == (3, 3, "weekly", False, expires, False, False)
    assert "hash" not in data and "name" not in data  # GET /key does not name the hash
    mine = account.call("GET", "/key").json()["data"]
    assert mine["is_management_key"] is True


def test_management_key_required_for_key_management(account: Account) -> None:
    """LIST/CREATE/DELETE: "Management key required"; GUIDE: an inference key cannot
    manage keys (and a management key is for administrative operations only)."""
    key = account.create()["key"]
    for method, path in (("GET", "/keys"), ("POST", "/keys"), ("GET", "/keys/x"),
                         ("PATCH", "/keys/x"), ("DELETE", "/keys/x")):
        assert account.call(method, path, key, json={"name": "z"}).status_code == 401, path
        assert account.call(method, path, "sk-or-v1-" + "0" * 64).status_code == 401


def test_disabled_or_expired_keys_are_refused(account: Account) -> None:
    """CURRENT: 401 "Authentication required or invalid credentials" for a key that is not
    valid: a disabled key, and (strictest reading) one past its ``expires_at``."""
    doc = account.create(expires_at=stamp(timedelta(hours=1)))
    assert account.call("GET", "/key", doc["key"]).status_code == 200
    account.sandbox.control("POST", "clock", {"offsetSeconds": 3601})
    try:
        assert account.call("GET", "/key", doc["key"]).status_code == 401
    finally:
        account.sandbox.control("POST", "clock", {"offsetSeconds": 0})
    assert account.call("GET", "/key", doc["key"]).status_code == 200
    account.call("PATCH", f"/keys/{doc['data']['hash']}", json={"disabled": True})
    assert account.call("GET", "/key", doc["key"]).status_code == 401
    assert account.call("GET", "/auth/key", doc["key"]).status_code == 401


def test_completions_take_live_inference_keys_only(account: Account) -> None:
    """GUIDE: "Management keys cannot be used to make API calls to OpenRouter's completion
    endpoints"; the "Errors and Debugging" guide (openrouter.ai/docs, API Guides): 401 for
    a disabled or invalid key, 402 when credits (here: the key's limit) are exhausted."""
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    doc = account.create(limit=1)
    ok = account.call("POST", "/chat/completions", doc["key"], json=body)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["role"] == "assistant"
    assert account.call("POST", "/chat/completions", json=body).status_code == 401
    assert account.call("POST", "/chat/completions", doc["key"], json={}).status_code == 400
    account.sandbox.control("PATCH", f"openrouter/keys/{doc['data']['hash']}", {"usage": 1})
    assert account.call("POST", "/chat/completions", doc["key"], json=body).status_code == 402
    account.call("PATCH", f"/keys/{doc['data']['hash']}", json={"disabled": True})
    assert account.call("POST", "/chat/completions", doc["key"], json=body).status_code == 401


def test_delete_answers_deleted_and_the_key_is_gone(account: Account) -> None:
    """DELETE: 200 "API key deleted successfully" ``{deleted: true}``; then 404 and 401."""
    doc = account.create()
    key_hash = doc["data"]["hash"]
    resp = account.call("DELETE", f"/keys/{key_hash}")
    assert resp.status_code == 200 and resp.json() == {"deleted": True}
    assert account.call("GET", f"/keys/{key_hash}").status_code == 404
    assert account.call("DELETE", f"/keys/{key_hash}").status_code == 404
    assert account.call("GET", "/key", doc["key"]).status_code == 401


def test_patch_takes_only_the_documented_members(account: Account) -> None:
    """UPDATE (https://openrouter.ai/docs/api/api-reference/api-keys/update-an-api-key): ``name``,
    ``disabled``, ``limit``, ``limit_reset``, ``include_byok_in_limit``; anything else is
    refused (strictest reading)."""
    key_hash = account.create()["data"]["hash"]
    ok = account.call("PATCH", f"/keys/{key_hash}",
                      json={"name": "n2", "limit": 4, "limit_reset": "daily",
                            "include_byok_in_limit": True})
    assert ok.status_code == 200 and ok.json()["data"]["limit_reset"] == "daily"
    for bad in ({"expires_at": stamp(timedelta(days=1))}, {"disabled": "yes"},
                {"limit": None}):  # the last: a reset would be left without a limit
        assert account.call("PATCH", f"/keys/{key_hash}", json=bad).status_code == 400, bad


# --- the client against the same pages -------------------------------------------------------
def test_client_lists_every_page_with_disabled_keys(account: Account) -> None:
    """LIST + GUIDE: :meth:`OpenRouterClient.list_keys` reads pages until an empty one and
    asks for disabled keys, so nothing past the first 100 or disabled is missed."""
    first = account.create(name="oldest")["data"]["hash"]
    account.call("PATCH", f"/keys/{first}", json={"disabled": True})
    for i in range(101):
        account.create(name=f"n{i}")
    with OpenRouterClient(account.url, Secret(account.management)) as client:
        keys = client.list_keys()
        assert len(keys) == 102 and keys[-1].hash == first and keys[-1].disabled is True
        assert len(client.list_keys(include_disabled=False)) == 101


def test_client_creates_with_every_documented_setting(account: Account) -> None:
    """CREATE: the client sends what it is given, and reads back the settings."""
    expires = stamp(timedelta(days=2))
    with OpenRouterClient(account.url, Secret(account.management)) as client:
        value, key_hash = client.create(KeySpec("svc", 7.5, "daily", True, expires))
        got = client.get_key(key_hash)
        assert (got.name, got.limit, got.limit_reset, got.include_byok_in_limit,
                got.expires_at) == ("svc", 7.5, "daily", True, expires)
        with OpenRouterClient(account.url, value) as user:
            info = user.key_info()
        assert (info.label, info.limit_reset, info.expires_at) == (got.label, "daily", expires)
        assert client.delete_key(key_hash) is True
        with pytest.raises(errors.NotFoundError):
            client.get_key(key_hash)


def test_a_state_saved_by_an_older_sandbox_still_serves_its_keys(
        sandbox_factory: SandboxFactory, tmp_path: Path) -> None:
    """A sandbox state from before the opaque hashes (hash = SHA-256 of the key, no
    settings) is upgraded on start: its keys still answer GET /key and are listed."""
    folder = tmp_path / "state"
    first = sandbox_factory(state_dir=folder)
    account = Account(first)
    doc = account.create(name="old")
    first.stop()
    path = folder / "state.json"
    state = json.loads(path.read_text())
    record = state["openrouter"]["keys"].pop(doc["data"]["hash"])
    old_hash = hashlib.sha256(doc["key"].encode()).hexdigest()
    for name in ("sha256", "limitReset", "includeByok", "expiresAt", "seq"):
        record.pop(name)
    state["openrouter"]["keys"][old_hash] = {**record, "hash": old_hash}
    path.write_text(json.dumps(state))
    again = sandbox_factory(state_dir=folder)
    account.url, account.sandbox = again.openrouter_url, again
    assert account.call("GET", "/key", doc["key"]).status_code == 200
    assert [k["hash"] for k in account.listing()] == [old_hash]
