"""Private: Which secrets a child process gets, and how: environment variables or private files.

``secrets exec`` runs a command under a supervising parent (:mod:`impromptu_ops.supervisor`);
this module decides what that child receives and prepares it:

- **which** (:func:`collect`): by default only the agent's runtime keys
  (:data:`impromptu_ops.contract.RUNTIME_SECRET_NAMES`: the platform API key and the
  OpenRouter inference key), as chamber and Vault Agent deliver only what was asked for.
  Management/provisioning keys, wallet keys and Vault credentials only when named
  (``--only``). Each value comes with the store version it was read at, so that a watcher
  can tell when the store holds a newer one (:func:`current_versions`).
- **environment**: ``IMPROMPTU_API_KEY``, ``OPENROUTER_API_KEY``... (the names the original
  scripts read, :data:`impromptu_ops.contract.SECRET_ENV`).
- **files** (:func:`write_secret_files`): for programs that read keys from files. A fresh
  private folder (0700, under ``/dev/shm`` when available: memory, not disk) gets one 0400
  file per secret named like the variable; the child gets ``IMPROMPTU_SECRETS_DIR`` and
  ``<VAR>_FILE``. The supervisor removes the folder when the child ends. (A SIGKILL of the
  supervisor cannot clean up: that is why the folder lives in RAM-backed ``/dev/shm``.)

In both modes the store's own credentials (``VAULT_TOKEN``, ``BAO_TOKEN``,
``IMPROMPTU_STORE_PASSPHRASE``) are removed from the child's environment: the child gets
the secrets it was given, not the keys to the whole store.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from impromptu_ops import contract
from impromptu_ops.errors import InputError, SecretNotFound
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore

STORE_CREDENTIALS = ("VAULT_TOKEN", "BAO_TOKEN", "IMPROMPTU_STORE_PASSPHRASE",
                     "IMPROMPTU_STORE_VAULT_TOKEN")


@dataclass(frozen=True)
class Delivery:
    """What one start of the child receives.

    Attributes:
        values: ``{ENV_NAME: value}``.
        versions: ``{canonical name: store version}`` of each value delivered.
    """

    values: Mapping[str, Secret] = field(default_factory=dict)
    versions: Mapping[str, int] = field(default_factory=dict)


def collect(store: SecretStore, only: Sequence[str] | None = None) -> Delivery:
    """The secrets for the child, with the versions they were read at.

    Args:
        store: where to read.
        only: canonical names to pass (each must exist); default: those of the runtime
            keys (:data:`~impromptu_ops.contract.RUNTIME_SECRET_NAMES`) the store holds.

    Raises:
        InputError: an unknown name in ``only``.
        SecretNotFound: a name in ``only`` is not in the store.
    """
    values: dict[str, Secret] = {}
    versions: dict[str, int] = {}
    if only:
        unknown = [n for n in only if n not in contract.SECRET_ENV]
        if unknown:
            raise InputError(f"unknown secret name {unknown[0][:40]!r}: use one of "
                             + ", ".join(contract.SECRET_NAMES))
        for name in dict.fromkeys(only):
            read = store.read(name)
            values[contract.SECRET_ENV[name]] = read.value()
            versions[name] = read.version
        return Delivery(values, versions)
    # Read each by name (no listing): a token that may read only these keys is enough.
    for name in contract.RUNTIME_SECRET_NAMES:
        with contextlib.suppress(SecretNotFound):  # not stored, or its current version deleted
            read = store.read(name)
            values[contract.SECRET_ENV[name]] = read.value()
            versions[name] = read.version
    return Delivery(values, versions)


def current_versions(store: SecretStore, names: Sequence[str]) -> dict[str, int]:
    """``{name: current version}`` from the store's metadata (no value is read).

    Raises:
        StoreError: the store cannot be read (a missing secret reads as version 0).
    """
    found: dict[str, int] = {}
    for name in names:
        try:
            found[name] = store.metadata(name).current_version
        except SecretNotFound:
            found[name] = 0
    return found


def child_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` without the store's credentials, plus ``extra``. Pure."""
    env = {k: v for k, v in base.items() if k not in STORE_CREDENTIALS}
    env.update(extra)
    return env


def default_files_parent() -> Path:
    """``/dev/shm`` when usable (RAM), else ``$XDG_RUNTIME_DIR``, else the temp folder."""
    # S108: we only ever create a fresh mkdtemp (0700) folder inside it.
    for candidate in ("/dev/shm", os.environ.get("XDG_RUNTIME_DIR", "")):  # noqa: S108
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path(tempfile.gettempdir())


def write_secret_files(folder: Path, secrets: Mapping[str, Secret]) -> dict[str, str]:
    """Write one 0400 file per secret into ``folder``; return the env the child gets."""
    extra = {"IMPROMPTU_SECRETS_DIR": str(folder)}
    for env_name, value in secrets.items():
        path = folder / env_name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o400)
        try:
            os.write(fd, value.reveal().encode("utf-8"))
        finally:
            os.close(fd)
        extra[f"{env_name}_FILE"] = str(path)
    return extra


def private_folder(parent: Path) -> Path:
    """A fresh 0700 folder inside ``parent`` for one start's secret files.

    Raises:
        InputError: ``parent`` is unusable.
    """
    try:
        folder = Path(tempfile.mkdtemp(prefix="impromptu-secrets-", dir=parent))
    except OSError as exc:
        raise InputError(f"cannot create a private folder in {parent}: {exc.strerror}"
                         ) from None
    os.chmod(folder, 0o700)
    return folder
