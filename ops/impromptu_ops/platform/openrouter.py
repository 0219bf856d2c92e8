"""OpenRouter's key endpoints (contract §4), over the shared HTTP core.

:class:`OpenRouterClient` checks a key for free (``GET /key`` with the key itself) and, given
a *management* key ("provisioning key" in older docs), creates, lists (every page, disabled
keys included by default), reads, disables and deletes keys. A created key is returned
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

from impromptu_ops import contract
from impromptu_ops.errors import MalformedResponse
from impromptu_ops.platform.fields import Reader
from impromptu_ops.platform.http import Clock, HttpClientBase, HttpCore, Limits, Sleep
from impromptu_ops.secret import Secret
from impromptu_ops.settings import PlatformSettings


@dataclass(frozen=True)
class OpenRouterKeyInfo:
    """``GET /key``: what the key itself may spend. ``limit`` None means unlimited.

    ``label`` is OpenRouter's masked form of the key (``sk-or-v1-abc...xyz``), the same
    string the management listing shows for it: the only link from a key value to its
    listed ``hash`` that the API reference offers.
    """

    label: str | None
    usage: float | None
    limit: float | None
    is_free_tier: bool | None
    problems: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    limit_reset: str | None = None
    include_byok_in_limit: bool | None = None
    expires_at: str | None = None
    is_management_key: bool | None = None


@dataclass(frozen=True)
class ProvisionedKey:
    """One key as the management API lists it (never the key itself)."""

    hash: str | None
    name: str | None
    disabled: bool | None
    created_at: str | None
    limit: float | None = None
    label: str | None = None
    limit_reset: str | None = None
    include_byok_in_limit: bool | None = None
    expires_at: str | None = None


@dataclass(frozen=True)
class KeySpec:
    """What ``POST /keys`` sets on a new key (the documented create members)."""

    name: str
    limit: float | None = None
    limit_reset: str | None = None
    include_byok_in_limit: bool | None = None
    expires_at: str | None = None  # ISO 8601 in UTC ("...Z"), in the future

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        for member in ("limit", "limit_reset", "include_byok_in_limit", "expires_at"):
            value = getattr(self, member)
            if value is not None:
                out[member] = value
        return out


def _provisioned(item: Reader) -> ProvisionedKey:
    return ProvisionedKey(item.text("hash"), item.text("name", False), item.flag("disabled", False),
                          item.text("created_at", False), item.number("limit", False),
                          item.text("label", False), item.text("limit_reset", False),
                          item.flag("include_byok_in_limit", False),
                          item.text("expires_at", False))


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
        self._max_pages = max(1, (settings or PlatformSettings()).openrouter_max_key_pages)
        self._http = HttpCore(base_url, Limits.from_settings(settings or PlatformSettings()),
                              transport=transport, sleep=sleep, clock=clock, wall=wall,
                              rand=rand)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._http.request(method, path, json_body=body, auth=self._key).json()

    def key_info(self) -> OpenRouterKeyInfo:
        """``GET /key``: the key's label, usage and limit; a free validity check.

        Raises:
            AuthError: the key is not valid (401: unknown, disabled or expired).
        """
        doc = self._call("GET", "/key")
        top = Reader(doc, "key")
        data = top.obj("data")
        return OpenRouterKeyInfo(data.text("label", False), data.number("usage", False),
                                 data.number("limit", False), data.flag("is_free_tier", False),
                                 tuple(top.problems), top.raw,
                                 data.text("limit_reset", False),
                                 data.flag("include_byok_in_limit", False),
                                 data.text("expires_at", False),
                                 data.flag("is_management_key", False))

    def create_key(self, name: str, limit: float | None = None) -> tuple[Secret, str]:
        """``POST /keys`` with only a name (and a limit): see :meth:`create`."""
        return self.create(KeySpec(name, limit))

    def create(self, spec: KeySpec) -> tuple[Secret, str]:
        """``POST /keys`` with the management key.

        Returns:
            ``(key, hash)``: the new key (shown once: store it now) and its hash.

        Raises:
            MalformedResponse: the answer has no key or no hash.
        """
        doc = self._call("POST", "/keys", spec.body())
        value = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise MalformedResponse("POST /keys: OpenRouter answered without a key")
        secret = Secret(value, contract.OPENROUTER_API_KEY)
        data = Reader(doc.get("data"), "data")
        key_hash = data.text("hash")
        if not key_hash:
            raise MalformedResponse("POST /keys: OpenRouter answered without the key's hash",
                                    hint="the key may exist: check `list_keys` and delete it")
        return secret, key_hash

    def list_keys(self, *, include_disabled: bool = True) -> list[ProvisionedKey]:
        """``GET /keys``, every page: the account's keys, most recent first.

        OpenRouter answers 100 keys per call from ``offset`` and hides disabled keys unless
        ``include_disabled=true``; this reads pages until an empty one (at most
        ``openrouter_max_key_pages``), dropping a key seen twice when the list shifts
        between pages.

        Raises:
            MalformedResponse: more pages than the limit (the listing would be partial).
        """
        seen: dict[str, ProvisionedKey] = {}
        offset = 0
        for _ in range(self._max_pages):
            params = {"include_disabled": "true" if include_disabled else "false",
                      "offset": str(offset)}
            doc = self._http.request("GET", "/keys", params=params, auth=self._key).json()
            page = [_provisioned(item) for item in Reader(doc, "keys").items("data")]
            if not page:
                return list(seen.values())
            fresh = [k for k in page if k.hash and k.hash not in seen]
            if not fresh:  # a whole page already seen: the server ignores offset
                raise MalformedResponse(
                    f"GET /keys?offset={offset}: the page repeats keys already listed; the "
                    "listing cannot be completed")
            seen.update((k.hash, k) for k in fresh if k.hash)
            offset += len(page)
        raise MalformedResponse(
            f"GET /keys: still more keys after {self._max_pages} pages; the listing is "
            "partial", hint="raise platform.openrouter_max_key_pages")

    def get_key(self, key_hash: str) -> ProvisionedKey:
        """``GET /keys/{hash}`` (NotFoundError when there is no such key)."""
        doc = self._call("GET", f"/keys/{quote(key_hash, safe='')}")
        return _provisioned(Reader(doc, "key").obj("data"))

    def set_disabled(self, key_hash: str, disabled: bool) -> ProvisionedKey:
        """``PATCH /keys/{hash}`` ``{disabled}`` (PATCH is not resent once sent)."""
        doc = self._call("PATCH", f"/keys/{quote(key_hash, safe='')}", {"disabled": disabled})
        return _provisioned(Reader(doc, "key").obj("data"))

    def delete_key(self, key_hash: str) -> bool:
        """``DELETE /keys/{hash}``: True when OpenRouter answered ``{deleted: true}``."""
        doc = self._call("DELETE", f"/keys/{quote(key_hash, safe='')}")
        return isinstance(doc, dict) and doc.get("deleted") is True
