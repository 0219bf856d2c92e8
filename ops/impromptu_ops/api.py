"""The library API for runbooks: one :class:`Agent`, built once from settings.

An :class:`Agent` is the composition root of impromptu-ops. It is built for ONE agent (the
one ``settings.store.agent`` names; a fleet builds one ``Agent`` per agent name) and owns
what every use case needs:

- the secret store (opened on first use, never before: building an ``Agent`` does no I/O);
- the keys in it (read from the store each time they are needed, so a rotation is seen at
  once and no secret outlives its use in this object);
- the platform client and the OpenRouter client, built here and nowhere else in the
  package, with the HTTP transports a test injects.

Its methods are what runbooks do — :meth:`Agent.register`, :meth:`Agent.heartbeat`,
:meth:`Agent.health`, :meth:`Agent.rotate`, :meth:`Agent.reconcile`, the update gate
(:attr:`Agent.updates`) — and each returns the library's typed result. Nothing here prints
or exits: errors are the :mod:`impromptu_ops.errors` tree, exit codes belong to the CLI.

Every import of a use case happens inside the method that needs it, so importing this module
costs almost nothing (``health`` and ``heartbeat`` start as fast as before).

Public names are listed in ``__all__``; the supported modules in :data:`PUBLIC_MODULES`.
Every other module's docstring (or its package's) starts with ``Private:``: internal to
the package, changed without notice.

Example::

    from impromptu_ops.api import Agent
    from impromptu_ops.settings import load_settings

    agent = Agent.from_settings(load_settings())
    report = agent.heartbeat()
    print(report.outcome)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impromptu_ops.contract import (
    IMPROMPTU_API_KEY,
    OPENROUTER_API_KEY,
)
from impromptu_ops.settings import Settings, load_settings

if TYPE_CHECKING:  # types only: importing them at run time would slow every command
    import httpx

    from impromptu_ops.gate.gate import UpdateGate
    from impromptu_ops.health.model import Report as HealthReport
    from impromptu_ops.health.policy import HealthPolicy
    from impromptu_ops.jobs.heartbeat import HeartbeatReport
    from impromptu_ops.platform.client import PlatformClient
    from impromptu_ops.platform.openrouter import OpenRouterClient
    from impromptu_ops.platform.status import ApiStatus
    from impromptu_ops.reconcile.model import Report as ReconcileReport
    from impromptu_ops.reconcile.service import Window
    from impromptu_ops.registration.api import ClientRegistrationApi
    from impromptu_ops.registration.flow import Hooks, Registration, RegistrationRequest
    from impromptu_ops.registration.keeping import Kept
    from impromptu_ops.rotation.engine import Outcome
    from impromptu_ops.secret import Secret
    from impromptu_ops.store.base import SecretStore

__all__ = ["PUBLIC_MODULES", "Agent"]

PUBLIC_MODULES = (
    # the API and what every caller needs
    "impromptu_ops.api", "impromptu_ops.errors", "impromptu_ops.settings",
    "impromptu_ops.secret", "impromptu_ops.contract",
    # the packages that hold public modules (namespaces)
    "impromptu_ops.store", "impromptu_ops.platform", "impromptu_ops.health",
    "impromptu_ops.jobs", "impromptu_ops.registration", "impromptu_ops.rotation",
    "impromptu_ops.reconcile", "impromptu_ops.gate",
    # what Agent owns and returns
    "impromptu_ops.store.base", "impromptu_ops.platform.client",
    "impromptu_ops.platform.openrouter", "impromptu_ops.platform.results",
    "impromptu_ops.platform.ratelimit", "impromptu_ops.platform.status",
    "impromptu_ops.health.model", "impromptu_ops.health.policy",
    "impromptu_ops.jobs.heartbeat", "impromptu_ops.registration.flow",
    "impromptu_ops.registration.keeping", "impromptu_ops.rotation.engine",
    "impromptu_ops.reconcile.model", "impromptu_ops.reconcile.service",
    "impromptu_ops.gate.gate",
    # agents by name (the roster: which agents, one agent's settings, shards)
    "impromptu_ops.fleet", "impromptu_ops.fleet.roster",
)
"""The supported surface. Every other module's docstring (or its package's) starts with
``Private:``: internal, changed without notice (``tests/test_api.py`` checks both)."""


def _settings_for(settings: Settings, name: str) -> Settings:
    """The settings of agent ``name``: its ``[agents.NAME]`` table's, else ``settings``
    with ``store.agent = name`` (checked like any other value of that setting)."""
    if name in settings.agents:
        return settings.agents[name]
    from impromptu_ops.errors import ConfigError
    from impromptu_ops.settings import AGENT_NAME

    if not AGENT_NAME.fullmatch(name):
        raise ConfigError(f"agent name {name[:40]!r} is not a plain name",
                          hint="up to 63 letters, digits, '-' and '_', starting with a "
                               "letter or digit")
    return replace(settings, store=replace(settings.store, agent=name))


class Agent:
    """One agent's toolkit: its store, keys and clients, and the runbook operations.

    Build it with :meth:`from_settings` (or ``Agent(settings, store=..., ...)`` in tests).

    Args:
        settings: the effective settings for this agent.
        store: a secret store to use instead of the configured one (tests, or a caller
            that already holds one).
        platform_transport: an httpx transport for the platform client (tests).
        openrouter_transport: an httpx transport for the OpenRouter client (tests).
    """

    def __init__(self, settings: Settings, *, store: SecretStore | None = None,
                 platform_transport: httpx.BaseTransport | None = None,
                 openrouter_transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._store = store
        self._store_lock = threading.Lock()
        self._platform_transport = platform_transport
        self._openrouter_transport = openrouter_transport
        self._updates: UpdateGate | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, agent: str | None = None,
                      store: SecretStore | None = None,
                      platform_transport: httpx.BaseTransport | None = None,
                      openrouter_transport: httpx.BaseTransport | None = None) -> Agent:
        """The agent the settings describe (default: settings from the environment and
        the config file, as the CLI loads them).

        Args:
            settings: the effective settings.
            agent: build for this agent name instead of ``store.agent``: its
                ``[agents.NAME]`` settings when the config file has that table, else the
                same settings with ``store.agent`` set to it. A fleet builds one
                ``Agent`` per name.

        Raises:
            ConfigError: the settings cannot be loaded, or ``agent`` is not a plain name.
        """
        chosen = settings if settings is not None else load_settings()
        if agent is not None and agent != chosen.store.agent:
            chosen = _settings_for(chosen, agent)
        return cls(chosen, store=store, platform_transport=platform_transport,
                   openrouter_transport=openrouter_transport)

    # --- what the agent owns -----------------------------------------------------------------
    @property
    def name(self) -> str:
        """The agent's name in the store (``store.agent``; ``default`` unless configured)."""
        return self.settings.store.agent

    @property
    def store(self) -> SecretStore:
        """The secret store, opened on first use (no I/O until a method reads it).

        Raises:
            ConfigError: the configured backend is unusable.
        """
        with self._store_lock:
            if self._store is None:
                from impromptu_ops.store.factory import open_store

                self._store = open_store(self.settings)
            return self._store

    def secret(self, name: str) -> Secret:
        """The current value of the secret ``name`` (e.g. ``contract.IMPROMPTU_API_KEY``).

        Raises:
            SecretNotFound: the store has no such secret.
            StoreError: the store cannot be read.
        """
        return self.store.read(name).value()

    def api_key(self) -> Secret:
        """The platform key from the store (SecretNotFound when none is stored)."""
        return self.secret(IMPROMPTU_API_KEY)

    def openrouter_key(self) -> Secret:
        """The OpenRouter key from the store (SecretNotFound when none is stored)."""
        return self.secret(OPENROUTER_API_KEY)

    def platform(self, key: Secret | None = None, *, anonymous: bool = False,
                 deadline: float | None = None) -> PlatformClient:
        """A platform client (use it as a context manager; it owns a connection pool).

        Args:
            key: the key to send (default: the stored platform key).
            anonymous: send no key (registration, ``/health``).
            deadline: cap ``platform.deadline`` to this many seconds.

        Raises:
            SecretNotFound, StoreError: no key given and none can be read.
        """
        from impromptu_ops.platform.client import PlatformClient

        p = self.settings.platform
        if deadline is not None:
            p = replace(p, deadline=max(0.1, min(p.deadline, deadline)))
        if key is None and not anonymous:
            key = self.api_key()
        return PlatformClient(p, key, transport=self._platform_transport)

    def openrouter(self, key: Secret | None = None) -> OpenRouterClient:
        """An OpenRouter client (context manager) with ``key`` (default: the stored API key).
        """
        from impromptu_ops.platform.openrouter import OpenRouterClient

        p = self.settings.platform
        return OpenRouterClient(p.openrouter_url, key if key is not None
                                else self.openrouter_key(), settings=p,
                                transport=self._openrouter_transport)

    # --- runbook operations --------------------------------------------------------------
    def status(self) -> ApiStatus:
        """``api status``: is the platform up, and does it accept the stored key?

        Never raises for a platform, network or store failure: they are in the result.
        """
        from impromptu_ops.platform.status import api_status

        return api_status(self.settings.platform, key_source=self._key_or_none,
                          make_client=lambda key: self.platform(key, anonymous=key is None))

    def _key_or_none(self) -> Secret | None:
        from impromptu_ops.errors import SecretNotFound

        try:
            return self.api_key()
        except SecretNotFound:
            return None

    def heartbeat(self, *, metrics_file: Path | None = None, key: Secret | None = None
                  ) -> HeartbeatReport:
        """One scheduled heartbeat run (lock, state, pause, textfile metrics).

        A busy lock comes back as a skipped report, not an error.

        Args:
            metrics_file: write Prometheus metrics here (default: ``jobs.metrics_file``).
            key: the platform key to use (default: the stored one, read when the run
                starts; a missing key is a failed run, not an exception).

        Raises:
            ConfigError: the deadline or state folder is unusable.
        """
        from impromptu_ops.jobs.heartbeat import run_scheduled

        return run_scheduled(
            self.settings, metrics_file=metrics_file,
            client_factory=lambda k, left: self.platform(k, deadline=left),
            key_loader=self.api_key if key is None else (lambda: key))

    def health(self, *, checks: Sequence[str] = (), policy: HealthPolicy | None = None
               ) -> HealthReport:
        """Run the health checks (all by default) and return their report.

        Args:
            checks: names from :data:`impromptu_ops.health.checks.CHECKS`.
            policy: thresholds and timeouts (default: ``policies/health.toml``).

        Raises:
            ConfigError: an unknown check name or a bad policy file.
        """
        from impromptu_ops.health.checks import HealthContext, plan
        from impromptu_ops.health.policy import load_policy
        from impromptu_ops.health.runner import run_checks

        if policy is None:
            policy = load_policy(self.settings.paths.policies_dir,
                                 self.settings.jobs.health_check_timeout)
        ctx = HealthContext(self.settings, policy, open_store=lambda: self.store)
        return run_checks(plan(ctx, tuple(checks)))

    def register(self, request: RegistrationRequest, *, hooks: Hooks | None = None
                 ) -> Registration:
        """Register this agent end to end and keep its secrets in the store.

        Raises:
            the errors of :func:`impromptu_ops.registration.flow.register_agent`.
        """
        from impromptu_ops.registration.flow import register_agent

        with self.registration_api() as api:
            return register_agent(self.settings, request, api=api,
                                  open_store=lambda: self.store, hooks=hooks)

    def accept_terms(self) -> str:
        """Accept the platform's terms for a PENDING agent; returns its new status."""
        from impromptu_ops.registration.flow import accept_terms

        with self.registration_api() as api:
            return accept_terms(self.settings, api=api, open_store=lambda: self.store)

    def registration_api(self) -> ClientRegistrationApi:
        """The registration endpoints over this agent's platform client (close it, or use
        it as a context manager). :meth:`register` uses it; tests wrap it."""
        from impromptu_ops.registration.api import ClientRegistrationApi

        return ClientRegistrationApi(lambda key: self.platform(key, anonymous=key is None))

    def recover(self, path: Path) -> tuple[str, Kept]:
        """Move the secrets of an emergency file (left by a registration whose store
        failed) into the store; returns the agent id and what was kept."""
        from impromptu_ops.registration.flow import recover_emergency

        return recover_emergency(self.settings, path, lambda: self.store)

    def rotate(self, provider: str, *, grace: float | None = None, dry_run: bool = False,
               if_due: bool = False, on_rotate: str | None = None,
               old_key_hash: str | None = None) -> Outcome:
        """Rotate ``provider``'s key (``impromptu``, ``openrouter``, ``vault-secret-id``).

        Args:
            grace: seconds the old key stays valid (default: the policy's).
            dry_run: say what would happen; change nothing.
            if_due: finish an interrupted rotation, else rotate only a key past the
                policy's ``max_age_days``.
            on_rotate: the reload hook's command line (``""``: none; None: the policy's).
            old_key_hash: OpenRouter only: the current key's hash when it cannot be found.

        Returns:
            The :class:`~impromptu_ops.rotation.engine.Outcome` (a failed rotation is an
            outcome that says what state the keys are in, not an exception).

        Raises:
            LockBusy, RotationBusy, CasConflict: another rotation is running.
        """
        from impromptu_ops.rotation import service

        return service.rotate(self.settings, provider, grace=grace, dry_run=dry_run,
                              if_due=if_due, on_rotate=on_rotate, store=self.store,
                              clients=self, old_key_hash=old_key_hash)

    def resume_rotations(self, provider: str | None = None, *, force: bool = False
                         ) -> list[Outcome]:
        """Continue every interrupted rotation (or ``provider``'s) from its recorded step."""
        from impromptu_ops.rotation import service

        return service.resume(self.settings, provider, force=force, store=self.store,
                              clients=self)

    def roll_back_rotation(self, provider: str | None = None, *, force: bool = False
                           ) -> Outcome:
        """Undo an unfinished rotation: the old key becomes current again."""
        from impromptu_ops.rotation import service

        return service.rollback(self.settings, provider, force=force, store=self.store,
                                clients=self)

    def rotation_status(self, provider: str | None = None, *, audit_lines: int = 20
                        ) -> list[dict[str, Any]]:
        """Each provider's rotation record and recent audit trail (ids and times only)."""
        from impromptu_ops.rotation import service

        return service.status(self.settings, provider, store=self.store,
                              audit_lines=audit_lines)

    def reconcile(self, window: Window, *,
                  progress: Callable[[int, int], None] | None = None,
                  now: datetime | None = None) -> ReconcileReport:
        """Reconcile the platform's earnings ledger with the chain over ``window``.

        Raises:
            ConfigError: no chain RPC or wallet configured.
            OpsError: the store, the platform or the chain failed.
        """
        from impromptu_ops.reconcile.service import run_reconciliation

        return run_reconciliation(self.settings, window, progress=progress, now=now,
                                  platform=self.platform)

    @property
    def updates(self) -> UpdateGate:
        """The update gate of this agent's skill folder: ``fetch``, ``review``,
        ``approve``, ``apply``, ``rollback``, ``status``."""
        if self._updates is None:
            from impromptu_ops.gate.gate import UpdateGate

            self._updates = UpdateGate(self.settings, transport=self._platform_transport)
        return self._updates
