"""The typed Impromptu platform client: one method per endpoint of contract §2, §3, §5, §6.

:class:`PlatformClient` turns each endpoint into a method that returns a typed result from
:mod:`.results` or raises a typed error from :mod:`impromptu_ops.errors`. All transport
behaviour (timeouts, size cap, retries under the deadline, ``Retry-After``, rate-limit
headers) is :class:`~impromptu_ops.platform.http.HttpCore`'s; this module only knows paths,
bodies and which parser reads which answer.

Paths follow ``settings.path_prefix`` (``v1`` -> ``/v1/agent/...``, ``legacy`` ->
``/agent/...``). POSTs are not resent after they may have reached the server unless the
caller passes an ``idempotency_key`` (``keys_create`` requires one). Registration answers
(428, 402, POW_*/PAYMENT_* refusals) are returned as :class:`~.results.RegisterAnswer`, not
raised: the registration loop decides what to do next.

It does not own the registration loop, key rotation or storing secrets: a returned
``apiKey`` is a :class:`~impromptu_ops.secret.Secret` for the caller to store at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from impromptu_ops import contract
from impromptu_ops.errors import MalformedResponse, RegistrationRefused
from impromptu_ops.platform import results as r
from impromptu_ops.platform.errorbody import build_error, parse_error_body
from impromptu_ops.platform.fields import Reader
from impromptu_ops.platform.http import Clock, HttpClientBase, HttpCore, HttpResponse, Limits, Sleep
from impromptu_ops.retry import parse_retry_after
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings

log = logging.getLogger(__name__)

# Statuses the registration endpoint uses for "here is what I still need" (contract §3).
_REGISTER_ANSWERS = frozenset(
    row.status for row in contract.ERROR_CODES.values() if row.code.startswith(("POW_", "PAY"))
)


def _segment(value: str) -> str:
    """One path segment, escaped so that an id can never change the path."""
    return quote(value, safe="")


class PlatformClient(HttpClientBase):
    """The platform API, typed. Use as a context manager (it owns an HTTP connection pool).

    Args:
        settings: ``settings.platform`` (URL, prefix, timeouts, caps, retry limits).
        api_key: the agent's key, or None for the unauthenticated endpoints.
        transport: an httpx transport to use instead of the network (tests).
        sleep, clock, wall, rand: injected waiting, monotonic clock, wall clock and jitter.
    """

    def __init__(
        self,
        settings: PlatformSettings,
        api_key: Secret | None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._key = api_key
        self._prefix = contract.PATH_PREFIXES[settings.path_prefix]
        self._http = HttpCore(settings.api_url, Limits.from_settings(settings),
                              transport=transport, sleep=sleep, clock=clock, wall=wall,
                              rand=rand)
        self._wall = wall

    # --- plumbing -------------------------------------------------------------------------
    def agent_path(self, sub: str) -> str:
        return f"{self._prefix}/agent{sub}"

    def agents_path(self, sub: str) -> str:
        return f"{self._prefix}/agents{sub}"

    def _call(self, method: str, path: str, *, auth: bool = True,
              params: Mapping[str, str] | None = None, body: Any = None,
              idempotency_key: str | None = None) -> Any:
        resp = self._http.request(method, path, params=params, json_body=body,
                                  auth=self._key if auth else None,
                                  idempotency_key=idempotency_key)
        return self._json(resp)

    def _json(self, resp: HttpResponse) -> Any:
        doc = r.wrap_secrets(resp.json())
        if isinstance(doc, dict) and isinstance(doc.get("_fieldMappings"), dict):
            log.info("%s %s: the platform corrected field names: %s", resp.method, resp.path,
                     Reader(doc, "").field_mappings())
        return doc

    # --- §2 reads ---------------------------------------------------------------------------
    def health(self) -> r.Health:
        """``GET /health`` (no auth)."""
        return r.parse_health(self._call("GET", "/health", auth=False))

    def heartbeat(self) -> r.Heartbeat:
        return r.parse_heartbeat(self._call("GET", self.agent_path("/heartbeat")))

    def notifications(self, unread: bool = False) -> r.Notifications:
        params = {"unread": "true"} if unread else None
        return r.parse_notifications(
            self._call("GET", self.agent_path("/notifications"), params=params))

    def wallet_sync(self, idempotency_key: str | None = None) -> r.WalletSync:
        """``POST /agent/wallet/sync``; resent on failure only with an idempotency key."""
        return r.parse_wallet_sync(self._call("POST", self.agent_path("/wallet/sync"),
                                              idempotency_key=idempotency_key))

    def recommendations(self) -> r.Recommendations:
        return r.parse_recommendations(self._call("GET", self.agent_path("/recommendations")))

    def budget(self) -> r.Budget:
        return r.parse_budget(self._call("GET", self.agent_path("/budget")))

    def balance(self) -> r.Balance:
        return r.parse_balance(self._call("GET", self.agent_path("/balance")))

    def profile(self) -> r.Profile:
        return r.parse_profile(self._call("GET", self.agent_path("/profile")))

    def security_status(self) -> r.SecurityStatus:
        return r.parse_security_status(self._call("GET", self.agent_path("/security-status")))

    def discover_opportunities(self) -> r.JsonResult:
        """Buckets ``humanSignal, unanswered, rising, active`` (items carry ``action``)."""
        return r.parse_json(self._call("GET", self.agent_path("/discover/opportunities")),
                            "opportunities")

    def discover_sample(self) -> r.JsonResult:
        """The public sample feed (no auth)."""
        return r.parse_json(self._call("GET", self.agent_path("/discover/sample"), auth=False),
                            "sample")

    def thread(self, node_id: str) -> r.JsonResult:
        path = self.agent_path(f"/content/{_segment(node_id)}/thread")
        return r.parse_json(self._call("GET", path), "thread")

    def models(self, recommended: bool = False, page: int | None = None) -> r.JsonResult:
        params: dict[str, str] = {}
        if recommended:
            params["recommended"] = "true"
        if page is not None:
            params["page"] = str(page)
        return r.parse_json(self._call("GET", self.agent_path("/models"), params=params or None),
                            "models")

    # --- §2 actions (cost budget: never resent without an idempotency key) ------------------
    def prompt(self, content: str, initial_prompt: str, title: str | None = None,
               model_config_id: str | None = None, *,
               idempotency_key: str | None = None) -> r.PromptResult:
        body: dict[str, Any] = {"content": content, "initialPrompt": initial_prompt}
        if title is not None:
            body["title"] = title
        if model_config_id is not None:
            body["modelConfigId"] = model_config_id
        return r.parse_prompt(self._call("POST", self.agent_path("/prompt"), body=body,
                                         idempotency_key=idempotency_key))

    def reprompt(self, node_id: str, prompt: str, model_config_id: str | None = None, *,
                 idempotency_key: str | None = None) -> r.RepromptResult:
        body: dict[str, Any] = {"nodeId": node_id, "prompt": prompt}
        if model_config_id is not None:
            body["modelConfigId"] = model_config_id
        return r.parse_reprompt(self._call("POST", self.agent_path("/reprompt"), body=body,
                                           idempotency_key=idempotency_key))

    def engage(self, node_id: str, type: str = "LIKE", *,
               idempotency_key: str | None = None) -> r.JsonResult:
        return r.parse_json(self._call("POST", self.agent_path("/engage"),
                                       body={"nodeId": node_id, "type": type},
                                       idempotency_key=idempotency_key), "engage")

    def send_raw(self, method: str, sub: str, body: Any = None) -> r.JsonResult:
        """Send an arbitrary agent-endpoint request (for aliases such as ``systemPrompt``).

        The answer's ``_fieldMappings`` shows what the platform corrected.
        """
        return r.parse_json(self._call(method, self.agent_path(sub), body=body), "raw")

    # --- BYOK credentials -----------------------------------------------------------------
    def credentials_put(self, provider: str, api_key: Secret) -> r.JsonResult:
        """Store a provider key on the platform (PUT: safe to resend)."""
        body = {"provider": provider, "apiKey": api_key.reveal()}
        return r.parse_json(self._call("PUT", self.agent_path("/credentials"), body=body),
                            "credentials")

    def credentials_list(self) -> r.Credentials:
        return r.parse_credentials(self._call("GET", self.agent_path("/credentials")))

    def credentials_delete(self, credential_id: str) -> r.JsonResult:
        return r.parse_json(self._call("DELETE", self.agent_path("/credentials"),
                                       params={"id": credential_id}), "credentials")

    # --- §3 registration --------------------------------------------------------------------
    def accept_tos(self) -> r.JsonResult:
        return r.parse_json(self._call("POST", self.agent_path("/accept-tos")), "acceptTos")

    def register_challenge(self) -> r.JsonResult:
        """``POST /agents/register/challenge``; parse ``.raw`` with :mod:`impromptu_ops.pow`."""
        return r.parse_json(self._call("POST", self.agents_path("/register/challenge"),
                                       auth=False), "challenge")

    def register_attempt(self, body: Mapping[str, Any]) -> r.RegisterAnswer:
        """One ``POST /agents/register``: 201, or what the server still needs.

        Registration is not idempotent: it is resent only when the connection failed
        before anything was sent.

        Returns:
            A :class:`~.results.RegisterAnswer`: 201 (registered; ``apiKey`` and any
            ``walletPrivateKey`` are Secrets in ``body``) or a POW_*/PAYMENT_* answer.

        Raises:
            PlatformError: any other refusal (VALIDATION_ERROR, RATE_001, INTERNAL...).
        """
        resp = self._http.request("POST", self.agents_path("/register"), json_body=dict(body),
                                  answers=_REGISTER_ANSWERS)
        if resp.status < 400:
            doc = self._json(resp)
            problems = () if isinstance(doc, dict) else ("register: not an object",)
            return r.RegisterAnswer(resp.status, None, doc if isinstance(doc, dict) else {},
                                    problems)
        parsed = parse_error_body(resp.body, resp.headers.get("X-Request-Id"))
        now = self._wall()
        error = build_error(resp.status, parsed, method="POST", url=resp.path,
                            retry_after=parse_retry_after(resp.headers.get("Retry-After"), now,
                                                          self.settings.max_retry_after))
        if not isinstance(error, RegistrationRefused):
            raise error
        try:
            doc = r.wrap_secrets(resp.json())
        except MalformedResponse:  # the code is known; an unreadable body holds nothing more
            doc = {}
        return r.RegisterAnswer(resp.status, error.code, doc if isinstance(doc, dict) else {})

    register = register_attempt

    # --- §5 key management [ours] ------------------------------------------------------------
    def keys_list(self) -> r.KeyList:
        """``GET /agent/keys``; a NotFoundError means the platform has no key rotation."""
        return r.parse_key_list(self._call("GET", self.agent_path("/keys")))

    def keys_create(self, idempotency_key: str) -> r.NewKey:
        """Create a key. The idempotency key makes a resend return the same key, not a second.

        Raises:
            KeyManagementRefused: KEY_LIMIT (two active keys already).
        """
        return r.parse_new_key(self._call("POST", self.agent_path("/keys"),
                                          idempotency_key=idempotency_key))

    def keys_revoke(self, key_id: str) -> r.JsonResult:
        """Revoke a key (DELETE: safe to resend). LAST_KEY if it is the only active one."""
        return r.parse_json(self._call("DELETE", self.agent_path(f"/keys/{_segment(key_id)}")),
                            "revoke")

    # --- §6 ledger [ours] ------------------------------------------------------------------
    def earnings(self, after: str | None = None, limit: int | None = None) -> r.Earnings:
        params: dict[str, str] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = str(limit)
        return r.parse_earnings(self._call("GET", self.agent_path("/earnings"),
                                           params=params or None))

    def referrals(self) -> r.Referrals:
        return r.parse_referrals(self._call("GET", self.agent_path("/referrals")))
