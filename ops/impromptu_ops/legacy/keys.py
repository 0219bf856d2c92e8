"""Keys the old way: the store first, else ``IMPROMPTU_API_KEY`` / ``OPENROUTER_API_KEY``.

The original scripts read their keys from the environment. The drop-ins read the secret
store; when the store has no such key but the variable is set, they use the variable (so an
existing cron line keeps working) and say, on stderr only, how to move it into the store.
Stdout and the exit code stay what the original gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from impromptu_ops import contract
from impromptu_ops.errors import OpsError, SecretNotFound
from impromptu_ops.secret import Secret

if TYPE_CHECKING:
    from impromptu_ops.store.base import SecretStore

PLATFORM_KEY = contract.IMPROMPTU_API_KEY
OPENROUTER_KEY = contract.SECRET_NAMES[1]  # openrouter-api-key


@dataclass(frozen=True)
class FoundKey:
    """Where a key was found.

    ``origin`` is ``store``, ``env`` or ``none``; ``store_problem`` says why the store could
    not be read (``None`` when it was read and simply has no such key).
    """

    name: str
    secret: Secret | None
    origin: str
    store_problem: str | None = None

    @property
    def env_name(self) -> str:
        return contract.SECRET_ENV[self.name]


def find_keys(open_store: Callable[[], SecretStore] | None, names: list[str],
              env: Mapping[str, str], problem: str | None = None) -> list[FoundKey]:
    """Each key of ``names`` from the store (opened once), else from its environment
    variable.

    Args:
        open_store: opens the agent's store (the composition root's,
            :attr:`impromptu_ops.api.Agent.store`), or ``None`` when the settings could not
            be loaded (then only the environment is read, and ``problem`` says why).

    Never raises for a missing or unreadable store: the caller reports it in the
    original's words.
    """
    store = None
    if open_store is not None:
        try:
            store = open_store()
        except OpsError as exc:
            problem = exc.diagnostics()
    found: list[FoundKey] = []
    for name in names:
        why = problem
        if store is not None:
            try:
                found.append(FoundKey(name, store.read(name).value(), "store"))
                continue
            except SecretNotFound:
                pass
            except OpsError as exc:
                why = exc.diagnostics()
        value = env.get(contract.SECRET_ENV[name], "").strip()
        secret = Secret(value, name) if value else None
        found.append(FoundKey(name, secret, "env" if value else "none", why))
    return found


def find_key(open_store: Callable[[], SecretStore] | None, name: str, env: Mapping[str, str]
             ) -> FoundKey:
    """One key, as :func:`find_keys`."""
    return find_keys(open_store, [name], env)[0]


def env_hint(script: str, found: list[FoundKey]) -> str | None:
    """The stderr line for keys taken from the environment, or ``None`` when there are none."""
    names = [k.env_name for k in found if k.origin == "env"]
    if not names:
        return None
    return (f"{script}: {' and '.join(names)} read from the environment; move "
            f"{'them' if len(names) > 1 else 'it'} into the secret store with "
            "`impromptu-ops secrets import --from-env`, then unset the variable")


def legacy_mask(value: str) -> str:
    """The original's display of a key: first 8 + ``...`` + last 4 when longer than 16
    characters, else ``***masked***`` (for an ``impr_sk_`` key the first 8 are the public
    prefix)."""
    if len(value) > 16:
        return f"{value[:8]}...{value[-4:]}"
    return "***masked***"
