"""The sandbox's persistent state: one JSON document in the state folder, plus blobs.

This module owns where and how the simulated platform remembers things: ``state.json``
(written with :func:`impromptu_ops.atomic.write_json` after every request that changed it,
so a restart, even after SIGKILL, loses nothing that was answered), content-addressed blobs
under ``blobs/`` (published skill files, so the JSON stays small), the simulated clock
(real time plus a persisted offset) and the one lock that serialises request handling.
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
from impromptu_ops.atomic import private_dir, write_bytes, write_json
from impromptu_ops.errors import ConfigError, OpsError
from impromptu_ops.sandbox.config import SandboxConfig

SCHEMA = 1
STATE_FILE = "state.json"


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
        "agents": {},
        "keys": {},
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
        self.data = self._load()
        self._saved = self._dump()

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
            want = (int, float) if isinstance(value, float) else type(value)
            if value is not None and (not isinstance(data[key], want)
                                      or isinstance(data[key], bool)):
                raise ConfigError(f"sandbox state {self.path}: member {key!r} is not a"
                                  f" {type(value).__name__}",
                                  hint="restore the file or point --state-dir at an empty folder")
        return data

    def _dump(self) -> str:
        return json.dumps(self.data, sort_keys=True)

    def save_if_changed(self) -> None:
        """Write ``state.json`` atomically when the document changed since the last write."""
        with self.lock:
            text = self._dump()
            if text != self._saved:
                write_json(self.path, self.data)
                self._saved = text

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
