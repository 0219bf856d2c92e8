"""OpenRouter's key endpoints (contract §4), over the shared HTTP core.

:class:`OpenRouterClient` checks a key for free (``GET /key`` with the key itself) and, given
a *provisioning* key, creates, lists, disables and deletes keys. A created key is returned
as a :class:`~impromptu_ops.secret.Secret` with its hash; it is shown once, so the caller
stores it before anything else. Key creation is a POST without an idempotency key on
OpenRouter's side, so it is never resent once it may have reached the server.

This module does not decide when to rotate or which key to keep (see the rotation code).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from impromptu_ops.errors import MalformedResponse
from impromptu_ops.platform.fields import Reader
from impromptu_ops.platform.http import Clock, HttpClientBase, HttpCore, Limits, Sleep
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings


@dataclass(frozen=True)
class OpenRouterKeyInfo:
    """``GET /key``: what the key itself may spend. ``limit`` None means unlimited."""

    label: str | None
    usage: float | None
    limit: float | None
    is_free_tier: bool | None
    problems: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ProvisionedKey:
    """One key as the provisioning API lists it (never the key itself)."""

    hash: str | None
    name: str | None
    disabled: bool | None
    created_at: str | None
    limit: float | None = None


def _provisioned(item: Reader) -> ProvisionedKey:
    return ProvisionedKey(item.text("hash"), item.text("name", False), item.flag("disabled", False),
                          item.text("created_at", False), item.number("limit", False))


class OpenRouterClient(HttpClientBase):
    """OpenRouter's key API. Use as a context manager.

    Args:
        base_url: e.g. ``https://openrouter.ai/api/v1`` (``settings.platform.openrouter_url``).
        key: the API key for :meth:`key_info`, or the provisioning key for the rest.
        settings: timeouts, caps and retry limits (default: the platform defaults).
        transport, sleep, clock, wall, rand: injected for tests.
    """

    def __init__(
        self,
        base_url: str,
        key: Secret,
        *,
        settings: PlatformSettings | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._key = key
        self._http = HttpCore(base_url, Limits.from_settings(settings or PlatformSettings()),
                              transport=transport, sleep=sleep, clock=clock, wall=wall,
                              rand=rand)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._http.request(method, path, json_body=body, auth=self._key).json()

    def key_info(self) -> OpenRouterKeyInfo:
        """``GET /key``: the key's label, usage and limit; a free validity check.

        Raises:
            AuthError: the key is not valid (401).
        """
        doc = self._call("GET", "/key")
        top = Reader(doc, "key")
        data = top.obj("data")
        return OpenRouterKeyInfo(data.text("label", False), data.number("usage", False),
                                 data.number("limit", False), data.flag("is_free_tier", False),
                                 tuple(top.problems), top.raw)

    def create_key(self, name: str, limit: float | None = None) -> tuple[Secret, str]:
        """``POST /keys`` with the provisioning key.

        Returns:
            ``(key, hash)``: the new key (shown once: store it now) and its hash.

        Raises:
            MalformedResponse: the answer has no key or no hash.
        """
        body: dict[str, Any] = {"name": name}
        if limit is not None:
            body["limit"] = limit
        doc = self._call("POST", "/keys", body)
        value = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise MalformedResponse("POST /keys: OpenRouter answered without a key")
        secret = Secret(value, "openrouter-api-key")
        data = Reader(doc.get("data"), "data")
        key_hash = data.text("hash")
        if not key_hash:
            raise MalformedResponse("POST /keys: OpenRouter answered without the key's hash",
                                    hint="the key may exist: check `list_keys` and delete it")
        return secret, key_hash

    def list_keys(self) -> list[ProvisionedKey]:
        """``GET /keys``: every key of the account (hashes, names, flags)."""
        top = Reader(self._call("GET", "/keys"), "keys")
        return [_provisioned(item) for item in top.items("data")]

    def set_disabled(self, key_hash: str, disabled: bool) -> ProvisionedKey:
        """``PATCH /keys/{hash}`` ``{disabled}`` (PATCH is not resent once sent)."""
        doc = self._call("PATCH", f"/keys/{quote(key_hash, safe='')}", {"disabled": disabled})
        return _provisioned(Reader(doc, "key").obj("data"))

    def delete_key(self, key_hash: str) -> None:
        """``DELETE /keys/{hash}``."""
        self._call("DELETE", f"/keys/{quote(key_hash, safe='')}")
