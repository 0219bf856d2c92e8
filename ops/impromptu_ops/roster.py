"""The roster: which agents this configuration serves, one agent's settings, and shards.

An agent is a name (:data:`~impromptu_ops.settings.AGENT_NAME`: letters, digits, ``-`` and
``_``). The agent ``default`` is today's single agent and keeps today's paths; any other
agent NAME gets

- its secrets at ``<mount>/data/<prefix>/NAME/...`` in Vault, or its own local store file
  ``<data_dir>/agents/NAME/secrets.store`` (and so its own rollback counter);
- its own state folder ``<state_dir>/agents/NAME`` (heartbeat state and lock, registration
  journal, rotation records and locks), unless its table names one;
- the values of its ``[agents.NAME.<section>]`` config table over the file's defaults (its
  wallet is ``[agents.NAME.chain] wallet_address``, which ``register --agent NAME`` writes).

The fleet is ``default`` (unless ``fleet.include_default = false``) plus every
``[agents.NAME]`` table, sorted by name. A fleet spread over N workers (a Kubernetes
Indexed Job) gives each agent to exactly one worker: :func:`shard_of` hashes the name
with SHA-256 (stable across processes, hosts and Python versions, unlike ``hash()``).

Public API (used by ``fleet`` and by the reconcile side): :func:`check_name`,
:func:`agent_settings`, :func:`fleet_names`, :func:`shard_of`, :func:`select_shard`,
:func:`shard_from_env`, :func:`keys_location`. Everything here is pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping

from impromptu_ops.errors import ConfigError, InputError
from impromptu_ops.settings import Settings
from impromptu_ops.settings_schema import AGENT_NAME, DEFAULT_AGENT

SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by Kubernetes in an Indexed Job's pods
SHARD_COUNT_ENV = "IMPROMPTU_FLEET_SHARDS"  # the bundle sets it; else fleet.shards

__all__ = ["AGENT_NAME", "DEFAULT_AGENT", "SHARD_COUNT_ENV", "SHARD_INDEX_ENV", "agent_settings",
           "check_name", "fleet_names", "keys_location", "select_shard", "shard_from_env",
           "shard_of"]


def check_name(name: str) -> str:
    """``name`` when it is a valid agent name.

    Raises:
        InputError: not a plain name (it becomes a Vault path segment and a folder name).
    """
    if not isinstance(name, str) or not AGENT_NAME.match(name):
        shown = repr(name)[:40] if isinstance(name, str) else type(name).__name__
        raise InputError(f"agent name {shown} is not a plain name "
                         "(letters, digits, - and _; at most 63, not starting with - or _)")
    return name


def _from_agent_table(s: Settings, key: str) -> bool:
    return "[agents." in s.sources.get(key, "")


def agent_settings(settings: Settings, name: str) -> Settings:
    """The effective settings of agent ``name``.

    Args:
        settings: the settings as :func:`~impromptu_ops.settings.load_settings` built them
            (call this once on them: the state folder of a non-default agent is derived).
        name: the agent; ``default`` returns today's settings with today's paths.

    Returns:
        Its ``[agents.NAME]`` table's settings when there is one, else the file's settings
        with ``store.agent = name``; for a name other than ``default`` the state folder is
        ``<state_dir>/agents/NAME`` unless the table sets ``paths.state_dir``. The
        ``agents`` map of ``settings`` is kept, so the roster stays reachable.

    Raises:
        InputError: a bad name.
    """
    check_name(name)
    chosen = settings.agents.get(name)
    if chosen is None:
        if settings.store.agent == name:
            chosen = settings
        else:
            chosen = dataclasses.replace(settings,
                                         store=dataclasses.replace(settings.store, agent=name))
    if name != DEFAULT_AGENT and not _from_agent_table(chosen, "paths.state_dir"):
        paths = dataclasses.replace(chosen.paths,
                                    state_dir=chosen.paths.state_dir / "agents" / name)
        chosen = dataclasses.replace(chosen, paths=paths)
    return dataclasses.replace(chosen, agents=settings.agents)


def fleet_names(settings: Settings) -> list[str]:
    """The fleet: ``default`` (when ``fleet.include_default``) and every ``[agents.NAME]``
    table, sorted, ``default`` first."""
    names = sorted(n for n in settings.agents if n != DEFAULT_AGENT)
    if settings.fleet.include_default or DEFAULT_AGENT in settings.agents:
        names.insert(0, DEFAULT_AGENT)
    return names


def shard_of(name: str, shards: int) -> int:
    """The shard (0..shards-1) agent ``name`` belongs to: SHA-256 of the UTF-8 name, its
    first 8 bytes as a big-endian integer, modulo ``shards``."""
    if shards < 1:
        raise ConfigError(f"the shard count must be at least 1, got {shards}")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def select_shard(names: Iterable[str], index: int, shards: int) -> list[str]:
    """The names of ``names`` that shard ``index`` of ``shards`` serves (order kept)."""
    if not 0 <= index < shards:
        raise ConfigError(f"shard index {index} is outside 0..{shards - 1}")
    return [n for n in names if shard_of(n, shards) == index]


def _whole(env: Mapping[str, str], var: str, low: int, high: int) -> int | None:
    raw = env.get(var, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or not low <= int(raw) <= high:
        raise ConfigError(f"env {var}: {raw[:20]!r} is not a whole number in {low}..{high}")
    return int(raw)


def shard_from_env(env: Mapping[str, str], settings: Settings) -> tuple[int, int]:
    """``(index, shards)`` for this process: ``JOB_COMPLETION_INDEX`` (0 when unset) of
    ``IMPROMPTU_FLEET_SHARDS`` (else ``fleet.shards``).

    Raises:
        ConfigError: a malformed variable, or an index outside the shard count.
    """
    shards = _whole(env, SHARD_COUNT_ENV, 1, 100_000) or settings.fleet.shards
    index = _whole(env, SHARD_INDEX_ENV, 0, 99_999) or 0
    if index >= shards:
        raise ConfigError(f"env {SHARD_INDEX_ENV}={index} is outside the {shards} shard(s)",
                          hint=f"set {SHARD_COUNT_ENV} to the Job's completions")
    return index, shards


def keys_location(settings: Settings) -> str:
    """Where this agent's keys live, for a person: the store file, or the Vault path."""
    if settings.store_backend == "vault":
        s = settings.store
        base = "/".join(p for p in (s.vault_prefix.strip("/"), s.agent) if p)
        return f"vault {s.vault_mount}/data/{base}/"
    return f"local {settings.local_store_path}"


def this_shard(base: Settings, env: Mapping[str, str]) -> list[str]:
    """The agents this process serves: every agent, or its shard of an Indexed Job."""
    index, shards = shard_from_env(env, base)
    return select_shard(fleet_names(base), index, shards)
