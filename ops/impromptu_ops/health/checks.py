"""Private: The checks of ``impromptu-ops health``, and the context they share.

Each check is a function ``(HealthContext) -> CheckResult``. They run concurrently
(:mod:`.runner`), so what several need — the store, the platform key, the heartbeat answer
— is fetched once through :class:`HealthContext` (memoised under a lock; the first caller
fetches, the others wait for it). Each check imports only what it uses: no hvac unless the
store is Vault, no httpx at all (:mod:`.probe`).

Verdicts (Monitoring Plugins semantics):

- the monitored thing is down or refuses us (platform unreachable or 5xx, key refused, key
  missing from the store, store sealed) -> CRITICAL;
- a threshold from the policy is crossed -> WARNING or CRITICAL as the policy says;
- we cannot tell (our own configuration, a check's bug, a missing field) -> UNKNOWN.

This module decides verdicts; it does not render them and never prints.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from impromptu_ops import contract
from impromptu_ops.errors import (
    AuthError,
    ConfigError,
    MalformedResponse,
    OpsError,
    PlatformError,
    RateLimited,
    SecretNotFound,
    StoreError,
    StoreUnavailable,
    TransportError,
)
from impromptu_ops.health.answers import (
    HeartbeatFields,
    days_until_key_expiry,
    health_status,
    openrouter_credit,
)
from impromptu_ops.health.model import CheckResult, Perf, Status, worst
from impromptu_ops.health.policy import HealthPolicy, evaluate
from impromptu_ops.health.runner import CheckSpec
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings
from impromptu_ops.store.base import SecretStore

if TYPE_CHECKING:  # probe is imported by the checks that make requests, not at start-up
    from impromptu_ops.health.probe import ProbeResponse

T = TypeVar("T")
PLATFORM_KEY = contract.IMPROMPTU_API_KEY
OPENROUTER_KEY = contract.OPENROUTER_API_KEY


class _Once(Generic[T]):
    """A value computed once, on first use, by whichever thread asks first."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._lock = threading.Lock()
        self._done = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def get(self) -> T:
        with self._lock:
            if not self._done:
                try:
                    self._value = self._fn()
                except BaseException as exc:  # remembered and re-raised to every caller
                    self._error = exc
                self._done = True
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was kept


class HealthContext:
    """What the checks share: settings, policy, and memoised fetches."""

    def __init__(self, settings: Settings, policy: HealthPolicy,
                 open_store: Callable[[], SecretStore],
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.policy = policy
        self.wall = wall
        self._store = _Once(open_store)
        self._keys: dict[str, _Once[Secret]] = {
            name: _Once(self._reader(name)) for name in (PLATFORM_KEY, OPENROUTER_KEY)
        }
        self._heartbeat = _Once(self._fetch_heartbeat)

    def _reader(self, name: str) -> Callable[[], Secret]:
        return lambda: self.store().read(name).value()

    def store(self) -> SecretStore:
        """The agent's store, opened once (by the composition root's opener)."""
        return self._store.get()

    def secret(self, name: str) -> Secret:
        """The secret from the store (SecretNotFound when absent)."""
        return self._keys[name].get()

    def get(self, url: str, timeout: float, bearer: Secret | None = None) -> ProbeResponse:
        from impromptu_ops.health import probe

        p = self.settings.platform
        return probe.get(url, timeout=min(timeout, p.connect_timeout + p.read_timeout),
                         max_bytes=p.max_response_bytes, user_agent=p.user_agent,
                         bearer=bearer)

    def agent_url(self, sub: str) -> str:
        prefix = contract.PATH_PREFIXES[self.settings.platform.path_prefix]
        return f"{self.settings.platform.api_url.rstrip('/')}{prefix}/agent/{sub}"

    def _fetch_heartbeat(self) -> HeartbeatFields:
        key = self.secret(PLATFORM_KEY)
        resp = self.get(self.agent_url("heartbeat"), self.policy.timeout("platform_key"), key)
        return HeartbeatFields(resp.json("GET heartbeat"))

    def heartbeat(self) -> HeartbeatFields:
        """The heartbeat answer's fields, fetched once for every check that needs them."""
        return self._heartbeat.get()


# --- the checks ------------------------------------------------------------------------------

def _perf(metric: str, value: float, ctx: HealthContext, uom: str = "",
          minimum: float | None = None, maximum: float | None = None) -> Perf:
    th = ctx.policy.for_metric(metric)
    return Perf(metric, value, uom, th.warning, th.critical, minimum, maximum)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_config(ctx: HealthContext) -> CheckResult:
    from urllib.parse import urlsplit

    s = ctx.settings
    host = urlsplit(s.platform.api_url).hostname or ""
    detail: dict[str, object] = {"apiUrl": s.platform.api_url, "store": s.store_backend,
              "policy": ctx.policy.source}
    if s.platform.api_url.startswith("http://") and not _is_loopback(host):
        return CheckResult("config", Status.WARNING,
                           f"platform URL {s.platform.api_url} is plain http: keys travel "
                           "unencrypted", details=detail)
    return CheckResult("config", Status.OK,
                       f"{s.store_backend} store, platform {s.platform.api_url}", details=detail)


def check_store(ctx: HealthContext) -> CheckResult:
    try:
        status = ctx.store().check()
    except ConfigError as exc:
        return CheckResult("store", Status.UNKNOWN, exc.diagnostics())
    except StoreError as exc:  # sealed, unreachable, tampered, refused
        return CheckResult("store", Status.CRITICAL, exc.diagnostics())
    if status.token_ttl is None:  # a local store, or a token that never expires
        return CheckResult("store", Status.OK, status.summary)
    ttl = float(status.token_ttl)
    verdict = evaluate(ttl, ctx.policy.for_metric("store_token_ttl_seconds"))
    return CheckResult("store", verdict, status.summary,
                       (_perf("store_token_ttl_seconds", ttl, ctx, "s", 0),))


def check_platform(ctx: HealthContext) -> CheckResult:
    url = ctx.settings.platform.api_url.rstrip("/") + "/health"
    try:
        resp = ctx.get(url, ctx.policy.timeout("platform"))
        status = health_status(resp.json("GET /health"))
    except (TransportError, PlatformError, MalformedResponse) as exc:
        return CheckResult("platform", Status.CRITICAL, f"down: {exc.diagnostics()}")
    perf = (Perf("platform_time", round(resp.elapsed, 4), "s", minimum=0),)
    if status != "ok":
        return CheckResult("platform", Status.CRITICAL, f"/health says status={status!r}", perf)
    return CheckResult("platform", Status.OK, f"up ({resp.elapsed * 1000:.0f} ms)", perf)


def _key_missing(name: str, exc: OpsError) -> str:
    if isinstance(exc, SecretNotFound):
        return f"{name} is not in the store"
    return f"cannot read {name}: {exc.diagnostics()}"


def check_platform_key(ctx: HealthContext) -> CheckResult:
    try:
        ctx.secret(PLATFORM_KEY)
    except ConfigError as exc:
        return CheckResult("platform_key", Status.UNKNOWN, _key_missing(PLATFORM_KEY, exc))
    except StoreError as exc:
        return CheckResult("platform_key", Status.CRITICAL, _key_missing(PLATFORM_KEY, exc))
    try:
        hb = ctx.heartbeat()
    except AuthError as exc:
        return CheckResult("platform_key", Status.CRITICAL, f"refused: {exc.code}")
    except RateLimited as exc:
        return CheckResult("platform_key", Status.WARNING,
                           f"rate limited ({exc.code}); key not checked")
    except (TransportError, PlatformError, MalformedResponse) as exc:
        return CheckResult("platform_key", Status.CRITICAL,
                           f"heartbeat failed: {exc.diagnostics()}")
    who = f"agent {hb.name or hb.agent_id or '?'}, tier {hb.tier or '?'}"
    if hb.problems:
        return CheckResult("platform_key", Status.WARNING,
                           f"valid ({who}); answer incomplete: " + "; ".join(hb.problems[:3]),
                           details={"problems": list(hb.problems)})
    return CheckResult("platform_key", Status.OK, f"valid ({who})")


def _from_heartbeat(ctx: HealthContext, name: str) -> tuple[Any, CheckResult | None]:
    """The heartbeat, or the UNKNOWN result to return when it could not be had."""
    try:
        return ctx.heartbeat(), None
    except OpsError as exc:
        return None, CheckResult(name, Status.UNKNOWN,
                                 f"no heartbeat to read ({_why_no_heartbeat(exc)})")


def _why_no_heartbeat(exc: OpsError) -> str:
    """A few words an operator reads, not a class name: the platform's code, or what the
    store lacked."""
    if isinstance(exc, PlatformError):
        return exc.code or "platform error"
    if isinstance(exc, SecretNotFound):
        return "no platform key in the store"
    if isinstance(exc, StoreError):
        return "secret store unavailable"
    return "unreachable" if isinstance(exc, TransportError) else exc.__class__.__name__


def check_budget(ctx: HealthContext) -> CheckResult:
    hb, failed = _from_heartbeat(ctx, "budget")
    if failed:
        return failed
    if hb.budget_balance is None:
        return CheckResult("budget", Status.UNKNOWN, "the heartbeat has no budgetBalance")
    tier = contract.TIERS.get(hb.tier or "")
    value = float(hb.budget_balance)
    verdict = evaluate(value, ctx.policy.for_metric("budget"))
    of = f" of {tier.budget}" if tier else ""
    return CheckResult("budget", verdict, f"{value:g}{of} left",
                       (_perf("budget", value, ctx, "", 0, tier.budget if tier else None),))


def check_notifications(ctx: HealthContext) -> CheckResult:
    hb, failed = _from_heartbeat(ctx, "notifications")
    if failed:
        return failed
    if hb.unread_notifications is None:
        return CheckResult("notifications", Status.UNKNOWN,
                           "the heartbeat has no unreadNotifications")
    n = hb.unread_notifications
    verdict = evaluate(float(n), ctx.policy.for_metric("unread"))
    return CheckResult("notifications", verdict, f"{n} unread",
                       (_perf("unread", float(n), ctx, "", 0),))


def check_openrouter_key(ctx: HealthContext) -> CheckResult:
    try:
        key = ctx.secret(OPENROUTER_KEY)
    except ConfigError as exc:
        return CheckResult("openrouter_key", Status.UNKNOWN, _key_missing(OPENROUTER_KEY, exc))
    except StoreError as exc:
        # Missing: inference will fail (WARNING: the agent still checks in). Store down:
        # CRITICAL. Denied (a heartbeat-only token may read the platform key alone): we
        # cannot tell, UNKNOWN.
        if isinstance(exc, SecretNotFound):
            return CheckResult("openrouter_key", Status.WARNING,
                               _key_missing(OPENROUTER_KEY, exc) + " (inference will fail)")
        status = Status.CRITICAL if isinstance(exc, StoreUnavailable) else Status.UNKNOWN
        return CheckResult("openrouter_key", status, _key_missing(OPENROUTER_KEY, exc))
    url = ctx.settings.platform.openrouter_url.rstrip("/") + "/key"
    try:
        resp = ctx.get(url, ctx.policy.timeout("openrouter_key"), key)
    except AuthError as exc:
        return CheckResult("openrouter_key", Status.CRITICAL, f"refused by OpenRouter ({exc.code})")
    except (TransportError, PlatformError, MalformedResponse) as exc:
        return CheckResult("openrouter_key", Status.WARNING,
                           f"OpenRouter did not answer: {exc.diagnostics()}")
    usage, limit = openrouter_credit(resp.json("GET /key"))
    if limit is None:
        return CheckResult("openrouter_key", Status.OK, "valid (no credit limit)")
    remaining = float(limit) - float(usage or 0)
    verdict = evaluate(remaining, ctx.policy.for_metric("openrouter_remaining"))
    return CheckResult("openrouter_key", verdict, f"valid ({remaining:g} of {limit:g} left)",
                       (_perf("openrouter_remaining", remaining, ctx, "", 0, float(limit)),))


def _stored_age_days(ctx: HealthContext, name: str) -> float:
    """Days since the current version of ``name`` was written (raises the store's errors)."""
    meta = ctx.store().metadata(name)
    created = next((v.created_time for v in meta.versions
                    if v.version == meta.current_version), meta.updated_time)
    age: float = max(0.0, (ctx.wall() - created.astimezone(UTC).timestamp()) / 86400)
    return age


def check_key_age(ctx: HealthContext) -> CheckResult:
    """Both keys' age, and the platform key's expiry, against policies/rotation.toml."""
    try:
        age_days = _stored_age_days(ctx, PLATFORM_KEY)
    except SecretNotFound:
        return CheckResult("key_age", Status.UNKNOWN, f"{PLATFORM_KEY} is not in the store")
    except (StoreError, ConfigError) as exc:
        return CheckResult("key_age", Status.UNKNOWN, f"store: {exc.diagnostics()}")
    statuses = [evaluate(age_days, ctx.policy.for_metric("key_age_days"))]
    perf = [_perf("key_age_days", round(age_days, 2), ctx, "", 0)]
    parts = [f"platform key stored {age_days:.0f} days ago"]
    try:
        resp = ctx.get(ctx.agent_url("security-status"), ctx.policy.timeout("key_age"),
                       ctx.secret(PLATFORM_KEY))
        days = days_until_key_expiry(resp.json("GET security-status"))
    except OpsError as exc:
        parts.append(f"expiry unknown ({exc.code if isinstance(exc, PlatformError) else 'n/a'})")
    else:
        if days is not None:
            statuses.append(evaluate(days, ctx.policy.for_metric("key_expiry_days")))
            perf.append(_perf("key_expiry_days", days, ctx))
            parts.append(f"expires in {days:g} days")
        else:
            parts.append("no expiry reported")
    try:
        or_days = _stored_age_days(ctx, OPENROUTER_KEY)
    except SecretNotFound:
        pass  # openrouter_key reports a missing key
    except (StoreError, ConfigError):
        parts.append("OpenRouter key age unknown")
    else:
        statuses.append(evaluate(or_days, ctx.policy.for_metric("openrouter_key_age_days")))
        perf.append(_perf("openrouter_key_age_days", round(or_days, 2), ctx, "", 0))
        parts.append(f"OpenRouter key stored {or_days:.0f} days ago")
    verdict = worst(statuses)
    if verdict is not Status.OK:
        parts.append("due for rotation (policies/rotation.toml)")
    return CheckResult("key_age", verdict, ", ".join(parts), tuple(perf))


def check_heartbeat(ctx: HealthContext) -> CheckResult:
    from impromptu_ops.jobs.state import load, state_path

    st = load(state_path(ctx.settings.paths.state_dir))
    if st.last_success_at is None:
        why = "; ".join(st.problems) or "no successful heartbeat recorded yet"
        return CheckResult("heartbeat", Status.WARNING, why)
    age = max(0.0, ctx.wall() - st.last_success_at)
    verdict = evaluate(age, ctx.policy.for_metric("heartbeat_age_seconds"))
    text = f"last success {age / 60:.0f} min ago"
    if st.skip_until and st.skip_until > ctx.wall():
        when = datetime.fromtimestamp(st.skip_until, UTC).strftime("%H:%M UTC")
        text += f"; paused until {when} ({st.skip_reason})"
    return CheckResult("heartbeat", verdict, text,
                       (_perf("heartbeat_age_seconds", round(age), ctx, "s", 0),))


def _mode_problem(path: Path, secret: bool) -> tuple[Status, str] | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return Status.CRITICAL, f"{path} is a symlink"
    if st.st_uid != os.getuid():
        return Status.CRITICAL, f"{path} belongs to uid {st.st_uid}"
    if st.st_mode & 0o077:
        return (Status.CRITICAL if secret else Status.WARNING,
                f"{path} is mode {stat.S_IMODE(st.st_mode):o} (want 700/600)")
    return None


def check_permissions(ctx: HealthContext) -> CheckResult:
    s = ctx.settings
    found: list[tuple[Status, str]] = []
    missing = [str(d) for d in (s.paths.config_dir, s.paths.state_dir) if not d.exists()]
    for path, secret in ((s.paths.config_dir, True), (s.paths.data_dir, True),
                         (s.paths.state_dir, False), (s.local_key_path, True),
                         (s.local_store_path, True)):
        problem = _mode_problem(path, secret)
        if problem:
            found.append(problem)
    if found:
        return CheckResult("permissions", worst([f[0] for f in found]),
                           "; ".join(f[1] for f in found))
    if missing:
        return CheckResult("permissions", Status.WARNING,
                           f"missing {', '.join(missing)} (run impromptu-ops install)")
    return CheckResult("permissions", Status.OK, "config, data and state folders are private")


def check_secrets_scan(ctx: HealthContext) -> CheckResult:
    from impromptu_ops.secretscan import default_paths, scan

    # The operator's own files only: system-wide folders are the install's business, and
    # walking /etc on every monitor poll would cost more than the rest of the run.
    report = scan(default_paths(Path.home(), Path.cwd(), system=False))
    if not report.findings:
        return CheckResult("secrets_scan", Status.OK,
                           f"no plaintext keys in {report.files} shell/env files")
    where = ", ".join(f"{f.path.name}:{f.line} ({f.kind})" for f in report.findings[:3])
    return CheckResult("secrets_scan", Status.CRITICAL,
                       f"plaintext keys: {where} (run impromptu-ops secrets scan --fix)",
                       (Perf("plaintext_keys", float(len(report.findings)), "", None, None, 0),))


# name -> (function, status a timeout means). Order = output order.
CHECKS: dict[str, tuple[Callable[[HealthContext], CheckResult], Status]] = {
    "config": (check_config, Status.UNKNOWN),
    "store": (check_store, Status.CRITICAL),
    "platform": (check_platform, Status.CRITICAL),
    "platform_key": (check_platform_key, Status.CRITICAL),
    "openrouter_key": (check_openrouter_key, Status.WARNING),
    "budget": (check_budget, Status.UNKNOWN),
    "notifications": (check_notifications, Status.UNKNOWN),
    "key_age": (check_key_age, Status.UNKNOWN),
    "heartbeat": (check_heartbeat, Status.UNKNOWN),
    "permissions": (check_permissions, Status.UNKNOWN),
    "secrets_scan": (check_secrets_scan, Status.UNKNOWN),
}
# What the original impromptu-health.sh checked: /health, the key, a heartbeat (+ unread).
LEGACY_CHECKS = ("platform", "platform_key", "notifications")


def plan(ctx: HealthContext, names: tuple[str, ...] = ()) -> list[CheckSpec]:
    """The checks to run (all by default), bound to ``ctx``, with their timeouts.

    Raises:
        ConfigError: an unknown check name.
    """
    chosen = names or tuple(CHECKS)
    unknown = [n for n in chosen if n not in CHECKS]
    if unknown:
        raise ConfigError(f"unknown check {unknown[0]!r}; known: {', '.join(CHECKS)}")
    specs = []
    for name in chosen:
        fn, on_timeout = CHECKS[name]
        specs.append(CheckSpec(name, lambda fn=fn: fn(ctx),  # type: ignore[misc]
                               ctx.policy.timeout(name), on_timeout))
    return specs


__all__ = ["CHECKS", "LEGACY_CHECKS", "HealthContext", "plan"]
