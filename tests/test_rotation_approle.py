"""Finding 5 of issue 11 on a real OpenBao: rotating an AppRole secret_id must not spend
the uses the jobs need, and in wrapped mode must hand over a wrapping token.

- A role with ``secret_id_num_uses=1``: checking the new secret_id by logging in spends its
  only use. The rotation checks it with ``secret-id/lookup`` instead, so the stored
  secret_id still logs in (once) afterwards.
- ``store.vault_secret_id_wrapped``: the jobs unwrap the file's value at login
  (:func:`impromptu_ops.store.vault_auth.login`), so the rotation must store and hand over
  a wrapping token (checked with ``sys/wrapping/lookup``, which does not consume it), not a
  raw secret_id.
- ``policies/vault/rotation.hcl`` grants exactly what the rotation needs: it runs with a
  token holding only that policy.

Pages: https://openbao.org/api-docs/auth/approle/ (role read ``secret_id_num_uses``,
``secret-id/lookup``, ``secret-id-accessor/destroy``) and
https://developer.hashicorp.com/vault/api-docs/system/wrapping-lookup .
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.secret import Secret
from impromptu_ops.store.policies import render_policy
from impromptu_ops.store.vault_auth import VaultAuth, login
from tests.fixtures_vault import POLICIES, BaoServer
from tests.rotation_env import SECRET_ID, AppRoleBench


@pytest.fixture
def approle(bao_server: BaoServer, unique_agent: str, tmp_path: Path) -> AppRoleBench:
    return AppRoleBench(bao_server, unique_agent, tmp_path)


def set_role(bench: AppRoleBench, **params: Any) -> None:
    client = bench.bao.client()
    policy = client.auth.approle.read_role(bench.role)["data"]["token_policies"]
    client.auth.approle.create_or_update_approle(bench.role, token_policies=policy, **params)


def rotation_token(bench: AppRoleBench, agent: str) -> str:
    """A token with only the rendered rotation policy (for this agent and this role)."""
    name = f"impromptu-rotation-{agent}-approle"
    client = bench.bao.client()
    client.sys.create_or_update_policy(
        name, render_policy(POLICIES, "rotation", agent, approle_role=bench.role))
    token = str(client.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"])
    Secret(token)
    return token


def job_login(bench: AppRoleBench, *, wrapped: bool) -> bool:
    """Log in as the jobs do (the real store code), from the jobs' secret_id file."""
    client = bench.bao.client(token="")
    client.token = ""
    try:
        login(client, VaultAuth(role_id=bench.role_id, secret_id_file=bench.file,
                                secret_id_wrapped=wrapped))
    except Exception:
        return False
    return True


def wrapped_lookup(bench: AppRoleBench, token: str) -> dict[str, Any] | None:
    resp = httpx.post(f"{bench.bao.addr}/v1/sys/wrapping/lookup", json={"token": token},
                      headers={"X-Vault-Token": bench.bao.root_token}, timeout=10)
    data: dict[str, Any] | None = resp.json().get("data") if resp.status_code == 200 else None
    return data


def test_single_use_secret_id_is_verified_without_spending_its_use(
        approle: AppRoleBench, unique_agent: str) -> None:
    set_role(approle, secret_id_num_uses=1)
    token = rotation_token(approle, unique_agent)
    proc = approle.cli("rotate", "vault-secret-id", "--grace", "0",
                       env={"VAULT_TOKEN": token, "BAO_TOKEN": token})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    current = approle.current()
    assert current != approle.initial and approle.file.read_text().strip() == current
    assert len(approle.accessors()) == 1  # the new one, its use still there
    assert approle.logs_in(approle.initial) is False
    assert approle.logs_in(current) is True  # the one use, spent by the job, not by us
    assert approle.accessors() == []  # a one-use secret_id is gone after its use


def test_wrapped_mode_hands_over_a_wrapping_token_that_unwraps(
        approle: AppRoleBench, unique_agent: str) -> None:
    """The jobs' file and the store hold a wrapping token, verified with
    sys/wrapping/lookup (so still unspent), that the jobs' login unwraps and logs in with.
    A second rotation retires the first rotation's secret_id (known by its accessor)."""
    approle.env.update(IMPROMPTU_STORE_VAULT_SECRET_ID_WRAPPED="true",
                       IMPROMPTU_STORE_VAULT_SECRET_ID_WRAP_TTL="600")
    token = rotation_token(approle, unique_agent)
    env = {"VAULT_TOKEN": token, "BAO_TOKEN": token}
    first = approle.cli("rotate", "vault-secret-id", "--grace", "0", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert approle.logs_in(approle.initial) is False  # the plain one before: destroyed
    wrapping = approle.current()
    assert approle.file.read_text().strip() == wrapping
    info = wrapped_lookup(approle, wrapping)
    assert info is not None, "not a live wrapping token"
    assert info["creation_path"] == f"auth/approle/role/{approle.role}/secret-id"
    assert 0 < info["creation_ttl"] <= 600
    record = approle.record()
    assert record is not None and record.new.key_id in approle.accessors()
    second = approle.cli("rotate", "vault-secret-id", "--grace", "0", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert record.new.key_id not in approle.accessors()  # the first one, destroyed
    assert wrapped_lookup(approle, approle.current()) is not None
    assert job_login(approle, wrapped=True) is True  # unwraps (its one use), logs in
    assert wrapped_lookup(approle, approle.current()) is None  # spent by the job


def test_a_wrapping_token_set_up_by_hand_is_identified_and_its_secret_id_retired(
        approle: AppRoleBench, unique_agent: str) -> None:
    """The operator stored a wrapping token (``bao write -wrap-ttl ... secret-id``): the
    rotation finds the secret_id inside it without unwrapping it (the one secret_id of the
    role created with it) and destroys that one, not the other."""
    root = approle.bao.client()
    time.sleep(1.2)  # the bench's plain secret_id was made just now: not within a second
    answer = root.adapter.post(f"/v1/auth/approle/role/{approle.role}/secret-id", json={},
                               headers={"X-Vault-Wrap-TTL": "600s"})
    wrapped, inside = answer["wrap_info"]["token"], answer["wrap_info"]["wrapped_accessor"]
    Secret(wrapped)
    approle.store.write(SECRET_ID, {"value": Secret(wrapped, SECRET_ID)}, cas=1)
    approle.file.write_text(wrapped + "\n")
    approle.env.update(IMPROMPTU_STORE_VAULT_SECRET_ID_WRAPPED="true")
    token = rotation_token(approle, unique_agent)
    before = set(approle.accessors())
    proc = approle.cli("rotate", "vault-secret-id", "--grace", "0",
                       env={"VAULT_TOKEN": token, "BAO_TOKEN": token})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = set(approle.accessors())
    assert inside in before and inside not in after
    assert len(after - before) == 1 and len(before - after) == 1  # the initial plain one stays
    assert job_login(approle, wrapped=True) is True


def test_wrapped_mode_refuses_a_spent_wrapping_token_as_the_new_key(
        approle: AppRoleBench) -> None:
    """The check cannot be fooled: a wrapping token already unwrapped is refused (AuthError),
    and a token of another path is not taken for a secret_id."""
    from impromptu_ops.errors import AuthError
    from impromptu_ops.rotation.providers.vault_secret_id import VaultSecretIdProvider

    provider = VaultSecretIdProvider(approle.bao.addr, Secret(approle.bao.root_token),
                                     approle.role, wrapped=True, wrap_ttl=60)
    new = provider.create("0123abcd.20260101t000000-cafe", 1)
    provider.verify(new.value)  # live, from this role's secret-id path
    provider.verify(new.value)  # and the check did not consume it
    client = approle.bao.client(token=new.value.reveal())
    assert client.sys.unwrap()["data"]["secret_id_accessor"] == new.key_id
    with pytest.raises(AuthError, match="spent or expired"):
        provider.verify(new.value)
    other = httpx.post(f"{approle.bao.addr}/v1/sys/wrapping/wrap", json={"secret_id": "x"},
                       headers={"X-Vault-Token": approle.bao.root_token,
                                "X-Vault-Wrap-TTL": "60s"}, timeout=10)
    with pytest.raises(AuthError, match="not a secret_id"):
        provider.verify(Secret(other.json()["wrap_info"]["token"]))
    provider.delete(new.key_id)


def test_rotation_policy_grants_the_approle_paths_and_no_other_role(
        approle: AppRoleBench, unique_agent: str) -> None:
    text = render_policy(POLICIES, "rotation", unique_agent, approle_role=approle.role)
    assert f'"auth/approle/role/{approle.role}/secret-id/lookup"' in text
    assert 'path "sys/wrapping/lookup"' in text
    token = rotation_token(approle, unique_agent)
    other = approle.bao.client(token=token)
    resp = other.adapter.get(f"/v1/auth/approle/role/{approle.role}")
    assert resp["data"]["secret_id_num_uses"] == 0
    client = approle.bao.client()
    client.auth.approle.create_or_update_approle(f"{approle.role}-other",
                                                 token_policies=["default"])
    import hvac.exceptions

    with pytest.raises(hvac.exceptions.Forbidden):
        other.adapter.post(f"/v1/auth/approle/role/{approle.role}-other/secret-id", json={})
    assert SECRET_ID == "vault-secret-id"
