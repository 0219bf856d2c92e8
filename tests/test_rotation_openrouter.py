"""OpenRouter rotation against the sandbox that follows OpenRouter's API reference.

Findings 1-3 of issue 11, each failing on the code that assumed ``hash == sha256(key)``,
sent only a generated name, and listed one page without disabled keys:

1. the old key is identified for certain (store metadata, ``--old-key-hash``, or
   ``GET /key``'s label matched to exactly one listed key) or nothing is minted; what is
   reported as disabled/deleted was confirmed by OpenRouter;
2. the new key inherits the old key's name (suffixed), limit, limit_reset,
   include_byok_in_limit and lifetime;
3. every listing reads all pages with disabled keys, so the orphan sweep sees a disabled
   leftover past the first 100 keys; ``openrouter-management-key`` is read first.

Pages: https://openrouter.ai/docs/api/api-reference/api-keys/list ,
https://openrouter.ai/docs/api/api-reference/api-keys/create-keys ,
https://openrouter.ai/docs/api/api-reference/api-keys/get-current-key .
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.errors import ConfigError, MalformedResponse
from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.platform.openrouter import OpenRouterClient, ProvisionedKey
from impromptu_ops.rotation.provider import ROTATION_TAG, label_rotation, rotation_label
from impromptu_ops.rotation.providers.openrouter import (
    OpenRouterProvider,
    inherited_name,
    renewed_expiry,
    rotation_suffix,
)
from impromptu_ops.rotation.record import RecordStore
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings
from tests.rotation_env import OPENROUTER, PROVISIONING, Bench, make_bench

MANAGEMENT = "openrouter-management-key"


@pytest.fixture
def bench(sandbox: SandboxServer, tmp_path: Path) -> Bench:
    return make_bench(sandbox, tmp_path / "home")


def call(bench: Bench, method: str, path: str, **kw: Any) -> dict[str, Any]:
    resp = httpx.request(method, bench.sandbox.openrouter_url + path, timeout=10,
                         headers={"Authorization": f"Bearer {bench.provisioning}"}, **kw)
    resp.raise_for_status()
    got: dict[str, Any] = resp.json()
    return got


def listed(bench: Bench) -> dict[str, dict[str, Any]]:
    return {k["hash"]: k for k in bench.openrouter_keys()}


def audit(bench: Bench) -> list[dict[str, Any]]:
    path = Path(bench.env["XDG_STATE_HOME"]) / "impromptu-ops/audit/rotation.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- finding 1: which key is the old one ------------------------------------------------------
def test_a_key_made_elsewhere_is_identified_and_really_retired(bench: Bench) -> None:
    """The stored key was made by hand (no hash in the store). Its hash is found through
    GET /key's label, recorded as the old key, and that key is gone afterwards."""
    original = bench.current(OPENROUTER)
    old_hash = bench.openrouter_hash(original)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    assert f"the old key {old_hash} is deleted (confirmed by the provider)" in proc.stdout
    assert old_hash not in listed(bench) and bench.openrouter_works(original) is False
    start = [e for e in audit(bench) if e["event"] == "rotation.start"]
    assert [e["old_key_id"] for e in start] == [old_hash]
    assert all(e.get("old_key_id") for e in audit(bench))


def test_an_ambiguous_key_stops_before_minting_then_old_key_hash_proceeds(bench: Bench
                                                                         ) -> None:
    """Two listed keys carry the stored key's masked label and settings: the rotation
    cannot know which one is current, so it mints nothing, says how to proceed (exit 1),
    and with ``--old-key-hash`` it rotates and retires exactly that key."""
    original = bench.current(OPENROUTER)
    old_hash = bench.openrouter_hash(original)
    twin = call(bench, "POST", "/keys", json={"name": "twin"})["data"]["hash"]
    label = listed(bench)[old_hash]["label"]
    bench.sandbox.control("PATCH", f"openrouter/keys/{twin}", {"label": label})
    before = listed(bench)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "--old-key-hash" in proc.stderr
    assert "2 listed keys" in proc.stderr and "nothing was changed" in proc.stderr
    assert listed(bench) == before and bench.current(OPENROUTER) == original
    assert bench.record("openrouter") is None
    # a hash that is not the stored key's (another label): refused, nothing changes
    other = call(bench, "POST", "/keys", json={"name": "other"})["data"]["hash"]
    wrong = bench.cli("rotate", "openrouter", "--grace", "0", "--old-key-hash", other)
    assert wrong.returncode == 1 and "is not the stored key" in wrong.stderr, wrong.stderr
    assert set(listed(bench)) == set(before) | {other}
    ok = bench.cli("rotate", "openrouter", "--grace", "0", "--old-key-hash", old_hash)
    assert ok.returncode == 0, ok.stderr
    now = listed(bench)
    assert old_hash not in now and {twin, other} <= set(now)
    assert bench.openrouter_works(bench.current(OPENROUTER)) is True


def test_a_refused_stored_key_is_not_guessed(bench: Bench) -> None:
    """The stored key was disabled behind our back: GET /key answers 401, so its hash
    cannot be found from the value. Nothing is minted; exit 2 (the agent has no working
    key) with how to proceed."""
    original = bench.current(OPENROUTER)
    old_hash = bench.openrouter_hash(original)
    call(bench, "PATCH", f"/keys/{old_hash}", json={"disabled": True})
    before = listed(bench)
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 2, proc.stderr
    assert "--old-key-hash" in proc.stderr and "page someone" in proc.stderr
    assert listed(bench) == before
    # how to proceed, as the message says: name the key; it is replaced and retired
    named = bench.cli("rotate", "openrouter", "--grace", "0", "--old-key-hash", old_hash)
    assert named.returncode == 0, named.stderr
    assert old_hash not in listed(bench)
    assert bench.openrouter_works(bench.current(OPENROUTER)) is True


def test_unconfirmed_disable_or_delete_is_never_taken_as_done() -> None:
    """A PATCH answered without ``disabled: true`` whose read-back still shows the key
    enabled, or a DELETE answered without ``{deleted: true}`` while the key still reads
    back, raise: the engine then records and prints no disable or delete."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        key = {"hash": "h1", "name": "n", "label": "sk-or-v1-abc...xyz", "disabled": False}
        if request.method == "DELETE":
            return httpx.Response(200, json={})
        return httpx.Response(200, json={"data": key})  # PATCH and GET: still enabled

    def factory(key: Secret) -> OpenRouterClient:
        return OpenRouterClient("http://or.test/api/v1", key,
                                transport=httpx.MockTransport(handler))

    class Store:
        def read(self, name: str) -> Any:
            class Version:
                def value(self, _k: str = "value") -> Secret:
                    return Secret("sk-or-v1-" + "m" * 64)
            return Version()

    def no_platform(key: Secret) -> PlatformClient:
        raise AssertionError("disable/delete must not call the platform")

    provider = OpenRouterProvider(PlatformSettings(), Store(),  # type: ignore[arg-type]
                                  openrouter=factory, platform=no_platform)
    with pytest.raises(MalformedResponse, match="did not confirm"):
        provider.disable("h1")
    with pytest.raises(MalformedResponse, match="did not confirm deleting"):
        provider.delete("h1")
    provider.close()
    assert seen == ["PATCH /api/v1/keys/h1", "GET /api/v1/keys/h1",
                    "DELETE /api/v1/keys/h1", "GET /api/v1/keys/h1"]


# -- finding 2: what the new key inherits -----------------------------------------------------
def test_the_new_key_inherits_name_limits_and_lifetime(bench: Bench) -> None:
    """The old key: "prod agent", limit 10 reset monthly, BYOK counted, expiring in 30
    days. The new key keeps all of it (the name suffixed with the rotation label, an
    earlier suffix replaced), and expires 30 days after it was made."""
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    made = call(bench, "POST", "/keys", json={
        "name": "prod agent", "limit": 10, "limit_reset": "monthly",
        "include_byok_in_limit": True, "expires_at": expires})
    by_hand = bench.openrouter_hash(bench.current(OPENROUTER))  # another key: kept
    bench.put(OPENROUTER, made["key"])
    for _round in range(2):
        proc = bench.cli("rotate", "openrouter", "--grace", "0")
        assert proc.returncode == 0, proc.stderr
        new = listed(bench)[bench.openrouter_hash(bench.current(OPENROUTER))]
        rid = RecordStore(bench.store).load("openrouter")[0]
        assert rid is not None
        assert new["name"].startswith("prod agent " + rotation_label(rid.rotation_id, 1))
        assert new["name"].count(ROTATION_TAG) == 1
        assert (new["limit"], new["limit_reset"], new["include_byok_in_limit"]) == (
            10, "monthly", True)
        lifetime = (datetime.fromisoformat(new["expires_at"].replace("Z", "+00:00"))
                    - datetime.fromisoformat(new["created_at"].replace("Z", "+00:00")))
        assert abs(lifetime - timedelta(days=30)) < timedelta(minutes=5), lifetime
    assert set(listed(bench)) == {by_hand, new["hash"]}


def test_an_inherited_name_is_still_found_by_the_read_back(bench: Bench) -> None:
    """Killed right after the create: the key named "<old name> <rotation label>" never
    reached the store; resume finds it by that suffix and removes it."""
    by_hand = bench.openrouter_hash(bench.current(OPENROUTER))  # another key: kept
    bench.put(OPENROUTER, call(bench, "POST", "/keys", json={"name": "my agent"})["key"])
    assert bench.cli("rotate", "openrouter", "--grace", "0", crash_at="created"
                     ).returncode == -9
    assert len(listed(bench)) == 3
    assert bench.cli("rotate", "resume").returncode == 0
    current = bench.openrouter_hash(bench.current(OPENROUTER))
    assert set(listed(bench)) == {by_hand, current}
    assert listed(bench)[current]["name"].startswith("my agent " + ROTATION_TAG)


def test_inherited_names_never_stack_and_stay_short() -> None:
    label = rotation_label("0123abcd.20260101t000000-deadbeef", 2)
    once = inherited_name("svc", label)
    assert once == f"svc {label}" and rotation_suffix(once) == label
    again = inherited_name(once, rotation_label("0123abcd.20260202t000000-cafe", 1))
    assert again.count(ROTATION_TAG) == 1 and again.startswith("svc ")
    assert len(inherited_name("x" * 500, label)) <= 200
    assert rotation_suffix(f"x{label}") is None and rotation_suffix(label) == label
    assert inherited_name(None, label) == f"openrouter-api-key {label}"


@settings(max_examples=200, deadline=None)
@given(old=st.one_of(st.none(), st.text(max_size=300)),
       rid=st.from_regex(r"[0-9a-f]{8}\.20[0-9]{6}t[0-9]{6}-[0-9a-f]{8}", fullmatch=True),
       attempt=st.integers(1, 99), again=st.booleans())
def test_inherited_names_for_any_old_name(old: str | None, rid: str, attempt: int,
                                          again: bool) -> None:
    """Whatever the old key was called (empty, huge, with a rotation tag of its own), the
    new name fits OpenRouter's (our) name limit and ends with this rotation's label, which
    the read-back parses back to this rotation; labels of earlier rotations at its end
    are replaced, not stacked."""
    label = rotation_label(rid, attempt)
    name = inherited_name(old, label)
    if again:
        name = inherited_name(name, label)
    assert 0 < len(name) <= 200 and name.strip() == name
    assert rotation_suffix(name) == label and label_rotation(label) == rid
    assert name.endswith(" " + label) or name == label
    assert rotation_suffix(name[:-len(label)].rstrip()) is None  # nothing stacked


def test_a_new_expiry_keeps_the_lifetime_from_now() -> None:
    old = ProvisionedKey("h", "n", False, "2026-01-01T00:00:00Z",
                         expires_at="2026-01-31T00:00:00Z")
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert renewed_expiry(old, now) == "2026-07-01T12:00:00Z"
    assert renewed_expiry(ProvisionedKey("h", "n", False, "2026-01-01T00:00:00Z"), now) is None
    for broken in (ProvisionedKey("h", "n", False, None, expires_at="2026-01-31T00:00:00Z"),
                   ProvisionedKey("h", "n", False, "2026-02-01T00:00:00Z",
                                  expires_at="2026-01-31T00:00:00Z")):
        with pytest.raises(ConfigError):
            renewed_expiry(broken, now)


# -- finding 3: listings see everything ------------------------------------------------------
def test_sweep_sees_a_disabled_leftover_past_the_first_page(bench: Bench) -> None:
    """A key left by an earlier rotation of ours, disabled, older than 100 other keys: it
    is on page 2 and hidden without include_disabled. The sweep still removes it and
    keeps every other key."""
    ours = RecordStore(bench.store).installation()
    leftover = bench.mint_openrouter(rotation_label(f"{ours}.20260101t000000-deadbeef", 1))
    leftover_hash = bench.openrouter_hash(leftover)
    call(bench, "PATCH", f"/keys/{leftover_hash}", json={"disabled": True})
    for i in range(100):
        bench.mint_openrouter(f"someone-else-{i}")
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    now = listed(bench)
    assert leftover_hash not in now and len(now) == 101
    removed = [e["key_id"] for e in audit(bench) if e["event"] == "rotation.orphan-removed"]
    assert removed == [leftover_hash]


def test_the_management_key_name_is_read_first(bench: Bench) -> None:
    """``openrouter-management-key`` (OpenRouter's current name) is used; the older
    ``openrouter-provisioning-key`` only when the new name is absent."""
    bench.put(MANAGEMENT, bench.provisioning)
    bench.put(PROVISIONING, "sk-or-v1-" + "0" * 64)  # a dead value under the old name
    proc = bench.cli("rotate", "openrouter", "--grace", "0")
    assert proc.returncode == 0, proc.stderr
    bench.store.delete(MANAGEMENT)
    bench.put(PROVISIONING, bench.provisioning)
    again = bench.cli("rotate", "openrouter", "--grace", "0")
    assert again.returncode == 0, again.stderr
    assert len(listed(bench)) == 1
