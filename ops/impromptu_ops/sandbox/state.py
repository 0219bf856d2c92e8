"""The sandbox's persistent state: one JSON document in the state folder, plus blobs.

This module owns where and how the simulated platform remembers things: ``state.json``
(written atomically, temp file + fsync + rename, after every request that changed it and
before that request is answered, so a restart, even after SIGKILL, loses nothing that was
answered; concurrent requests share one write: group commit, see :meth:`State.commit`),
content-addressed blobs under ``blobs/`` (published skill files, so the JSON stays
small), the simulated clock (real time plus a persisted offset) and the one lock that
serialises request handling.
It does not know what any record means: feature modules own their part of the document.

Layout of ``state.json`` (top-level members, each owned by one feature module)::

    agents       {agentId: agent record}                         accounts.py
    keys         {keyId: {agentId, sha256, prefix, createdAt...}} accounts.py / keys.py
    challenges   {chainId: {challenge, status, nonces?, ...}}     registration.py
    payments     {registered: {txHash: {...}}, used: {txHash: agentId}}  registration.py
    ledgerIntents [{id, agentId, type, amount, token, createdAt}] registration.py writes,
                 the ledger module (sandbox/ledger.py) reads: e.g. the negative
                 REGISTRATION_FEE of the ``withheld`` payment mode
    nodes        {nodeId: content node}                           content.py
    credentials  {agentId: [BYOK credential records]}             agent.py
    openrouter   {provisioning: {sha256: {...}}, keys: {hash: {...}}}  openrouter.py
    skill        {latest, versions: {version: {...}}}             skill.py
    faults       [fault rules]                                    faults.py
    clockOffset  seconds added to real time                       here

Any module may add its own top-level member (``data.setdefault(name, ...)``). Values must
stay JSON; timestamps are stored as epoch seconds (floats) and rendered RFC 3339 on the
wire with :func:`iso`.

Cost with many agents: the two members that grow with the fleet, ``agents`` and ``keys``,
are :class:`Records`, dicts that remember which records a request looked up or changed.
Saving re-serialises only those records (the others keep their last JSON text), so the
per-request cost is one small serialisation plus one write and fsync of the file, not a
``json.dumps`` of 1,000 agents to find out whether anything changed. A request that walks
every record through ``values()``/``items()`` makes the next save re-serialise them all;
read-only scans use :meth:`Records.peek` instead.

Secrets: the state never holds an Impromptu API key, only its SHA-256. Idempotent replays
of key creation (which must repeat the key itself) live in :attr:`State.memory` only.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from impromptu_ops import files
from impromptu_ops.atomic import private_dir, write_bytes, write_text
from impromptu_ops.errors import ConfigError, OpsError
from impromptu_ops.sandbox.config import SandboxConfig

SCHEMA = 1
STATE_FILE = "state.json"
TRACKED = ("agents", "keys")  # the members that grow with the fleet


class Records(dict[str, Any]):
    """A member of the state holding records by id, remembering which ids a request got.

    Every way to reach a record for writing marks it: ``[]``, :meth:`get`, assignment,
    deletion mark that id; ``values()``, ``items()`` and the bulk mutators mark all.
    :meth:`peek` lists the records without marking them: for read-only scans only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.touched: set[str] = set()
        self.all_touched = True  # nothing serialised yet

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        self.touched.add(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        # not self.get: that is this method; [] is what marks the record
        return self[key] if key in self else default  # noqa: SIM401

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.touched.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.touched.add(key)

    def _all(self) -> None:
        self.all_touched = True

    def values(self) -> Any:
        self._all()
        return super().values()

    def items(self) -> Any:
        self._all()
        return super().items()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.touched.add(key)
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        self.touched.add(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._all()
        return super().popitem()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._all()
        super().update(*args, **kwargs)

    def clear(self) -> None:
        self._all()
        super().clear()

    def __ior__(self, other: Any) -> Records:  # type: ignore[override,misc]
        self._all()
        super().__ior__(other)
        return self

    def peek(self) -> list[Any]:
        """The records, unmarked: the caller must not change them."""
        return list(super().values())


def iso(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with a ``Z`` and whole seconds."""
    return datetime.fromtimestamp(ts, UTC).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def parse_iso(text: str) -> float:
    """RFC 3339 -> epoch seconds (ValueError when not a timestamp with a zone)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError("no time zone")
    return when.timestamp()


def sha256_hex(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def new_id(prefix: str) -> str:
    """A short random id such as ``agt_3f9c0a1b2c4d5e6f``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def empty_state() -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "clockOffset": 0.0,
        "agents": Records(),
        "keys": Records(),
        "challenges": {},
        "payments": {"registered": {}, "used": {}},
        "ledgerIntents": [],
        "nodes": {},
        "credentials": {},
        "openrouter": {"provisioning": {}, "keys": {}},
        "skill": {"latest": None, "versions": {}},
        "faults": [],
    }


class State:
    """The simulated platform's memory.

    Args:
        state_dir: the folder (created 0700); ``state.json`` is loaded from it if present.
        config: the sandbox behaviour.
        clock: real time source (injected for tests); :meth:`now` adds the offset.

    Raises:
        ConfigError: the state file exists but is not a sandbox state document.
    """

    def __init__(self, state_dir: Path, config: SandboxConfig,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = private_dir(state_dir)
        self.path = self.dir / STATE_FILE
        self.config = config
        self._clock = clock
        # Held for the whole of each request: the sandbox is a simulator, not a load test.
        self.lock = threading.RLock()
        self.memory: dict[str, Any] = {}
        self._fragments: dict[str, dict[str, str]] = {}  # member -> id -> '"id": {...}'
        self._joined: dict[str, str] = {}  # member -> its last JSON text
        self.data = self._load()
        # Saving (group commit): snapshot() under the lock, commit() outside it. Lock
        # order: lock -> _write_lock, never the reverse (commit never takes lock).
        self._write_lock = threading.Lock()
        self._seq = 0
        self._latest: tuple[int, list[tuple[str, str]]] = (0, self._parts())
        self._written_seq = 0
        self._written_parts = self._latest[1]

    def _load(self) -> dict[str, Any]:
        raw = files.read_optional(self.path, what="sandbox state", error=ConfigError,
                                  limit=files.MAX_STATE_BYTES * 16)
        if raw is None:
            return empty_state()
        data = files.parse_json(raw, what=f"sandbox state {self.path}", error=ConfigError)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ConfigError(f"sandbox state {self.path} is not a schema-{SCHEMA} sandbox state",
                              hint="point --state-dir at an empty folder")
        for key, value in empty_state().items():
            data.setdefault(key, value)
            want = (int, float) if isinstance(value, float) else (
                dict if isinstance(value, dict) else type(value))
            if value is not None and (not isinstance(data[key], want)
                                      or isinstance(data[key], bool)):
                raise ConfigError(f"sandbox state {self.path}: member {key!r} is not a"
                                  f" {type(value).__name__}",
                                  hint="restore the file or point --state-dir at an empty folder")
        for key in TRACKED:
            data[key] = Records(data[key])
        return data

    def _records_text(self, name: str, records: Records) -> str:
        """The member as JSON text, re-serialising only the records marked since the last
        time (see the module docstring)."""
        fragments = self._fragments.setdefault(name, {})
        joined = self._joined.get(name)
        if joined is not None and not records.all_touched and not records.touched:
            return joined  # nothing looked up since the last save
        if records.all_touched:
            fragments.clear()
            ids: Any = list(dict.keys(records))
        else:
            ids = records.touched
        for key in ids:
            if dict.__contains__(records, key):
                fragments[key] = (json.dumps(key) + ": "
                                  + json.dumps(dict.__getitem__(records, key), sort_keys=True))
            else:
                fragments.pop(key, None)
        records.touched = set()
        records.all_touched = False
        joined = self._joined[name] = "{" + ", ".join(fragments[k] for k in sorted(fragments)) + "}"
        return joined

    def _parts(self) -> list[tuple[str, str]]:
        """``(member, its JSON text)`` in order; unchanged members keep the same string
        object, so comparing with the last save is cheap."""
        parts = []
        for key in sorted(self.data):
            value = self.data[key]
            if key in TRACKED and isinstance(value, dict):
                if not isinstance(value, Records):  # replaced wholesale: track it again
                    value = self.data[key] = Records(value)
                text = self._records_text(key, value)
            else:
                text = json.dumps(value, sort_keys=True)
            parts.append((key, text))
        return parts

    def snapshot(self) -> int:
        """Take the document as it is now (call with :attr:`lock` held, after a handler
        ran); returns the ticket :meth:`commit` makes durable."""
        with self.lock:
            self._seq += 1
            self._latest = (self._seq, self._parts())
            return self._seq

    def commit(self, ticket: int) -> None:
        """Make the snapshot ``ticket`` durable before its request is answered: group
        commit. The newest snapshot is written (it holds every earlier change), once, by
        whichever waiting request gets the write lock first; the others find their ticket
        already written and return without a write. Called without :attr:`lock`, so other
        requests run while the file is written and fsynced; a snapshot equal to the file
        is not written again.
        """
        with self._write_lock:
            if ticket <= self._written_seq:
                return
            seq, parts = self._latest
            if parts != self._written_parts:
                write_text(self.path, "{" + ", ".join(
                    json.dumps(k) + ": " + t for k, t in parts) + "}\n")
                self._written_parts = parts
            self._written_seq = seq

    def save_if_changed(self) -> None:
        """Write ``state.json`` atomically now if the document changed since the last
        write (for callers outside a request: shutdown, fault bookkeeping)."""
        with self.lock:
            self.commit(self.snapshot())

    # --- clock ---------------------------------------------------------------------------
    def now(self) -> float:
        """The platform's time: real time plus the offset set by ``/_sandbox/clock``."""
        return self._clock() + float(self.data.get("clockOffset", 0.0))

    def real_now(self) -> float:
        return self._clock()

    # --- blobs ---------------------------------------------------------------------------
    def blob_put(self, data: bytes) -> str:
        """Store ``data`` under its SHA-256 (hex) and return it."""
        digest = sha256_hex(data)
        path = self.dir / "blobs" / digest
        if not path.exists():
            private_dir(path.parent)
            write_bytes(path, data)
        return digest

    def blob_get(self, digest: str) -> bytes | None:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            return None
        path = self.dir / "blobs" / digest
        try:
            return files.read_optional(path, what="sandbox blob", limit=1 << 30)
        except OpsError:
            return None
