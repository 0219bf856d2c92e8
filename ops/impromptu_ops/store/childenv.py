"""Hand secrets to a child process without a shell file or argv ever seeing them.

Two ways:

- **environment** (:func:`exec_with_secrets`): the current process is *replaced* by the
  command (``os.execvpe``) with ``IMPROMPTU_API_KEY``, ``OPENROUTER_API_KEY``... (the names
  the original scripts read, :data:`impromptu_ops.contract.SECRET_ENV`) added to its
  environment. Nothing is written anywhere and no wrapper process lingers.
- **files** (:func:`run_with_secret_files`): for programs that read keys from files. A
  fresh private folder (0700, under ``/dev/shm`` when available: memory, not disk) gets one
  0400 file per secret named like the variable; the child gets ``IMPROMPTU_SECRETS_DIR``
  and ``<VAR>_FILE`` pointing at them. We run the child (not exec), forward SIGINT,
  SIGTERM and SIGHUP to it, and remove the folder when it ends, even on failure or
  signal. Its exit code is returned. (A SIGKILL of this process cannot clean up: that is
  why the folder lives in RAM-backed ``/dev/shm``, cleared at reboot.)

In both modes the store's own credentials (``VAULT_TOKEN``, ``BAO_TOKEN``,
``IMPROMPTU_STORE_PASSPHRASE``) are removed from the child's environment: the child gets
the secrets it was given, not the keys to the whole store.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from impromptu_ops import contract
from impromptu_ops.errors import InputError, SecretNotFound
from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore

STORE_CREDENTIALS = ("VAULT_TOKEN", "BAO_TOKEN", "IMPROMPTU_STORE_PASSPHRASE",
                     "IMPROMPTU_STORE_VAULT_TOKEN")
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def collect(store: SecretStore, only: Sequence[str] | None = None) -> dict[str, Secret]:
    """``{ENV_NAME: value}`` for the child.

    Args:
        store: where to read.
        only: canonical names to pass (each must exist); default: every canonical secret
            the store holds.

    Raises:
        InputError: an unknown name in ``only``.
        SecretNotFound: a name in ``only`` is not in the store.
    """
    if only:
        unknown = [n for n in only if n not in contract.SECRET_ENV]
        if unknown:
            raise InputError(f"unknown secret name {unknown[0][:40]!r}: use one of "
                             + ", ".join(contract.SECRET_NAMES))
        return {contract.SECRET_ENV[n]: store.read(n).value() for n in only}
    found: dict[str, Secret] = {}
    present = set(store.list())
    for name in contract.SECRET_NAMES:
        if name in present:
            with contextlib.suppress(SecretNotFound):  # current version deleted
                found[contract.SECRET_ENV[name]] = store.read(name).value()
    return found


def child_environment(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``base`` without the store's credentials, plus ``extra``. Pure."""
    env = {k: v for k, v in base.items() if k not in STORE_CREDENTIALS}
    env.update(extra)
    return env


def exec_with_secrets(argv: Sequence[str], secrets: Mapping[str, Secret],
                      base_env: Mapping[str, str] | None = None) -> NoReturn:
    """Replace this process with ``argv``, secrets in its environment.

    Raises:
        InputError: no command, or the command cannot be executed.
    """
    if not argv:
        raise InputError("no command given: use `secrets exec -- COMMAND ...`")
    env = child_environment(os.environ if base_env is None else base_env,
                            {k: v.reveal() for k, v in secrets.items()})
    try:
        os.execvpe(argv[0], list(argv), env)  # noqa: S606 - the operator's own command
    except OSError as exc:
        raise InputError(f"cannot run {argv[0]!r}: {exc.strerror}") from None


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


def run_with_secret_files(argv: Sequence[str], secrets: Mapping[str, Secret],
                          parent: Path | None = None,
                          base_env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` with secrets as files in a private folder removed afterwards.

    Returns:
        The child's exit code (128 + N when a signal N ended it).

    Raises:
        InputError: no command, the command cannot be started, or ``parent`` is unusable.
    """
    if not argv:
        raise InputError("no command given: use `secrets exec --files DIR -- COMMAND ...`")
    parent = parent or default_files_parent()
    child: subprocess.Popen[bytes] | None = None
    caught: list[int] = []
    previous: dict[signal.Signals, Any] = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    # Handlers first: a signal at any later instant still reaches the cleanup below.
    for sig in FORWARDED_SIGNALS:
        previous[sig] = signal.signal(sig, forward)
    folder: Path | None = None
    try:
        try:
            folder = Path(tempfile.mkdtemp(prefix="impromptu-secrets-", dir=parent))
        except OSError as exc:
            raise InputError(f"cannot create a private folder in {parent}: {exc.strerror}"
                             ) from None
        os.chmod(folder, 0o700)
        extra = write_secret_files(folder, secrets)
        env = child_environment(os.environ if base_env is None else base_env, extra)
        if caught:  # stopped before the child existed: do not start it
            return 128 + caught[0]
        try:
            child = subprocess.Popen(list(argv), env=env)
        except OSError as exc:
            raise InputError(f"cannot run {argv[0]!r}: {exc.strerror}") from None
        if caught and child.poll() is None:  # a signal raced the start
            child.send_signal(caught[0])
        code = child.wait()
        return 128 - code if code < 0 else code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
