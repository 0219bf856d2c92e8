"""The sandbox's §6 endpoints as the platform client sees them: pages, cursors, referrals."""

from __future__ import annotations

import httpx
import pytest

from impromptu_ops.platform.client import PlatformClient
from impromptu_ops.reconcile.model import parse_entry
from impromptu_ops.reconcile.service import PlatformLedger
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings


def test_pages_cursor_and_referral_credit(ledger_sandbox: SandboxServer) -> None:
    referrer = ledger_sandbox.control("POST", "agents", {})
    settings = load_settings({"platform.api_url": ledger_sandbox.base_url}, env={})
    ledger_sandbox.control("POST", "ledger/token", {})
    # a referee registered through the real endpoint, naming the referrer
    from tests.fixtures_sandbox import register
    referee = register(ledger_sandbox, referrer=referrer["agentId"])
    for i in range(5):
        ledger_sandbox.control("POST", "ledger/earn", {"agentId": referee["agentId"],
                                                       "amount": str(10**18 * (i + 1) + 19)})
    with PlatformClient(settings.platform, Secret(referrer["apiKey"])) as client:
        ledger = PlatformLedger(client, page_size=2)
        raw = ledger.entries()
        refs = ledger.referrals()
    entries = [parse_entry(e) for e in raw]
    assert [e.type for e in entries] == ["REFERRAL"] * 5
    assert [e.amount for e in entries] == [(10**18 * (i + 1) + 19) * 500 // 10_000
                                           for i in range(5)]
    assert len({e.id for e in entries}) == 5
    assert refs == [{"agentId": referee["agentId"], "registeredAt": refs[0]["registeredAt"]}]
    url = f"{ledger_sandbox.base_url}/v1/agent/earnings"
    headers = {"Authorization": f"Bearer {referrer['apiKey']}"}
    bad = httpx.get(url, params={"after": "led_nope"}, headers=headers, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    assert httpx.get(url, timeout=10).status_code == 401


def test_payout_control_needs_a_known_agent(ledger_sandbox: SandboxServer) -> None:
    with pytest.raises(Exception, match="404"):
        ledger_sandbox.control("POST", "ledger/payout", {"agentId": "agt_x", "amount": "1"})


def test_the_agent_is_named_from_its_profile(ledger_sandbox: SandboxServer) -> None:
    made = ledger_sandbox.control("POST", "agents", {})
    settings = load_settings({"platform.api_url": ledger_sandbox.base_url}, env={})
    with PlatformClient(settings.platform, Secret(made["apiKey"])) as client:
        agent_id, name = PlatformLedger(client).agent()
        profile = client.profile()
    assert agent_id == made["agentId"] and name == profile.name and name


def test_no_profile_leaves_the_header_unnamed_not_the_report_failed() -> None:
    from typing import Any

    from impromptu_ops.errors import OpsError

    class NoProfile:
        def earnings(self, after: str | None = None, limit: int | None = None) -> Any:
            raise AssertionError("not called")

        def referrals(self) -> Any:
            raise AssertionError("not called")

        def profile(self) -> Any:
            raise OpsError("GET /v1/agent/profile: 404")

    assert PlatformLedger(NoProfile()).agent() == ("", "")
