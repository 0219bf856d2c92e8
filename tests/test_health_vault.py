"""Health and heartbeat with the Vault/OpenBao store: token TTL against the policy, a sealed
store is CRITICAL, and the heartbeat runs on the least-privilege AppRole the unit uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.api import Agent
from impromptu_ops.health.model import Status
from impromptu_ops.health.policy import default_policy
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store


def _store_check(settings: Any) -> Any:
    agent = Agent.from_settings(settings)
    (result,) = agent.health(checks=("store",), policy=default_policy()).results
    return result


def test_token_ttl_against_thresholds(bao_server: Any, unique_agent: str) -> None:
    root = _store_check(bao_server.settings(unique_agent))
    assert root.status is Status.OK and "no expiry" in root.summary
    short = bao_server.token_for("heartbeat", unique_agent, ttl="20m")
    result = _store_check(bao_server.settings(unique_agent, short))
    assert result.status is Status.WARNING  # 1200 s < the 3600 s warning, > 300 s critical
    (perf,) = result.perf
    assert perf.label == "store_token_ttl_seconds" and 1100 < perf.value <= 1200


def test_sealed_store_is_critical(fresh_bao_server: Any, unique_agent: str) -> None:
    settings = fresh_bao_server.settings(unique_agent)
    fresh_bao_server.seal()
    result = _store_check(settings)
    assert result.status is Status.CRITICAL
    (key,) = Agent.from_settings(settings).health(checks=("platform_key",),
                                                 policy=default_policy()).results
    assert key.status is Status.CRITICAL


def test_heartbeat_with_the_heartbeat_approle(bao_server: Any, unique_agent: str,
                                              sandbox: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    agent = sandbox.control("POST", "agents", {"name": "vault-agent"})
    open_store(bao_server.settings(unique_agent)).write(
        "impromptu-api-key", {"value": Secret(agent["apiKey"])}, cas=0)
    role_id, secret_id_file = bao_server.approle("heartbeat", unique_agent, tmp_path / "ar")
    monkeypatch.setenv("IMPROMPTU_API_URL", sandbox.base_url)
    settings = load_settings({"store.backend": "vault", "store.vault_addr": bao_server.addr,
                              "store.agent": unique_agent, "store.vault_role_id": role_id,
                              "store.vault_secret_id_file": secret_id_file})
    report = Agent.from_settings(settings).heartbeat()
    assert report.exit_code == 0, report.steps
    assert report.agent["name"] == "vault-agent"
