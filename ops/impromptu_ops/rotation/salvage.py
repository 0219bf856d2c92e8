"""Private: The last resort of a failed run: find a key of this rotation that still works.

When the store's current key is refused (positive evidence: a 401, or the secret is
gone), a run must not simply report "page someone" while it holds, in the store, another
value of this rotation that works: the pending copy of the new key, the canonical version
that held the new key, or (only while the old key's retirement has not begun) the version
that held the old one. Each candidate is checked with a real authenticated call, in that
order; the first that works is the answer. A key whose retirement has begun is never a
candidate: its revoke may land at any instant (issue 11, finding 6).

This module reads the store and calls ``verify``; it writes nothing (the engine does,
with CAS, and records it).
"""

from __future__ import annotations

from dataclasses import dataclass

from impromptu_ops.errors import AuthError, OpsError
from impromptu_ops.rotation.provider import Provider
from impromptu_ops.rotation.record import (
    PENDING_PREFIX,
    RecordStore,
    RotationRecord,
    Step,
    at_least,
    fingerprint,
)
from impromptu_ops.secret import Secret


@dataclass(frozen=True)
class Candidate:
    which: str  # "new" | "old"
    value: Secret
    key_id: str
    fingerprint: str


def _read(records: RecordStore, name: str, version: int | None = None
          ) -> tuple[Secret, dict[str, str]] | None:
    try:
        value, meta, _v = records.read_key(name, version)
    except OpsError:
        return None
    return value, meta


def candidates(records: RecordStore, rec: RotationRecord) -> list[Candidate]:
    """Values of this rotation's keys still in the store, newest first (never a value
    whose fingerprint does not match the record)."""
    found: list[Candidate] = []
    if rec.new.fingerprint:
        got = _read(records, PENDING_PREFIX + rec.secret)
        if got is not None and got[1].get("rotation_id") == rec.rotation_id:
            found.append(Candidate("new", got[0], rec.new.key_id, fingerprint(got[0])))
        elif rec.new.version and at_least(rec.step, Step.PROMOTED):
            got = _read(records, rec.secret, rec.new.version)
            if got is not None:
                found.append(Candidate("new", got[0], rec.new.key_id, fingerprint(got[0])))
    if rec.old.version and not at_least(rec.step, Step.RETIRING):
        got = _read(records, rec.secret, rec.old.version)
        if got is not None:
            found.append(Candidate("old", got[0], rec.old.key_id, fingerprint(got[0])))
    expected = {"new": rec.new.fingerprint, "old": rec.old.fingerprint}
    return [c for c in found if c.fingerprint == expected[c.which]]


def first_working(provider: Provider, found: list[Candidate], skip: str = ""
                  ) -> Candidate | None:
    """The first candidate that answers a real authenticated call (``skip``: the
    fingerprint of a value already known to be refused)."""
    for cand in found:
        if cand.fingerprint == skip:
            continue
        try:
            provider.verify(cand.value)
        except AuthError:
            continue
        except OpsError:
            continue  # undecided: not proof that it works
        return cand
    return None
