"""Private: the settings schema: how one setting's raw value is read and checked.

Types come from the section dataclasses of :mod:`impromptu_ops.settings`; this module turns
a raw value (a flag's or an environment variable's string, a TOML value) into that type and
checks it: numbers finite and in range (:data:`RANGES`, or a default range by kind and name),
strings without control characters and within :data:`CHOICES`, URLs parsed, paths absolute,
plus :data:`CHECKS` for what a range cannot say. A bad value is a :class:`ConfigError` naming
the key and its source. Pure: no file, no environment, no network.
"""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

from impromptu_ops import contract
from impromptu_ops.errors import ConfigError
from impromptu_ops.secret import Secret

MiB = 1024 * 1024

# -- the schema ---------------------------------------------------------------------------
# Types come from the section dataclasses: a field added there is type-checked here with no
# further work. Numbers get a default range by kind and name, refined by RANGES; strings are
# checked by CHOICES and by name (``*_url``/``*_addr`` must parse as http(s) URLs).

MAX_CONFIG_BYTES = 1 * MiB
MAX_SECONDS = 366 * 24 * 3600.0  # no duration, timeout or deadline of ours exceeds a year
MAX_INT = 2**63 - 1
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
DEFAULT_AGENT = "default"

# Inclusive (low, high) bounds where the default for the kind does not fit.
RANGES: dict[str, tuple[float, float]] = {
    "platform.max_retries": (0, 100),
    "platform.max_response_bytes": (1024, 1 << 30),
    "pow.workers": (0, 1024),
    "pow.max_difficulty_bits": (1, 64),
    "pow.max_memory_mib": (1, 1 << 20),
    "pow.memory_budget_mib": (1, 1 << 20),
    "pow.max_rounds": (1, 100_000),
    "pow.calibration_seconds": (0.01, 600),
    "store.max_versions": (0, 10_000),  # 0: keep every version (as Vault KV v2 does)
    "store.vault_min_versions_kept": (1, 10_000),
    "store.scrypt_n": (2**10, 2**24),
    "chain.chain_id": (1, 2**53),
    "chain.decimals": (0, 77),  # 10**77 < 2**256
    "chain.confirmations": (0, 100_000),
    "chain.max_block_range": (1, 10_000_000),
    "chain.rate_limit_retries": (0, 100),
    "chain.registration_fee": (0, 2**256 - 1),
    "chain.max_response_bytes": (1024, 1 << 32),
    "gate.pager_lines": (1, 100_000),
    "gate.max_files": (1, 1_000_000),
    "rotation.create_attempts": (1, 100),
    # merged from the branches that added these sections/fields (exec, pings, gate, chain)
    "exec.poll_seconds": (0.05, 3600),
    "exec.drain_seconds": (0, 600),
    "exec.quiet_seconds": (0.01, 600),
    "jobs.ping_attempts": (1, 20),
    "jobs.ping_backoff": (0, 3600),
    "gate.max_clock_skew": (0, 7 * 24 * 3600),
    "chain.display_decimals": (0, 77),
    "chain.max_filter_wallets": (1, 100_000),
    "fleet.concurrency": (1, 1024),
    "fleet.max_requests": (1, 4096),
    "fleet.shards": (1, 100_000),
    "fleet.rotate_deadline": (1, 24 * 3600),
}

# Numbers that are limits must be positive (zero would disable or break the thing limited):
# a name that says "limit" makes the lower bound exclusive unless RANGES says otherwise.
_POSITIVE_NAME = re.compile(r"^max_|_timeout$|deadline$|_bytes$|_mib$|_cap$|_base$|^lease_")

CHOICES: dict[str, tuple[str, ...]] = {
    "platform.path_prefix": tuple(contract.PATH_PREFIXES),
    "store.backend": ("", "local", "vault"),
    "pow.backend": ("auto", "libsodium", "cryptography", "argon2-cffi"),
}

# A path field whose name ends like this is a file, not a folder (``/`` has no file name).
_FILE_NAME = re.compile(r"(_file|_path|_cert)$")

# A string field whose name ends like this is a URL: empty (unset) or http(s) with a host.
_URL_NAME = re.compile(r"(_url|_addr)$")

# Extra checks that a range cannot express: key -> (predicate, what it must be).
CHECKS: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "store.scrypt_n": (lambda n: n & (n - 1) == 0, "a power of two"),
    # an agent name is a Vault path segment and a folder name: a plain name, nothing else
    "store.agent": (lambda name: bool(AGENT_NAME.match(name)),
                    "a plain name (letters, digits, - and _; at most 63)"),
}


def kind_name(raw: Any) -> str:
    return "a table" if isinstance(raw, dict) else "a list" if isinstance(raw, list) \
        else type(raw).__name__


def _bounds(key: str, hint: Any) -> tuple[float, float, bool]:
    """(low, high, low_exclusive) for the number setting ``key``."""
    if key in RANGES:
        low, high = RANGES[key]
        return low, high, False
    positive = bool(_POSITIVE_NAME.search(key.split(".", 1)[1]))
    high = MAX_SECONDS if hint is float else float(MAX_INT)
    return 0.0, high, positive


def check_url(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) URL, or ``None`` when it is."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "not an http(s) URL"
    if not parts.hostname:
        return "no host"
    if any(c.isspace() for c in url):
        return "contains white space"
    return None


def coerce(key: str, hint: Any, raw: Any, src: str) -> Any:
    """``raw`` from ``src`` as the type ``hint`` of setting ``key``, checked against the
    schema.

    Strings from a flag or the environment are parsed; values from the TOML file must
    already have the right TOML type (``5`` is not a path, ``"5"`` is not a number).

    Raises:
        ConfigError: naming the key and its source; a secret's value is never shown.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or raw == "":
            return None
        return coerce(key, args[0], raw, src)
    shown = "****" if hint is Secret else repr(raw)[:60]
    where = f"setting {key}"
    origin_note = f" (from {src})"
    from_text = isinstance(raw, str) and not src.startswith("file")

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where}: cannot use {shown}: {why}{origin_note}")

    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if from_text:
            text = raw.strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
        raise bad("expected true or false")
    if hint in (int, float):
        value: float
        if isinstance(raw, bool):
            raise bad("expected a number, got a boolean")
        if hint is int:
            if isinstance(raw, int):
                value = raw
            elif from_text:
                try:
                    value = int(raw.strip(), 10)
                except ValueError:
                    raise bad("expected a whole number") from None
            else:
                raise bad(f"expected a whole number, got {kind_name(raw)}")
        else:
            if isinstance(raw, int | float):
                value = float(raw)
            elif from_text:
                try:
                    value = float(raw.strip())
                except ValueError:
                    raise bad("expected a number") from None
            else:
                raise bad(f"expected a number, got {kind_name(raw)}")
            if not math.isfinite(value):
                raise bad("must be a finite number")
        low, high, exclusive = _bounds(key, hint)
        if value < low or (exclusive and value <= low):
            floor = "positive" if exclusive or (hint is int and low == 1) else f"at least {low:g}"
            raise ConfigError(f"{where}: must be {floor}, got {shown}{origin_note}")
        if value > high:
            raise ConfigError(f"{where}: must be at most {high:g}, got {shown}{origin_note}")
        if key in CHECKS and not CHECKS[key][0](value):
            raise ConfigError(f"{where}: must be {CHECKS[key][1]}, got {shown}{origin_note}")
        return value
    if hint is Secret:
        if isinstance(raw, Secret):
            return raw
        if not isinstance(raw, str):
            raise bad(f"expected a string, got {kind_name(raw)}")
        if CONTROL_CHARS.search(raw):
            raise bad("contains control characters")
        return Secret(raw, key)
    if hint in (str, Path):
        if hint is Path and isinstance(raw, PurePath):
            raw = str(raw)
        if not isinstance(raw, str):
            raise bad(f"expected a {'path' if hint is Path else 'string'}, "
                      f"got {kind_name(raw)}")
        if CONTROL_CHARS.search(raw):
            raise bad("contains control characters")
        if hint is Path:
            path = Path(raw).expanduser()
            if not path.is_absolute():
                if src != "flag":
                    raise bad("a relative path (use an absolute path; ~ is allowed)")
                path = path.absolute()  # a flag is relative to the operator's folder
            if _FILE_NAME.search(key) and path.name in ("", ".", ".."):
                raise bad("names a folder, and a file is needed here")
            return path
        if key in CHECKS and not CHECKS[key][0](raw):
            raise ConfigError(f"{where}: must be {CHECKS[key][1]}, got {shown}{origin_note}")
        if key in CHOICES and raw not in CHOICES[key]:
            raise ConfigError(f"{where}: {shown} is not one of "
                              + ", ".join(repr(c) for c in CHOICES[key]) + origin_note)
        if raw and _URL_NAME.search(key):
            why = check_url(raw)
            if why is not None:
                # a URL may carry a credential in its path: show only what mask_url keeps
                raise ConfigError(f"{where}: {mask_url(raw, path=True)!r} is not a usable "
                                  f"URL: {why}{origin_note}")
        return raw
    raise ConfigError(f"{where}: unsupported setting type {hint}{origin_note}")


def supported(hint: Any) -> bool:
    """Whether :func:`coerce` can read a field of type ``hint`` (a test checks every one)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return len(args) == 1 and supported(args[0])
    return hint in (bool, int, float, str, Path, Secret)


def mask_url(url: str, *, path: bool) -> str:
    """A URL fit to show: user info always masked; path and query too when ``path``.

    ``https://base-mainnet.example/v2/KEY`` -> ``https://base-mainnet.example/****``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "****"
    if not parts.scheme or not parts.netloc:
        return "****" if path else url
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = ("****@" if "@" in parts.netloc else "") + host + (f":{port}" if port else "")
    if path:
        hidden = parts.path not in ("", "/") or parts.query or parts.fragment
        return f"{parts.scheme}://{netloc}" + ("/****" if hidden else parts.path)
    if "@" not in parts.netloc:
        return url
    rest = url.split(parts.netloc, 1)[1]
    return f"{parts.scheme}://{netloc}{rest}"
