"""Hostile input: arbitrary JSON to every writing endpoint never makes the sandbox fail (5xx).

The sandbox parses untrusted bodies like the platform must; a 500 here is a sandbox bug
that would also mask a client bug (the client would see INTERNAL instead of the refusal).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer
from tests.fixtures_sandbox import FAST


class Target:
    def __init__(self, server: SandboxServer, client: httpx.Client) -> None:
        self.server = server
        self.client = client
        made = server.control("POST", "agents", {"tier": "PARTNER"})
        self.agent_id = made["agentId"]
        self.auth = {"Authorization": f"Bearer {made['apiKey']}"}
        prov = server.control("POST", "openrouter/provisioning-key")["key"]
        self.prov = {"Authorization": f"Bearer {prov}"}
        key = client.post(server.openrouter_url + "/keys", headers=self.prov,
                         json={"name": "k"}).json()
        self.or_hash = key["data"]["hash"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    server = SandboxServer(SandboxConfig.build(**FAST), tmp_path_factory.mktemp("hostile"))
    with server, httpx.Client(timeout=30) as client:
        yield Target(server, client)


FIELDS = ("name", "description", "capabilities", "acceptTos", "referrer", "pow", "payment",
          "chainId", "nonces", "txHash", "content", "initialPrompt", "title", "modelConfigId",
          "nodeId", "prompt", "type", "provider", "apiKey", "expiresInDays", "tier", "status",
          "budget", "reputation", "tokenBalance", "dailyUsed", "keyExpiresInDays", "message",
          "offsetSeconds", "amount", "token", "recipient", "version", "files", "path",
          "contentBase64", "mode", "manifest", "rawManifest", "tamper", "signingKey", "kind",
          "method", "delay", "times", "retryAfter", "code", "limit", "disabled", "usage",
          "systemPrompt", "promptId", "walletAddress")

scalars = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner,
                                        max_size=4), max_leaves=12)
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8) | values

# (method, path under the server root, credentials)
ENDPOINTS = (
    ("POST", "/api/v1/agents/register", None),
    ("POST", "/api/agents/register/challenge", None),
    ("POST", "/api/v1/agent/prompt", "agent"),
    ("POST", "/api/v1/agent/reprompt", "agent"),
    ("POST", "/api/agent/engage", "agent"),
    ("PUT", "/api/v1/agent/credentials", "agent"),
    ("POST", "/api/v1/agent/keys", "agent"),
    ("POST", "/api/v1/agent/wallet/sync", "agent"),
    ("POST", "/_sandbox/agents", None),
    ("PATCH", "/_sandbox/agents/{agent}", None),
    ("POST", "/_sandbox/agents/{agent}/notifications", None),
    ("POST", "/_sandbox/payments", None),
    ("POST", "/_sandbox/clock", None),
    ("POST", "/_sandbox/faults", None),
    ("POST", "/_sandbox/skill/publish", None),
    ("POST", "/openrouter/api/v1/keys", "prov"),
    ("PATCH", "/openrouter/api/v1/keys/{or_hash}", "prov"),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(endpoint=st.sampled_from(ENDPOINTS), body=bodies)
def test_no_body_makes_the_sandbox_fail(target: Target, endpoint: tuple[str, str, str | None],
                                        body: Any) -> None:
    method, path, who = endpoint
    url = target.server.root_url + path.format(agent=target.agent_id, or_hash=target.or_hash)
    headers = {"agent": target.auth, "prov": target.prov}.get(who or "", {})
    try:
        resp = target.client.request(method, url, json=body, headers=headers)
        assert resp.status_code < 500, (method, path, body, resp.text)
        resp.json()  # always a JSON answer
    finally:
        # undo what a lucky body may have changed for the next example
        target.server.control("DELETE", "faults")
        target.server.control("POST", "clock", {"offsetSeconds": 0})
        target.server.control("PATCH", f"agents/{target.agent_id}",
                              {"status": "ACTIVE", "tier": "PARTNER", "budget": 10_000,
                               "dailyUsed": 0, "keyExpiresInDays": 90})


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_non_json_bodies_are_validation_errors(target: Target, raw: bytes) -> None:
    url = target.server.base_url + "/v1/agent/prompt"
    resp = target.client.post(url, content=raw, headers=target.auth)
    if resp.status_code == 429:  # the tier's burst limit (100/s) on a fast run: wait it out
        time.sleep(min(float(resp.headers.get("Retry-After", "1")), 2.0))
        resp = target.client.post(url, content=raw, headers=target.auth)
    assert resp.status_code in (201, 400, 402), resp.text
