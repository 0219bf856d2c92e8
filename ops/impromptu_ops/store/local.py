"""Private: The local encrypted store: one authenticated file, KV v2 semantics, safe writers.

This is the default backend when no Vault is configured. It owns the file I/O around the
pure parts (:mod:`.sealed` for the envelope, :mod:`.model` for KV v2 behaviour):

- the key: a random 32-byte key file, created 0600 with ``O_EXCL`` and refused when it is
  readable by others, or a passphrase stretched with scrypt (the header says which);
- writes: under an exclusive ``flock`` on ``<store>.lock`` (waiting up to
  ``store.lock_timeout``), re-read, modify, then an atomic replace (temp file, fsync,
  rename, fsync of the folder) so a crash leaves the old or the new file, never a mix;
- reads take no lock: a rename is atomic, so a reader sees one whole file;
- a file that fails authentication, is truncated or has a bad header raises
  :class:`~impromptu_ops.errors.TamperedStore` (exit 65). It is never reset or rewritten;
- rollback: authentication alone cannot tell an older, genuine copy of the file from the
  current one. Each save raises a ``generation`` inside the authenticated body and then
  records it in a small counter file kept beside the key (:attr:`LocalStore.counter_path`,
  not beside the store, so a backup or a copy of the data folder does not carry it). A
  store whose generation is below the counter, or a missing store whose counter says it
  was written, is refused as :class:`~impromptu_ops.errors.TamperedStore`. The counter is
  written after the store and read before it, so a crash or a concurrent writer never
  makes an honest store look rolled back. Someone who can rewrite the key's folder can
  also lower the counter: this guards against a restored or swapped store file, not
  against an attacker who owns the key.

It does not own the protocol (:mod:`.base`) nor the choice of backend (:mod:`.factory`).
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from impromptu_ops import atomic, files
from impromptu_ops.errors import ConfigError, LocalIOError, LockBusy, StoreError, TamperedStore
from impromptu_ops.secret import Secret
from impromptu_ops.store import sealed
from impromptu_ops.store.base import SecretMetadata, SecretVersion, StoreStatus, check_name
from impromptu_ops.store.model import KvDocument

log = logging.getLogger(__name__)
MAX_STORE_BYTES = 64 * 1024 * 1024  # far beyond any real store; refuses absurd files
MAX_COUNTER_BYTES = 64


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_private(path: Path, what: str) -> os.stat_result:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{what} {path} is not a regular file")
    if st.st_uid != os.getuid():
        raise ConfigError(f"{what} {path} belongs to another user")
    if st.st_mode & 0o077:
        raise ConfigError(f"{what} {path} is readable by others (mode {st.st_mode & 0o777:o})",
                          hint=f"chmod 600 {path}")
    return st


def kdf_of(path: Path) -> str | None:
    """The key derivation an existing store uses (``keyfile``/``scrypt``), ``None`` if none.

    Lets the CLI prompt for a passphrase only when the store needs one.

    Raises:
        TamperedStore: the header is unreadable.
    """
    head = files.read_optional(path, what="the local store", error=StoreError, head=True,
                               limit=len(sealed.MAGIC) + sealed.MAX_HEADER + 1)
    if head is None:
        return None
    return sealed.parse_header(head)[0].kdf


class LocalStore:
    """A :class:`~impromptu_ops.store.base.SecretStore` in one encrypted file.

    Args:
        path: the store file.
        key_path: the key file (used when no passphrase is given).
        passphrase: use scrypt instead of a key file. An existing store decides by its
            header: a passphrase store cannot be opened with a key file and vice versa.
        max_versions: versions kept per secret unless the secret sets its own.
        keep_good: see :func:`~impromptu_ops.store.base.pruning_refusal`.
        lock_timeout: how long a writer waits for another writer.
        scrypt_n: the scrypt cost for a NEW passphrase store.
        clock: injected for tests.
    """

    def __init__(
        self,
        path: Path,
        key_path: Path,
        *,
        passphrase: Secret | None = None,
        max_versions: int = 10,
        keep_good: int = 2,
        lock_timeout: float = 10.0,
        scrypt_n: int = 2**15,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.path = path
        self.key_path = key_path
        self._passphrase = passphrase
        self._max_versions = max_versions
        self._keep_good = keep_good
        self._lock_timeout = lock_timeout
        self._scrypt_n = scrypt_n
        self._clock = clock
        self._keys: dict[sealed.Header, bytes] = {}

    @property
    def description(self) -> str:
        return f"local {self.path}"

    @property
    def lock_path(self) -> Path:
        """The writers' lock file (``<store>.lock``); holding its flock blocks writers."""
        return self.path.with_name(self.path.name + ".lock")

    @property
    def counter_path(self) -> Path:
        """The rollback counter: beside the key, named after this store's absolute path."""
        tag = hashlib.sha256(os.fsencode(os.path.abspath(self.path))).hexdigest()[:12]
        return self.key_path.with_name(f"{self.key_path.name}.{tag}.generation")

    def _restore_hint(self) -> str:
        return (f"it was NOT reset; restore the newest copy of {self.path}, or if you put "
                f"this copy back on purpose, delete {self.counter_path} to accept it")

    def _read_counter(self) -> int:
        """The newest generation this host saved (0 when no counter exists yet)."""
        path = self.counter_path
        try:
            raw = files.read_optional(path, what="the store's rollback counter",
                                      limit=MAX_COUNTER_BYTES, error=StoreError, nofollow=True)
        except StoreError as exc:
            raise TamperedStore(exc.message, hint=f"delete {path} if you trust the store "
                                "file as it is") from None
        if raw is None:
            return 0
        text = raw.decode("ascii", "replace").strip()
        if not text.isdigit() or len(text) > 20:
            raise TamperedStore(f"the store's rollback counter {path} is malformed",
                                hint=f"delete {path} if you trust the store file as it is")
        return int(text)

    def _write_counter(self, generation: int) -> None:
        # The store is already saved: failing the write now would report a landed write
        # as failed. Without the counter only the rollback check is weaker; say so. A
        # read-only key folder is expected (a systemd credential passed with
        # LoadCredential=): the operator's own counter beside the real key still holds.
        try:
            atomic.private_dir(self.counter_path.parent)
            atomic.write_bytes(self.counter_path, f"{generation}\n".encode())
        except OSError as exc:
            expected = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            log.log(logging.INFO if expected else logging.WARNING,
                    "cannot record the store's rollback counter in %s (%s): an older copy "
                    "of the store would not be noticed", self.counter_path, exc.strerror)

    # -- key handling -------------------------------------------------------------------
    def _key_for(self, header: sealed.Header, create: bool) -> bytes:
        cached = self._keys.get(header)
        if cached is not None:
            return cached
        if header.kdf == "scrypt":
            if self._passphrase is None:
                raise ConfigError(f"the local store {self.path} is protected by a passphrase",
                                  hint="set IMPROMPTU_STORE_PASSPHRASE or enter it when asked")
            key = sealed.derive_key(header, self._passphrase.reveal())
        else:
            key = self._read_key_file(create)
        self._keys[header] = key
        return key

    def _read_key_file(self, create: bool) -> bytes:
        if create and not self.key_path.exists():
            raw = os.urandom(sealed.KEY_BYTES)
            with contextlib.suppress(FileExistsError):  # a racing writer made it first
                atomic.create_exclusive(self.key_path, base64.b64encode(raw) + b"\n")
        try:
            _check_private(self.key_path, "store key file")
            text = files.read_regular(self.key_path, what="store key file", limit=1024,
                                      error=ConfigError, nofollow=True)
        except FileNotFoundError:
            raise ConfigError(
                f"the local store {self.path} exists but its key file {self.key_path} is "
                "missing", hint="restore the key file from your backup",
            ) from None
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError:
            key = b""
        if len(key) != sealed.KEY_BYTES:
            raise ConfigError(f"store key file {self.key_path} does not hold a 32-byte key")
        return key

    def _new_header(self) -> sealed.Header:
        if self._passphrase is not None:
            return sealed.new_scrypt_header(self._scrypt_n)
        return sealed.Header("keyfile")

    # -- file I/O -----------------------------------------------------------------------
    def _load(self) -> tuple[KvDocument, sealed.Header | None]:
        # The counter first: a save renames the store before it raises the counter, so
        # any counter value read here is already matched by the store read below.
        floor = self._read_counter()
        got = files.read_with_stat(self.path, what="the local store", limit=MAX_STORE_BYTES,
                                   error=StoreError, nofollow=True)
        if got is None:
            if floor:
                raise TamperedStore(
                    f"the local store {self.path} is missing, but it was saved "
                    f"{floor} times on this host", hint=self._restore_hint())
            return KvDocument(None, self._max_versions, self._keep_good), None
        blob, st = got
        if st.st_mode & 0o077:
            raise ConfigError(f"the local store {self.path} is readable by others",
                              hint=f"chmod 600 {self.path}")
        if not blob:
            raise TamperedStore(f"the local store {self.path} is empty (truncated)",
                                hint="restore it from a backup; it was NOT reset")
        header, offset = sealed.parse_header(blob)
        # An existing store never gets a new key: a missing key file is an error to fix
        # (restore it), not something to paper over with a fresh key.
        body = sealed.unseal(blob, self._key_for(header, create=False), offset)
        doc = KvDocument.from_bytes(body, self._max_versions, self._keep_good)
        if doc.generation < floor:
            raise TamperedStore(
                f"the local store {self.path} is an older copy (generation "
                f"{doc.generation}, but generation {floor} was saved on this host): "
                "refusing a rollback", hint=self._restore_hint())
        return doc, header

    def _save(self, doc: KvDocument, header: sealed.Header | None) -> None:
        header = header or self._new_header()
        key = self._key_for(header, create=True)
        generation = doc.next_generation()
        try:
            atomic.write_bytes(self.path, sealed.seal(header, key, doc.to_bytes()))
        except LocalIOError as exc:  # disk full, read-only: the old store is untouched
            raise StoreError(f"cannot save the local store: {exc.message}; the previous "
                             "version is untouched", hint=exc.hint) from None
        self._write_counter(generation)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.lock_path
        atomic.private_dir(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            deadline = time.monotonic() + self._lock_timeout
            delay = 0.005
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockBusy(f"another writer holds {lock_path}",
                                       hint="try again in a moment") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _mutate(self, name: str, change: Callable[[KvDocument], int | None]) -> int | None:
        check_name(name)
        with self._locked():
            doc, header = self._load()
            result = change(doc)
            self._save(doc, header)
            return result

    # -- SecretStore ----------------------------------------------------------------------
    def read(self, name: str, version: int | None = None) -> SecretVersion:
        check_name(name)
        return self._load()[0].read(name, version)

    def write(self, name: str, data: Mapping[str, Secret], cas: int | None) -> int:
        now = self._clock()
        new = self._mutate(name, lambda doc: doc.write(name, data, cas, now))
        assert new is not None
        return new

    def metadata(self, name: str) -> SecretMetadata:
        check_name(name)
        return self._load()[0].metadata(name)

    def set_custom_metadata(self, name: str, custom: Mapping[str, str]) -> None:
        now = self._clock()
        self._mutate(name, lambda doc: doc.set_custom(name, custom, now))

    def set_max_versions(self, name: str, max_versions: int) -> None:
        now = self._clock()
        self._mutate(name, lambda doc: doc.set_max_versions(name, max_versions, now))

    def list(self, prefix: str = "") -> builtins.list[str]:
        return self._load()[0].list(prefix)

    def delete(self, name: str, versions: builtins.list[int] | None = None) -> None:
        now = self._clock()
        self._mutate(name, lambda doc: doc.delete(name, versions, now))

    def undelete(self, name: str, versions: builtins.list[int]) -> None:
        self._mutate(name, lambda doc: doc.undelete(name, versions))

    def rollback(self, name: str, version: int) -> int:
        now = self._clock()

        def change(doc: KvDocument) -> int:
            old = doc.read(name, version)
            return doc.write(name, old.data, doc.metadata(name).current_version, now)

        new = self._mutate(name, change)
        assert new is not None
        return new

    def check(self) -> StoreStatus:
        doc, header = self._load()
        if header is None:
            return StoreStatus(f"local store {self.path} (empty, not created yet)")
        return StoreStatus(
            f"local store {self.path}: {len(doc.list())} secrets, {header.kdf} key, ok")
