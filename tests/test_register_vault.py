"""Registration into OpenBao (KV v2) and a Vault sealed between preflight and the answer."""

from __future__ import annotations

import pytest

from impromptu_ops.api import Agent as OpsAgent
from impromptu_ops.errors import OpsError
from impromptu_ops.pow.solver import Plan
from impromptu_ops.registration.flow import Hooks, RegistrationRequest, register_agent
from impromptu_ops.registration.keeping import SecretsNotStored, recover
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_register import Registrar
from tests.fixtures_sandbox import SandboxFactory
from tests.fixtures_vault import BaoServer


@pytest.fixture
def registrar(sandbox_factory: SandboxFactory, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> Registrar:
    return Registrar(sandbox_factory(), monkeypatch, capsys)


def test_register_into_openbao(registrar: Registrar, bao_server: BaoServer,
                               unique_agent: str) -> None:
    registrar.setenv(VAULT_ADDR=bao_server.addr, VAULT_TOKEN=bao_server.root_token,
                     IMPROMPTU_STORE_AGENT=unique_agent)
    res = registrar.run("register", "--name", f"v-{unique_agent}", "--accept-tos")
    assert res.code == 0, res.err
    assert "secretsStoredIn: vault" in res.out
    key = registrar.stored()
    with registrar.client(key) as client:
        assert client.heartbeat().raw["name"] == f"v-{unique_agent}"


def test_vault_sealed_mid_registration_goes_to_the_emergency_file(
        registrar: Registrar, fresh_bao_server: BaoServer, unique_agent: str) -> None:
    registrar.setenv(VAULT_ADDR=fresh_bao_server.addr, VAULT_TOKEN=fresh_bao_server.root_token,
                     IMPROMPTU_STORE_AGENT=unique_agent)
    settings = registrar.settings()
    api = OpsAgent.from_settings(settings).registration_api()

    def seal(plan: Plan) -> None:  # the store was fine at preflight, gone at the answer
        fresh_bao_server.seal()

    try:
        with pytest.raises(SecretsNotStored) as info:
            register_agent(settings, RegistrationRequest(name="sealed", accept_tos=True),
                           api=api, open_store=lambda: open_store(settings),
                           hooks=Hooks(on_plan=seal))
    finally:
        api.close()
    exc: OpsError = info.value
    assert exc.exit_code == 74 and "register recover" in exc.diagnostics()
    assert registrar.journal_step() == "emergency"
    # The file is not tied to Vault: recover into a local store on this host.
    for name in ("VAULT_ADDR", "VAULT_TOKEN"):
        registrar.monkeypatch.delenv(name)
    local = load_settings()
    agent_id, kept = recover(local, lambda: open_store(local), info.value.emergency_file)
    assert kept.where.startswith("local")
    key = open_store(local).read("impromptu-api-key").data["value"]
    with registrar.client(key) as client:
        assert client.heartbeat().raw["agentId"] == agent_id
