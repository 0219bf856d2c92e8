"""Private: The reload hook: a command run once a rotation has made the new key current.

Consumers that hold a copy of the key (an agent started with it in its environment, a
service that read it at boot) must reload; ``systemctl reload my-agent`` is the usual
hook. It comes from ``--on-rotate CMD`` or ``on_rotate`` in ``policies/rotation.toml``
and is copied into the rotation record, so that ``rotate resume`` after a crash runs the
same command.

Rules (all here, so that they hold for every caller):

- no shell: the command line is split with :func:`shlex.split` and executed directly;
- the key is never passed: not in argv, not in the environment. The hook gets a small
  environment (``PATH``, ``HOME``, locale, the user's session bus for ``systemctl --user``)
  plus ``IMPROMPTU_ROTATED_SECRET`` (the store name), ``IMPROMPTU_ROTATION_ID``,
  ``IMPROMPTU_ROTATION_PROVIDER`` and ``IMPROMPTU_OLD_KEY_RETIRES_AT``; a consumer reads
  the new value from the store as it does at start. Our own credentials (``VAULT_TOKEN``,
  ``IMPROMPTU_*``) are not inherited;
- a timeout (``on_rotate_timeout_seconds``): the hook is killed when it runs longer;
- its output is discarded (it could echo anything); the result is one short line.

This module runs the command and reports; whether a failure fails the run is the
engine's decision.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from impromptu_ops.errors import ConfigError

# Inherited from our environment (nothing that can carry a credential).
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME",
                  "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_COMMAND_CHARS = 4096


def parse_command(text: str, where: str = "on_rotate") -> tuple[str, ...]:
    """Split a hook command line (no shell). ``""`` means no hook.

    Raises:
        ConfigError: unbalanced quotes, a NUL, or an over-long command.
    """
    if len(text) > MAX_COMMAND_CHARS or "\x00" in text:
        raise ConfigError(f"{where}: not a usable command line")
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", hint="quote it like a shell word list, "
                          "e.g. systemctl reload my-agent") from None


@dataclass(frozen=True)
class HookResult:
    ok: bool
    detail: str  # "exit 0 in 0.3s", "exit 3 in 1.2s", "timed out after 30s", "not found"

    def as_record(self) -> str:
        return "ok" if self.ok else f"failed: {self.detail}"


def hook_env(facts: Mapping[str, str], base: Mapping[str, str] | None = None
             ) -> dict[str, str]:
    """The hook's whole environment: a few harmless variables plus ``facts``."""
    source = os.environ if base is None else base
    env = {k: source[k] for k in PASSED_THROUGH if k in source}
    env.update(facts)
    return env


def run_hook(command: str, timeout: float, facts: Mapping[str, str]) -> HookResult:
    """Run ``command`` (split, no shell) with :func:`hook_env` and a timeout."""
    argv = parse_command(command)
    if not argv:
        return HookResult(True, "no hook")
    started = time.monotonic()
    try:
        proc = subprocess.run(  # an operator-configured command, no shell
            argv, env=hook_env(facts), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, timeout=timeout if timeout > 0 else None,
            check=False, close_fds=True)
    except subprocess.TimeoutExpired:
        return HookResult(False, f"timed out after {timeout:g}s")
    except FileNotFoundError:
        return HookResult(False, f"{argv[0]!r} not found")
    except OSError as exc:
        return HookResult(False, f"could not start {argv[0]!r}: {exc.strerror or exc}")
    took = time.monotonic() - started
    if proc.returncode != 0:
        what = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                else f"exit {proc.returncode}")
        return HookResult(False, f"{what} after {took:.1f}s")
    return HookResult(True, f"exit 0 after {took:.1f}s")
