"""Reading a challenge or a solution from a file or stdin, for the ``pow`` runbook commands.

Accepts the challenge as the server sends it (the bare object, or wrapped as
``{"challenge": {...}}``) and a solution as ``{"chainId", "nonces"}`` (or wrapped as
``{"pow": {...}}``, the shape of a registration body). Unreadable or non-JSON input is an
:class:`~impromptu_ops.errors.InputError`; JSON of the wrong shape is refused by the
parsers in :mod:`.challenge` (:class:`~impromptu_ops.errors.MalformedResponse`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from impromptu_ops import files
from impromptu_ops.errors import InputError
from impromptu_ops.pow.challenge import Challenge, Solution, parse_challenge, parse_solution

MAX_DOCUMENT_BYTES = 1024 * 1024


def read_json(path: Path | None, what: str) -> Any:
    """JSON from ``path`` (``None`` or ``-``: stdin), capped at 1 MiB."""
    try:
        if path is None or str(path) == "-":
            raw = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
            where = "stdin"
        else:
            raw = files.read_regular(path, what=f"the {what}", limit=MAX_DOCUMENT_BYTES)
            where = str(path)
    except OSError as exc:
        raise InputError(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise InputError(f"the {what} in {where} is larger than 1 MiB")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise InputError(f"the {what} in {where} is not valid JSON") from None


def _unwrap(doc: Any, key: str) -> Any:
    if isinstance(doc, dict) and isinstance(doc.get(key), dict):
        return doc[key]
    return doc


def read_challenge(path: Path | None) -> Challenge:
    return parse_challenge(_unwrap(read_json(path, "challenge"), "challenge"))


def read_solution(path: Path | None, challenge: Challenge) -> Solution:
    return parse_solution(_unwrap(read_json(path, "solution"), "pow"), len(challenge.rounds))
