"""Private: The Vault/OpenBao backend: KV v2 through hvac, behind our typed protocol.

Secrets live at ``<mount>/data/<prefix>/<agent>/<name>`` (default
``secret/data/impromptu/default/impromptu-api-key``). hvac is imported lazily, only here.

What this module adds on top of hvac, and why:

- **every write is check-and-set** (``cas=None`` means "create only", ``cas=0``);
- **ambiguous writes are read back, not retried blindly**: each write carries a random
  ``_impromptu_write_id`` data key (stripped on read). When a write times out or the
  connection drops after the request left, we read the metadata back: our id at version
  ``cas + 1`` means it landed (success, no duplicate version); an unchanged version means
  it did not (one retry, still under CAS); anything else is a :class:`CasConflict`;
- **pruning refusal**: before writing, the effective ``max_versions`` (the secret's, else
  the mount's, else Vault's default of 10) is checked with
  :func:`~impromptu_ops.store.base.pruning_refusal`;
- **metadata updates that touch one field only**: hvac's ``update_metadata`` always sends
  ``delete_version_after="0s"``, silently resetting a configured value, so metadata is
  posted with only the field we mean to change;
- **one error mapping** (:mod:`.vault_errors`): our adapter raises
  :class:`~impromptu_ops.store.vault_errors.VaultHTTPError` with the status, so 412
  (a standby catching up: retried briefly) and a standby's 429 are not mistaken for other
  things; 503/501/429 are explained by a ``sys/health`` probe (sealed, uninitialised,
  standby); connection failures say "unreachable".

It does not own authentication details (:mod:`.vault_auth`) nor backend choice
(:mod:`.factory`).
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from impromptu_ops.errors import CasConflict, SecretNotFound, StoreError, StoreUnavailable
from impromptu_ops.secret import Secret
from impromptu_ops.store import vault_auth, vault_errors
from impromptu_ops.store.base import (
    SecretMetadata,
    SecretVersion,
    StoreStatus,
    VersionInfo,
    VersionPruningRefused,
    check_data,
    check_name,
    pruning_refusal,
)
from impromptu_ops.store.vault_errors import VaultHTTPError

log = logging.getLogger(__name__)
T = TypeVar("T")

WRITE_ID_KEY = "_impromptu_write_id"
VAULT_DEFAULT_MAX_VERSIONS = 10


class _Landed(Exception):
    """Internal: an earlier attempt of this very write turned out to have landed."""


class _Transport(Exception):
    """The network failed. ``sent``: the request may have reached Vault."""

    def __init__(self, detail: str, *, sent: bool) -> None:
        super().__init__(detail)
        self.sent = sent


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _make_client(addr: str, timeout: float, namespace: str, ca_cert: Path | None) -> Any:
    import hvac
    from hvac.adapters import JSONAdapter

    class _Adapter(JSONAdapter):
        """Raise our status-carrying error instead of hvac's per-status classes."""

        def _raise_for_error(self, method: str, url: str, response: Any) -> None:
            body: Any = None
            try:
                body = response.json()
            except ValueError:
                body = None
            errors = body.get("errors") if isinstance(body, dict) else None
            raise VaultHTTPError(response.status_code, method, urlsplit(url).path,
                                 [str(e) for e in errors or []],
                                 body if isinstance(body, dict) else None)

    # hvac hands timeout to requests, which takes a float (the stub says int).
    return hvac.Client(url=addr, token="", timeout=timeout,  # type: ignore[arg-type]
                       namespace=namespace or None,
                       verify=str(ca_cert) if ca_cert else True, adapter=_Adapter)


class VaultStore:
    """A :class:`~impromptu_ops.store.base.SecretStore` on Vault/OpenBao KV v2.

    Args:
        addr: ``http(s)://host:port``.
        auth: how to log in (token, token file, AppRole).
        mount, prefix, agent: the KV v2 mount and the path ``<prefix>/<agent>/``.
        timeout: per-request timeout (seconds).
        max_versions: set on a secret's metadata when it is first created (0 = leave the
            mount default).
        keep_good: see :func:`~impromptu_ops.store.base.pruning_refusal`.
        min_token_ttl: renew or refuse when the token has less left than this.
        client: an ``hvac.Client`` to use instead of building one (tests).
        sleep: injected for tests.
    """

    def __init__(
        self,
        addr: str,
        auth: vault_auth.VaultAuth,
        *,
        mount: str = "secret",
        prefix: str = "impromptu",
        agent: str = "default",
        timeout: float = 10.0,
        namespace: str = "",
        ca_cert: Path | None = None,
        max_versions: int = 10,
        keep_good: int = 2,
        min_token_ttl: float = 300.0,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_name(agent)
        self.addr = addr.rstrip("/")
        self.mount = mount.strip("/")
        self.base = "/".join(p for p in (prefix.strip("/"), agent) if p)
        self._auth = auth
        self._timeout = timeout
        self._namespace = namespace
        self._ca_cert = ca_cert
        self._max_versions = max_versions
        self._keep_good = keep_good
        self._min_ttl = min_token_ttl
        self._client_obj = client
        self._logged_in = False
        self._ttl_checked = -float("inf")
        self._sleep = sleep
        self._mount_max: int | None = None

    @property
    def description(self) -> str:
        return f"vault {self.addr} {self.mount}/{self.base}"

    # -- plumbing -----------------------------------------------------------------------
    def _client(self) -> Any:
        if self._client_obj is None:
            self._client_obj = _make_client(self.addr, self._timeout, self._namespace,
                                            self._ca_cert)
        client = self._client_obj
        if not self._logged_in:
            self._guard("Vault login", lambda: vault_auth.login(client, self._auth))
            self._logged_in = True
            self._ttl_checked = -float("inf")
        # A long-lived process (a scheduler) re-checks the TTL every half floor, so the
        # token is renewed before it runs out rather than failing mid-job.
        if time.monotonic() - self._ttl_checked >= self._min_ttl / 2:
            self._guard("Vault token lookup", lambda: vault_auth.ensure_ttl(
                client, self._auth, self._min_ttl, self.addr))
            self._ttl_checked = time.monotonic()
        return client

    def _raw(self, fn: Callable[[], T]) -> T:
        """Run one hvac call; turn transport failures into :class:`_Transport`."""
        import requests

        try:
            return fn()
        except requests.exceptions.RequestException as exc:
            # Refused or connect timeout: the request never left. Anything else (read
            # timeout, reset mid-answer) leaves the outcome of a write unknown.
            unsent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
                isinstance(exc, requests.exceptions.ConnectionError)
                and "NewConnectionError" in repr(exc.args))
            raise _Transport(type(exc).__name__, sent=not unsent) from None

    def _guard(
        self,
        what: str,
        fn: Callable[[], T],
        *,
        intercept: Callable[[VaultHTTPError], None] | None = None,
        on_transport: Callable[[_Transport], T] | None = None,
    ) -> T:
        """Run one hvac call with our error mapping (412 retried briefly).

        Args:
            what: the operation, for messages.
            fn: the call.
            intercept: sees an error answer first and may raise its own error.
            on_transport: handles a failure after the request may have left (default:
                "unreachable").
        """
        delay = 0.1
        for attempt in range(4):
            try:
                return self._raw(fn)
            except _Transport as exc:
                if on_transport is not None and exc.sent:
                    return on_transport(exc)
                raise vault_errors.unreachable(self.addr, str(exc)) from None
            except VaultHTTPError as exc:
                if intercept is not None:
                    intercept(exc)
                if exc.status == 412 and attempt < 3:
                    self._sleep(delay)
                    delay *= 2
                    continue
                if exc.status in (429, 501, 503):
                    state_error = self._health_error()
                    if state_error is not None:
                        raise state_error from None
                raise vault_errors.map_http_error(exc, what, self.addr) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _health(self) -> str:
        client = self._client_obj or _make_client(self.addr, self._timeout, self._namespace,
                                                  self._ca_cert)
        answer = self._raw(lambda: client.adapter.request("GET", "/v1/sys/health",
                                                          raise_exception=False))
        if isinstance(answer, dict):
            return vault_errors.health_state(200, answer)
        try:
            body = answer.json()
        except ValueError:
            body = None
        return vault_errors.health_state(answer.status_code, body if isinstance(body, dict)
                                         else None)

    def _health_error(self) -> StoreUnavailable | None:
        try:
            state = self._health()
        except _Transport as exc:
            return vault_errors.unreachable(self.addr, str(exc))
        return vault_errors.unavailable_for(state, self.addr)

    def _path(self, name: str) -> str:
        return f"{self.base}/{check_name(name)}"

    def _kv(self) -> Any:
        return self._client().secrets.kv.v2

    def _raw_metadata(self, name: str) -> dict[str, Any] | None:
        kv, path = self._kv(), self._path(name)
        try:
            answer = self._guard(f"metadata of {name}",
                                 lambda: kv.read_secret_metadata(path, mount_point=self.mount))
        except SecretNotFound:
            return None
        data: dict[str, Any] = answer["data"]
        return data

    def _post_metadata(self, name: str, fields: Mapping[str, Any]) -> None:
        # Not hvac's update_metadata: it always sends delete_version_after="0s" and so
        # resets that field. Post only what we change.
        client, url = self._client(), f"/v1/{self.mount}/metadata/{self._path(name)}"
        self._guard(f"metadata update of {name}",
                    lambda: client.adapter.post(url, json=dict(fields)))

    def _effective_max_versions(self, meta: Mapping[str, Any] | None) -> int:
        own = int(meta.get("max_versions") or 0) if meta else 0
        if self._mount_max is None:
            client = self._client()
            try:
                config = self._guard("KV mount config", lambda: client.adapter.get(
                    f"/v1/{self.mount}/config"))
                self._mount_max = int(config["data"].get("max_versions") or 0)
            except StoreError as exc:
                log.warning("cannot read %s/config (%s): assuming Vault's default of %d "
                            "versions", self.mount, exc.message, VAULT_DEFAULT_MAX_VERSIONS)
                self._mount_max = 0
        # Measured on OpenBao 2.7 (mount, secret -> kept): (0,0)->10, (0,2)->2, (5,8)->8,
        # (5,3)->5: the larger of the two wins, 10 when neither is set.
        return max(own, self._mount_max) or VAULT_DEFAULT_MAX_VERSIONS

    @staticmethod
    def _infos(meta: Mapping[str, Any]) -> dict[int, VersionInfo]:
        return {
            int(v): VersionInfo(int(v), _time(rec["created_time"]),
                                bool(rec.get("deletion_time")), bool(rec.get("destroyed")))
            for v, rec in (meta.get("versions") or {}).items()
        }

    # -- SecretStore ----------------------------------------------------------------------
    def read(self, name: str, version: int | None = None) -> SecretVersion:
        kv, path = self._kv(), self._path(name)
        what = f"read of {name}" + (f" version {version}" if version else "")

        def deleted(exc: VaultHTTPError) -> None:
            body = exc.body or {}
            meta = (body.get("data") or {}).get("metadata") if exc.status == 404 else None
            if isinstance(meta, dict) and (meta.get("deletion_time") or meta.get("destroyed")):
                state = "destroyed" if meta.get("destroyed") else "deleted"
                raise SecretNotFound(f"version {meta.get('version')} of {name} is {state}",
                                     hint="undelete it or roll back to an older version")

        answer = self._guard(what, lambda: kv.read_secret_version(
            path, version=version, mount_point=self.mount, raise_on_deleted_version=True),
            intercept=deleted)
        data = answer["data"]
        values = {k: Secret(v if isinstance(v, str) else json.dumps(v), name)
                  for k, v in (data.get("data") or {}).items() if k != WRITE_ID_KEY}
        meta = data["metadata"]
        return SecretVersion(name, int(meta["version"]), values, _time(meta["created_time"]))

    def write(self, name: str, data: Mapping[str, Secret], cas: int | None) -> int:
        check_data(name, data)
        expected = 0 if cas is None else cas
        meta = self._raw_metadata(name)
        current = int(meta["current_version"]) if meta else 0
        if current != expected:
            raise CasConflict(
                f"{name} is at version {current}, not {expected}: someone else wrote first",
                hint="read it again and retry")
        limit = self._effective_max_versions(meta)
        reason = pruning_refusal(current, self._infos(meta) if meta else {}, limit,
                                 self._keep_good)
        if reason:
            raise VersionPruningRefused(f"{name}: {reason}",
                                        hint="raise max_versions or undelete a newer version")
        new = self._write_once(name, data, expected, attempts=2)
        if expected == 0 and self._max_versions and not (meta and meta.get("max_versions")):
            try:
                self._post_metadata(name, {"max_versions": self._max_versions})
            except StoreError as exc:
                log.warning("could not set max_versions on %s: %s", name, exc.message)
        return new

    def _write_once(self, name: str, data: Mapping[str, Secret], expected: int,
                    attempts: int, earlier: tuple[str, ...] = ()) -> int:
        """One CAS write carrying a fresh write id; ``earlier`` are the ids of previous
        attempts whose outcome was unknown (any of them may still land first)."""
        kv, path = self._kv(), self._path(name)
        write_id = secrets.token_hex(16)
        ids = (*earlier, write_id)
        payload = {k: v.reveal() for k, v in data.items()}
        payload[WRITE_ID_KEY] = write_id

        def unknown(exc: _Transport) -> Any:
            log.warning("write of %s: outcome unknown (%s); reading it back", name, exc)
            return {"data": {"version": self._recover(name, data, expected, ids, attempts,
                                                      str(exc))}}

        def lost_race(exc: VaultHTTPError) -> None:
            # After an unknown outcome, a "CAS lost" may be our own earlier attempt landing
            # late: that is a success, not a conflict.
            if earlier and exc.status == 400 and self._landed(name, expected, ids):
                raise _Landed

        try:
            answer = self._guard(f"write of {name}", lambda: kv.create_or_update_secret(
                path, payload, cas=expected, mount_point=self.mount), on_transport=unknown,
                intercept=lost_race)
        except _Landed:
            return expected + 1
        return int(answer["data"]["version"])

    def _landed(self, name: str, expected: int, ids: tuple[str, ...]) -> bool:
        """Does version ``expected + 1`` carry one of our write ids?"""
        kv, path = self._kv(), self._path(name)
        try:
            landed = self._guard(f"read-back of {name}", lambda: kv.read_secret_version(
                path, version=expected + 1, mount_point=self.mount,
                raise_on_deleted_version=False))
        except SecretNotFound:
            return False
        stored = (landed.get("data") or {}).get("data") or {}
        return stored.get(WRITE_ID_KEY) in ids

    def _recover(self, name: str, data: Mapping[str, Secret], expected: int,
                 ids: tuple[str, ...], attempts: int, detail: str) -> int:
        """After an ambiguous write: did it land? Read back instead of writing again."""
        try:
            meta = self._raw_metadata(name)
        except StoreUnavailable:
            raise StoreUnavailable(
                f"write of {name}: outcome unknown ({detail}) and Vault at {self.addr} does "
                "not answer", hint=f"check with `impromptu-ops secrets history {name}`",
            ) from None
        current = int(meta["current_version"]) if meta else 0
        if current == expected:
            if attempts <= 1:
                raise StoreUnavailable(f"write of {name} did not land ({detail})",
                                       hint="retry later")
            # Still under CAS: if an earlier attempt lands meanwhile, this one loses and
            # lost_race() recognises our own id.
            return self._write_once(name, data, expected, attempts - 1, ids)
        if self._landed(name, expected, ids):
            log.info("write of %s landed as version %d despite the %s", name, expected + 1,
                     detail)
            return expected + 1
        raise CasConflict(f"{name}: someone else wrote version {expected + 1} first",
                          hint="read it again and retry")

    def metadata(self, name: str) -> SecretMetadata:
        meta = self._raw_metadata(name)
        if meta is None:
            raise SecretNotFound(f"no secret named {name} in {self.description}")
        infos = self._infos(meta)
        return SecretMetadata(
            name=name,
            current_version=int(meta["current_version"]),
            # Vault reports 0 until it first prunes; the oldest version held is what we mean.
            oldest_version=min(infos, default=0),
            max_versions=int(meta.get("max_versions") or 0),
            created_time=_time(meta["created_time"]),
            updated_time=_time(meta["updated_time"]),
            versions=tuple(sorted(infos.values(), key=lambda i: i.version)),
            custom=dict(meta.get("custom_metadata") or {}),
        )

    def _require(self, name: str) -> None:
        if self._raw_metadata(name) is None:
            raise SecretNotFound(f"no secret named {name} in {self.description}")

    def set_custom_metadata(self, name: str, custom: Mapping[str, str]) -> None:
        for key, value in custom.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError("custom metadata keys and values must be str")
        self._require(name)
        self._post_metadata(name, {"custom_metadata": dict(custom)})

    def set_max_versions(self, name: str, max_versions: int) -> None:
        if max_versions < 0:
            raise ValueError("max_versions must not be negative")
        self._require(name)
        self._post_metadata(name, {"max_versions": max_versions})

    def list(self, prefix: str = "") -> builtins.list[str]:
        kv = self._kv()
        found: builtins.list[str] = []

        def walk(folder: str, depth: int) -> None:
            try:
                answer = self._guard("list", lambda: kv.list_secrets(
                    f"{self.base}/{folder}".rstrip("/"), mount_point=self.mount))
            except SecretNotFound:
                return
            for key in answer["data"]["keys"]:
                full = folder + key
                if key.endswith("/"):
                    # descend only where names starting with ``prefix`` can live
                    if depth < 3 and (full.startswith(prefix) or prefix.startswith(full)):
                        walk(full, depth + 1)
                elif full.startswith(prefix):
                    found.append(full)

        walk("", 0)
        return sorted(found)

    def delete(self, name: str, versions: builtins.list[int] | None = None) -> None:
        kv, path = self._kv(), self._path(name)
        self._require(name)
        if versions is None:
            self._guard(f"delete of {name}", lambda: kv.delete_latest_version_of_secret(
                path, mount_point=self.mount))
        else:
            self._guard(f"delete of {name}", lambda: kv.delete_secret_versions(
                path, versions, mount_point=self.mount))

    def undelete(self, name: str, versions: builtins.list[int]) -> None:
        kv, path = self._kv(), self._path(name)
        self._require(name)
        self._guard(f"undelete of {name}", lambda: kv.undelete_secret_versions(
            path, versions, mount_point=self.mount))

    def rollback(self, name: str, version: int) -> int:
        old = self.read(name, version)
        current = self.metadata(name).current_version
        return self.write(name, old.data, current)

    def check(self) -> StoreStatus:
        try:
            state = self._health()
        except _Transport as exc:
            raise vault_errors.unreachable(self.addr, str(exc)) from None
        error = vault_errors.unavailable_for(state, self.addr)
        if error is not None:
            raise error
        client = self._client()
        ttl = self._guard("Vault token lookup", lambda: vault_auth.ensure_ttl(
            client, self._auth, self._min_ttl, self.addr))
        life = "no expiry" if ttl == 0 else f"token ttl {ttl}s"
        return StoreStatus(f"{self.description}: {state}, {self._auth.method} auth, {life}",
                           token_ttl=None if ttl == 0 else int(ttl))
