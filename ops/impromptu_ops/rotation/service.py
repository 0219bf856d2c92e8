"""Private: What the ``rotate`` commands call: build a rotator from the settings and run it.

Chooses the provider, the store (:func:`impromptu_ops.store.factory.open_store`), the audit
log (``<state_dir>/audit/rotation.jsonl``), the local lock (``<state_dir>/locks/``) and the
grace period (``--grace``, else an explicitly set ``rotation.grace_seconds``, else
``policies/rotation.toml``) and the reload hook (``--on-rotate``, else the policy's
``on_rotate``). It owns this wiring only; the rules live in ``engine``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from impromptu_ops import contract
from impromptu_ops.audit import AuditLog
from impromptu_ops.errors import ConfigError, OpsError, SecretNotFound
from impromptu_ops.rotation.engine import (
    EXIT_BUSY,
    EXIT_DONE,
    EXIT_FAILED_SAFE,
    EXIT_KEY_AT_RISK,
    Outcome,
    Rotator,
    record_view,
)
from impromptu_ops.rotation.hook import parse_command
from impromptu_ops.rotation.policy import PROVIDERS, load_rotation_policy
from impromptu_ops.rotation.provider import Provider, RotationUnsupported
from impromptu_ops.rotation.record import RecordStore
from impromptu_ops.settings import Settings
from impromptu_ops.store.base import SecretStore

if TYPE_CHECKING:
    from impromptu_ops.platform.client import PlatformClient
    from impromptu_ops.platform.openrouter import OpenRouterClient
    from impromptu_ops.secret import Secret

# Worst first: how several outcomes (``resume`` of every provider) combine into one code.
SEVERITY = (EXIT_KEY_AT_RISK, EXIT_FAILED_SAFE, EXIT_BUSY, EXIT_DONE)


def audit_path(settings: Settings) -> Path:
    return settings.paths.state_dir / "audit" / "rotation.jsonl"


def lock_path(settings: Settings, provider: str) -> Path:
    return settings.paths.state_dir / "locks" / f"rotate-{provider}.lock"


class Clients(Protocol):
    """Where providers get their HTTP clients: the composition root
    (:class:`impromptu_ops.api.Agent`) builds them, with its transports."""

    def platform(self, key: Secret | None = None) -> PlatformClient: ...

    def openrouter(self, key: Secret | None = None) -> OpenRouterClient: ...


def build_provider(settings: Settings, name: str, store: SecretStore, *, clients: Clients,
                   old_key_hash: str | None = None) -> Provider:
    """The provider called ``name``, wired to the settings and the agent's clients.

    Raises:
        ConfigError: unknown provider, or its configuration is incomplete.
    """
    if name == "openrouter":
        from impromptu_ops.rotation.providers.openrouter import OpenRouterProvider

        return OpenRouterProvider(settings.platform, store, byok=settings.rotation.byok,
                                  old_key_hash=old_key_hash, openrouter=clients.openrouter,
                                  platform=clients.platform)
    if name == "impromptu":
        from impromptu_ops.rotation.providers.impromptu import ImpromptuProvider

        return ImpromptuProvider(settings.platform, store, platform=clients.platform)
    if name == "vault-secret-id":
        from impromptu_ops.rotation.providers.vault_secret_id import VaultSecretIdProvider

        s = settings.store
        if not s.vault_addr or s.vault_token is None:
            raise ConfigError("rotating vault-secret-id needs VAULT_ADDR and a VAULT_TOKEN "
                              "allowed to manage the role's secret_ids")
        return VaultSecretIdProvider(
            s.vault_addr, s.vault_token, settings.rotation.approle_role,
            mount=s.vault_approle_mount, role_id=s.vault_role_id,
            secret_id_file=s.vault_secret_id_file, timeout=s.vault_timeout,
            namespace=s.vault_namespace, wrapped=s.vault_secret_id_wrapped,
            wrap_ttl=s.vault_secret_id_wrap_ttl)
    raise ConfigError(f"unknown rotation provider {name!r}: use " + ", ".join(PROVIDERS))


def grace_for(settings: Settings, provider: str, flag: float | None) -> float:
    if flag is not None:
        return flag
    if "rotation.grace_seconds" in settings.sources:
        return settings.rotation.grace_seconds
    return load_rotation_policy(settings.paths.policies_dir).for_provider(provider).grace_seconds


def build_rotator(settings: Settings, provider: str, *, store: SecretStore, clients: Clients,
                  grace: float | None = None, on_rotate: str | None = None,
                  provider_factory: Callable[[Settings, str, SecretStore], Provider] | None
                  = None, old_key_hash: str | None = None) -> Rotator:
    """A :class:`Rotator` for ``provider`` with everything taken from ``settings``.

    ``on_rotate``: the reload hook's command line (``""``: none; ``None``: the policy's).
    """
    make = provider_factory or functools.partial(build_provider, clients=clients,
                                                 old_key_hash=old_key_hash)
    policy = load_rotation_policy(settings.paths.policies_dir).for_provider(provider)
    if on_rotate is None:
        on_rotate = policy.on_rotate
    parse_command(on_rotate, "--on-rotate")  # a bad command line changes nothing
    return Rotator(
        make(settings, provider, store), store,
        audit=AuditLog(audit_path(settings)), lock_path=lock_path(settings, provider),
        grace_seconds=grace_for(settings, provider, grace),
        lease_seconds=settings.rotation.lease_seconds,
        create_attempts=settings.rotation.create_attempts,
        on_rotate=on_rotate, on_rotate_timeout=policy.on_rotate_timeout_seconds,
    )


def rotate(settings: Settings, provider: str, *, grace: float | None = None,
           dry_run: bool = False, if_due: bool = False, on_rotate: str | None = None,
           store: SecretStore, clients: Clients, old_key_hash: str | None = None) -> Outcome:
    """``rotate PROVIDER``: rotate now (or finish an abandoned rotation first).

    With ``if_due``, first finish an interrupted rotation or a due retirement of an old
    key (exit 0 with "nothing to do yet" while its grace period runs), then rotate only
    when the current key is older than the policy's ``max_age_days`` (by the store's
    version time).

    Raises:
        LockBusy, RotationBusy, CasConflict: exit 75.
        ConfigError, StoreError: nothing was changed.
    """
    rotator = build_rotator(settings, provider, store=store, clients=clients, grace=grace,
                            on_rotate=on_rotate, old_key_hash=old_key_hash)
    try:
        if if_due and not dry_run:
            first = None
            rec = RecordStore(store).load(provider)[0]
            if rec is not None and rec.active:
                first = rotator.resume()
                again = RecordStore(store).load(provider)[0]
                if first.exit_code != EXIT_DONE or (again is not None and again.active):
                    return first  # still waiting (grace) or failed: say so, rotate nothing
            if due_reason(settings, provider, store) is None:
                return first or Outcome(EXIT_DONE, provider, f"{rotator.provider.secret} is "
                                        "not due for rotation (policies/rotation.toml)",
                                        state="not-due")
        elif if_due and due_reason(settings, provider, store) is None:
            return Outcome(EXIT_DONE, provider, f"{rotator.provider.secret} is not due for "
                           "rotation (policies/rotation.toml)", state="not-due")
        return rotator.start(dry_run=dry_run)
    except RotationUnsupported as exc:
        return Outcome(EXIT_DONE, provider, exc.message, state="unsupported")
    except OpsError as exc:
        if exc.exit_code == EXIT_BUSY:
            raise
        # Whatever escapes start() (rather than coming back as an Outcome) happened before
        # the intent was recorded: no provider key was made, the store was not touched.
        if getattr(exc, "key_at_risk", False):  # the provider refuses the stored key
            return Outcome(EXIT_KEY_AT_RISK, provider, f"rotation not started: "
                           f"{exc.diagnostics()}; nothing was changed; page someone",
                           state="not-started")
        return Outcome(EXIT_FAILED_SAFE, provider, f"rotation not started: "
                       f"{exc.diagnostics()}; nothing was changed", state="not-started")
    finally:
        rotator.provider.close()


def due_reason(settings: Settings, provider: str, store: SecretStore) -> str | None:
    """Why ``provider``'s key is due (age of its newest store version), else ``None``."""
    policy = load_rotation_policy(settings.paths.policies_dir).for_provider(provider)
    name = {"openrouter": contract.OPENROUTER_API_KEY, "impromptu": contract.IMPROMPTU_API_KEY,
            "vault-secret-id": contract.VAULT_SECRET_ID}[provider]
    try:
        meta = store.metadata(name)
    except SecretNotFound:
        return None
    created = meta.updated_time
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return policy.due(datetime.now(UTC), created)


def _active(store: SecretStore) -> list[str]:
    records = RecordStore(store)
    return [p for p in PROVIDERS if (rec := records.load(p)[0]) is not None and rec.active]


def resume(settings: Settings, provider: str | None = None, *, force: bool = False,
           store: SecretStore, clients: Clients) -> list[Outcome]:
    """``rotate resume``: continue every interrupted rotation (or the named one)."""
    names = [provider] if provider else _active(store)
    outcomes = []
    for name in names:
        try:
            rotator = build_rotator(settings, name, store=store, clients=clients)
            try:
                outcomes.append(rotator.resume(force=force))
            finally:
                rotator.provider.close()
        except OpsError as exc:
            code = EXIT_BUSY if exc.exit_code == EXIT_BUSY else EXIT_FAILED_SAFE
            outcomes.append(Outcome(code, name, exc.diagnostics()))
    return outcomes or [Outcome(EXIT_DONE, "-", "no rotation to resume")]


def rollback(settings: Settings, provider: str | None = None, *, force: bool = False,
             store: SecretStore, clients: Clients) -> Outcome:
    """``rotate rollback``: undo the unfinished rotation (the named one, or the only one)."""
    if provider is None:
        active = _active(store)
        if not active:
            return Outcome(EXIT_DONE, "-", "no rotation to roll back")
        if len(active) > 1:
            raise ConfigError("several rotations are unfinished: name one",
                              hint="rotate rollback " + " | ".join(active))
        provider = active[0]
    rotator = build_rotator(settings, provider, store=store, clients=clients)
    try:
        return rotator.rollback(force=force)
    finally:
        rotator.provider.close()


def status(settings: Settings, provider: str | None = None, *,
           store: SecretStore, audit_lines: int = 20) -> list[dict[str, Any]]:
    """``rotate status``: each provider's record and recent audit trail (no values)."""
    records = RecordStore(store)
    audit = AuditLog(audit_path(settings))
    chain = audit.verify()
    trail = list(audit.entries())
    views = []
    for name in [provider] if provider else list(PROVIDERS):
        rec, ver = records.load(name)
        if rec is None and provider is None:
            continue
        views.append({
            "provider": name,
            "record": None if rec is None else {**record_view(rec), "record_version": ver},
            "audit": [e for e in trail if e.get("provider") == name][-audit_lines:]
            if audit_lines > 0 else [],
            "audit_chain": "intact" if chain.ok else
            f"BROKEN at line {chain.first_bad_line}: {chain.reason}",
        })
    return views


def combined_exit(outcomes: list[Outcome]) -> int:
    codes = {o.exit_code for o in outcomes}
    return next((c for c in SEVERITY if c in codes), EXIT_FAILED_SAFE)
