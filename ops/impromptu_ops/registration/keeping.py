"""Keeping the secrets a registration returns: the store first, else an emergency file.

A key the platform shows once must never be lost. :func:`keep_secrets` first seals every
secret into an *emergency file* (a local write of a few milliseconds, before the store's
network round trips), then writes each secret to the configured store (check-and-set
``cas=0``: never over an existing secret) and reads each one back, and only then deletes
the emergency file. A process killed at any instant after the seal (even between the API
key and the wallet key) leaves the file, which the next ``register`` run finds and names.
If the store fails (cannot be opened, refuses, or reads back something else) the file
stays and :class:`SecretsNotStored` names it; the caller must report that, exit non-zero
and do nothing else.

The emergency file is AES-256-GCM sealed JSON, 0600 in a 0700 folder under the state
directory. Its key is a separate random 32-byte key file (``<config_dir>/emergency.key``,
0600, created once with ``O_EXCL``): a copy or backup of the state folder alone reveals
nothing. The header (format, agent id, creation time, secret names, key file) is
authenticated as associated data. ``impromptu-ops register recover FILE`` (:func:`recover`)
decrypts it, writes the secrets to the store, reads them back, and only then deletes it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from impromptu_ops import atomic, files
from impromptu_ops.errors import (
    ConfigError,
    InputError,
    OpsError,
    SecretNotFound,
    StoreError,
    TamperedStore,
)
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings
from impromptu_ops.store.base import SecretStore

FORMAT = "impromptu-ops-emergency/1"
KEY_BYTES = 32
MAX_FILE_BYTES = 1024 * 1024
VALUE_FIELD = "value"  # the field of a store entry that holds the secret itself

StoreOpener = Callable[[], SecretStore]

# The one test-only hook: a test sets this to a pause point name to SIGKILL the process
# there (tests/test_register_kill.py). Unset in every real run; it only ever sleeps.
TEST_PAUSE_ENV = "IMPROMPTU_TEST_PAUSE_AFTER"
log = logging.getLogger(__name__)


def pause_for_test(point: str) -> None:
    """Sleep (to be killed) when the test hook names ``point``; a no-op otherwise."""
    if os.environ.get(TEST_PAUSE_ENV) == point:
        log.warning("test pause after %s (pid %d)", point, os.getpid())
        time.sleep(3600)


class SecretsNotStored(StoreError):
    """The store failed; the secrets are in :attr:`emergency_file`. Exit 74."""

    def __init__(self, message: str, *, emergency_file: Path, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.emergency_file = emergency_file


@dataclass(frozen=True)
class Kept:
    """Where the secrets went."""

    where: str  # the store's description
    names: tuple[str, ...]


def emergency_key_path(settings: Settings) -> Path:
    return settings.paths.config_dir / "emergency.key"


def emergency_dir(settings: Settings) -> Path:
    return settings.paths.state_dir / "emergency"


def _load_or_create_key(path: Path) -> bytes:
    with contextlib.suppress(FileExistsError):
        atomic.create_exclusive(path, os.urandom(KEY_BYTES))
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.getuid():
        raise ConfigError(f"emergency key {path} must be a regular 0600 file of this user")
    key = files.read_regular(path, what="emergency key", limit=KEY_BYTES + 1,
                             error=ConfigError, nofollow=True)
    if len(key) != KEY_BYTES:
        raise ConfigError(f"emergency key {path} is not {KEY_BYTES} bytes")
    return key


def _aad(header: Mapping[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def write_emergency(settings: Settings, secrets: Mapping[str, Secret], agent_id: str) -> Path:
    """Seal ``secrets`` into a new emergency file and return its path."""
    key = _load_or_create_key(emergency_key_path(settings))
    now = datetime.now(UTC)
    header = {
        "format": FORMAT,
        "agentId": agent_id,
        "createdAt": now.isoformat().replace("+00:00", "Z"),
        "names": sorted(secrets),
        "keyFile": str(emergency_key_path(settings)),
    }
    nonce = os.urandom(12)
    plain = json.dumps({name: s.reveal() for name, s in secrets.items()}).encode()
    sealed = AESGCM(key).encrypt(nonce, plain, _aad(header))
    doc = {**header, "nonce": base64.b64encode(nonce).decode(),
           "ciphertext": base64.b64encode(sealed).decode()}
    folder = atomic.private_dir(emergency_dir(settings))
    safe_id = "".join(c for c in agent_id if c.isalnum() or c in "-_")[:64] or "unknown"
    path = folder / f"register-{safe_id}-{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    atomic.create_exclusive(path, (json.dumps(doc, indent=2) + "\n").encode())
    return path


def read_emergency(settings: Settings, path: Path) -> tuple[str, dict[str, Secret]]:
    """Open an emergency file: ``(agent id, {name: Secret})``.

    Raises:
        InputError: unreadable or not an emergency file.
        TamperedStore: authentication failed (modified, or another key).
    """
    raw = files.read_regular(path, what="emergency file", limit=MAX_FILE_BYTES)
    doc = files.parse_json(raw, what=f"emergency file {path}")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"{path} is not an impromptu-ops emergency file")
    header = {k: doc.get(k) for k in ("format", "agentId", "createdAt", "names", "keyFile")}
    key_path = Path(str(header["keyFile"]))
    key = files.read_regular(key_path, what="the emergency key", limit=KEY_BYTES + 1)
    try:
        nonce = base64.b64decode(str(doc.get("nonce")), validate=True)
        sealed = base64.b64decode(str(doc.get("ciphertext")), validate=True)
        plain = json.loads(AESGCM(key).decrypt(nonce, sealed, _aad(header)))
    except OSError as exc:
        raise InputError(f"cannot read the emergency key {key_path}: {exc.strerror}") from None
    except (InvalidTag, ValueError) as exc:
        raise TamperedStore(f"emergency file {path} failed authentication "
                            f"({type(exc).__name__}): modified, or sealed with another key"
                            ) from None
    if not isinstance(plain, dict) or not all(isinstance(v, str) for v in plain.values()):
        raise TamperedStore(f"emergency file {path} holds an unexpected payload")
    return str(header["agentId"]), {n: Secret(v, n) for n, v in plain.items()}


def _store_all(store: SecretStore, secrets: Mapping[str, Secret]) -> None:
    """Write each secret once (cas=0) and read it back; an identical existing value is ok."""
    for n, (name, value) in enumerate(secrets.items()):
        if n:
            pause_for_test("store-write")  # one secret stored, the next not yet
        try:
            current = store.read(name).data.get(VALUE_FIELD)
        except SecretNotFound:
            current = None
        if current is None:
            store.write(name, {VALUE_FIELD: value}, cas=0)
        elif current != value:
            raise StoreError(f"the store already holds a different {name}; not overwriting it")
        if store.read(name).data.get(VALUE_FIELD) != value:
            raise StoreError(f"{name} read back from the store differs from what was written")


def keep_secrets(settings: Settings, open_store: StoreOpener,
                 secrets: Mapping[str, Secret], agent_id: str) -> Kept:
    """Seal ``secrets`` into an emergency file, put them in the store, then drop the file.

    Raises:
        SecretsNotStored: the store failed; the secrets are in the emergency file it names.
        StoreError: neither the store nor the emergency file could be written (the message
            says the agent id so that the operator can ask for a new key).
    """
    path: Path | None = None
    sealing = ""
    try:  # sealed first, so that a kill during the store writes loses nothing
        path = write_emergency(settings, secrets, agent_id)
    except Exception as exc:  # the store may still work: carry on, say so if it fails too
        sealing = type(exc).__name__
    pause_for_test("sealed")
    try:
        store = open_store()
        _store_all(store, secrets)
    except Exception as exc:  # any failure: the secrets must land somewhere
        why = exc.diagnostics() if isinstance(exc, OpsError) else type(exc).__name__
    else:
        if path is not None:  # a leftover copy is harmless: the next run asks to recover it
            with contextlib.suppress(OSError):
                path.unlink()
                atomic.fsync_dir(path.parent)
        return Kept(store.description, tuple(sorted(secrets)))
    if path is None:
        raise StoreError(
            f"agent {agent_id} was registered but its secrets could not be stored ({why}) "
            f"nor written to an emergency file ({sealing})",
            hint="the key is lost: create a new key for this agent with the platform",
        )
    raise SecretsNotStored(
        f"agent {agent_id} was registered but the secret store failed ({why}); the secrets "
        f"are in the encrypted emergency file {path}",
        emergency_file=path,
        hint=f"fix the store, then run: impromptu-ops register recover {path}",
    )


def recover(settings: Settings, open_store: StoreOpener, path: Path) -> tuple[str, Kept]:
    """Move the secrets of an emergency file into the store, then delete the file.

    Returns:
        The agent id and where the secrets went.
    """
    agent_id, secrets = read_emergency(settings, path)
    store = open_store()
    _store_all(store, secrets)
    path.unlink()
    atomic.fsync_dir(path.parent)
    return agent_id, Kept(store.description, tuple(sorted(secrets)))


def pending_emergency_files(settings: Settings) -> list[Path]:
    folder = emergency_dir(settings)
    return sorted(folder.glob("register-*.json")) if folder.is_dir() else []
