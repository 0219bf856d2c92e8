"""The PoW challenge and solution as values, parsed from hostile JSON.

[ours] wire format (see :mod:`impromptu_ops.contract` and §3 of the platform contract)::

    {"chainId": uuid, "algorithm": "argon2id",
     "params": {"memoryKiB", "iterations", "parallelism", "hashLength"},
     "rounds": [{"index", "salt": base64 (16 bytes), "difficulty": bits}],
     "expiresAt": RFC 3339}

Parsing validates structure and sanity only (types, ranges that any Argon2 implementation
accepts). Operator caps (max difficulty, max memory) are policy and are checked by the
solver against :class:`~impromptu_ops.settings.PowSettings`, not here.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from impromptu_ops import contract
from impromptu_ops.errors import MalformedResponse

# Structural bounds: beyond these no honest challenge exists, whatever the caps say.
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_DIFFICULTY = 64
MAX_ROUNDS = 256


@dataclass(frozen=True)
class Argon2Params:
    memory_kib: int
    iterations: int
    parallelism: int
    hash_length: int


@dataclass(frozen=True)
class Round:
    index: int
    salt: bytes
    difficulty: int


@dataclass(frozen=True)
class Challenge:
    chain_id: str
    params: Argon2Params
    rounds: tuple[Round, ...]
    expires_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "chainId": self.chain_id,
            "algorithm": contract.POW_ALGORITHM,
            "params": {
                "memoryKiB": self.params.memory_kib,
                "iterations": self.params.iterations,
                "parallelism": self.params.parallelism,
                "hashLength": self.params.hash_length,
            },
            "rounds": [
                {"index": r.index, "salt": base64.b64encode(r.salt).decode(),
                 "difficulty": r.difficulty}
                for r in self.rounds
            ],
            "expiresAt": self.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True)
class Solution:
    chain_id: str
    nonces: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"chainId": self.chain_id, "nonces": list(self.nonces)}


def _bad(what: str) -> MalformedResponse:
    return MalformedResponse(f"malformed PoW challenge: {what}")


def _int(obj: Mapping[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(f"{where}{key} must be an integer")
    if not lo <= value <= hi:
        raise _bad(f"{where}{key}={value} is outside {lo}..{hi}")
    return value


def parse_time(text: Any, what: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime."""
    if not isinstance(text, str):
        raise _bad(f"{what} must be an RFC 3339 string")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{what} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise _bad(f"{what} has no time zone")
    return when.astimezone(UTC)


def parse_challenge(obj: Any) -> Challenge:
    """Validate and convert a challenge JSON object.

    Raises:
        MalformedResponse: any missing field, wrong type, bad base64, out-of-range value.
    """
    if not isinstance(obj, Mapping):
        raise _bad("not a JSON object")
    chain_id = obj.get("chainId")
    if not isinstance(chain_id, str):
        raise _bad("chainId must be a string")
    try:
        uuid.UUID(chain_id)
    except ValueError:
        raise _bad("chainId is not a UUID") from None
    algorithm = obj.get("algorithm", contract.POW_ALGORITHM)
    if algorithm != contract.POW_ALGORITHM:
        raise _bad(f"unsupported algorithm {str(algorithm)[:20]!r}")
    params = obj.get("params")
    if not isinstance(params, Mapping):
        raise _bad("params must be an object")
    p = Argon2Params(
        memory_kib=_int(params, "memoryKiB", 8, MAX_MEMORY_KIB, "params."),
        iterations=_int(params, "iterations", 1, 1000, "params."),
        parallelism=_int(params, "parallelism", 1, 255, "params."),
        hash_length=_int(params, "hashLength", 16, 64, "params."),
    )
    if p.memory_kib < 8 * p.parallelism:
        raise _bad("params.memoryKiB must be at least 8 x parallelism")
    raw_rounds = obj.get("rounds")
    if not isinstance(raw_rounds, list) or not raw_rounds:
        raise _bad("rounds must be a non-empty list")
    if len(raw_rounds) > MAX_ROUNDS:
        raise _bad(f"too many rounds ({len(raw_rounds)})")
    rounds: list[Round] = []
    for i, r in enumerate(raw_rounds):
        if not isinstance(r, Mapping):
            raise _bad(f"rounds[{i}] is not an object")
        index = _int(r, "index", 0, MAX_ROUNDS - 1, f"rounds[{i}].")
        if index != i:
            raise _bad(f"rounds[{i}].index is {index}, expected {i}")
        salt_text = r.get("salt")
        if not isinstance(salt_text, str):
            raise _bad(f"rounds[{i}].salt must be a base64 string")
        try:
            salt = base64.b64decode(salt_text, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"rounds[{i}].salt is not valid base64") from None
        if not 8 <= len(salt) <= 64:
            raise _bad(f"rounds[{i}].salt has {len(salt)} bytes, expected 8..64")
        difficulty = _int(r, "difficulty", 1, MAX_DIFFICULTY, f"rounds[{i}].")
        rounds.append(Round(index, salt, difficulty))
    expires = parse_time(obj.get("expiresAt"), "expiresAt")
    return Challenge(chain_id, p, tuple(rounds), expires)


def parse_solution(obj: Any, rounds: int) -> Solution:
    """Validate a submitted ``pow`` object (the sandbox uses this on hostile input)."""
    if not isinstance(obj, Mapping):
        raise MalformedResponse("pow must be an object with chainId and nonces")
    chain_id, nonces = obj.get("chainId"), obj.get("nonces")
    if not isinstance(chain_id, str) or not isinstance(nonces, list):
        raise MalformedResponse("pow must have a string chainId and a list of nonces")
    if len(nonces) != rounds:
        raise MalformedResponse(f"pow.nonces has {len(nonces)} entries, expected {rounds}")
    if any(not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < 2**63 for n in nonces):
        raise MalformedResponse("pow.nonces must be non-negative 63-bit integers")
    return Solution(chain_id, tuple(nonces))
