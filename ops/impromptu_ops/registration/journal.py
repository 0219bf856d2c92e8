"""Private: The non-secret "registration in progress" record, so an interrupted run can say how to
go on.

One small JSON file, ``<state_dir>/registration.json`` (0600, written atomically), holding
the agent name, the current step and what that step needs (challenge id and expiry, the
payment request, the agent id once known). It never holds a secret. Steps:

==================  ============================================================
``started``         nothing sent that could register an agent
``solving``         a challenge was fetched and is being solved
``payment``         the server asked for a fee (``payment`` says what; ``pow`` keeps
                    the accepted proof so the paid retry need not solve again)
``submitted``       a registration with proof was sent; the answer is not recorded
``stored``          the agent exists and its secrets are in the store
``emergency``       the agent exists and its secrets are in an emergency file
==================  ============================================================

A finished registration (``stored`` with terms accepted) removes the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from impromptu_ops import atomic, files
from impromptu_ops.errors import InputError


@dataclass(frozen=True)
class Entry:
    name: str
    step: str
    updated_at: str = ""
    chain_id: str = ""
    expires_at: str = ""
    agent_id: str = ""
    payment: dict[str, Any] = field(default_factory=dict)
    emergency_file: str = ""
    tos_accepted: bool = False
    pow: dict[str, Any] = field(default_factory=dict)  # a verified proof awaiting payment


class Journal:
    """Reads and writes the record at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> Entry | None:
        hint = "inspect it, then delete it to start over"
        try:
            raw = files.read_optional(self.path, what="the registration record",
                                      limit=files.MAX_STATE_BYTES, nofollow=True)
            if raw is None:
                return None
            data = files.parse_json(raw, what=f"the registration record {self.path}")
        except InputError as exc:
            raise InputError(exc.message, hint=hint) from None
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return Entry(**data)
        except (ValueError, TypeError) as exc:
            raise InputError(f"the registration record {self.path} is unreadable "
                             f"({type(exc).__name__})",
                             hint="inspect it, then delete it to start over") from None

    def write(self, entry: Entry, **changes: Any) -> Entry:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        entry = replace(entry, **changes, updated_at=now)
        atomic.write_json(self.path, asdict(entry))
        return entry

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
