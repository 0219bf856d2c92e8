"""Private: The review digest: one SHA-256 that names exactly what a person reviewed (pure).

An approval is bound to this digest, and ``apply`` recomputes it from what is on disk at
that moment. It covers, in one canonical encoding:

- the installed tree and the candidate tree (every path, mode, SHA-256 and size);
- the candidate manifest's bytes (version, publishedAt, prompt marks, any hook keys);
- the rendered diff (what the reviewer was shown);
- the policy files (name and SHA-256 of each): relaxing a rule after review voids it;
- the gate version (a gate with other checks is another reviewer);
- whether a downgrade was explicitly allowed at fetch;
- the findings (the verdict the reviewer was shown), so that a verdict stored with the
  candidate at fetch and reused by approve and apply is bound to the same digest.

:func:`verdict_key` names the inputs of the scan (everything above except the diff and the
findings, which it produces): approve and apply reuse the stored verdict only when it
matches, so the scan of a candidate runs once, at fetch.

Canonical encoding: a JSON object with sorted keys, no whitespace, UTF-8, prefixed by a
domain-separation line, so that the digest cannot be confused with any other hash we take.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from impromptu_ops.gate.tree import Tree

DOMAIN: Final = b"impromptu-ops/update-gate/review-digest/v2\n"
VERDICT_DOMAIN: Final = b"impromptu-ops/update-gate/verdict-key/v1\n"


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def verdict_key(
    *,
    installed: Tree,
    candidate: Tree,
    manifest_bytes: bytes,
    policy_files: Sequence[tuple[str, bytes]],
    gate_version: str,
    allow_downgrade: bool,
) -> str:
    """The hex SHA-256 over the inputs of a scan: a stored verdict is valid for these only."""
    body = {
        "allowDowngrade": allow_downgrade,
        "candidate": candidate.listing(),
        "gate": gate_version,
        "installed": installed.listing(),
        "manifest": hashlib.sha256(manifest_bytes).hexdigest(),
        "policies": sorted([name, hashlib.sha256(data).hexdigest()]
                           for name, data in policy_files),
    }
    return hashlib.sha256(VERDICT_DOMAIN + _canonical(body)).hexdigest()


def review_digest(
    *,
    installed: Tree,
    candidate: Tree,
    manifest_bytes: bytes,
    diff_text: str,
    policy_files: Sequence[tuple[str, bytes]],
    gate_version: str,
    allow_downgrade: bool,
    findings: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The hex SHA-256 over the canonical encoding of every input of a review."""
    body = {
        "findings": hashlib.sha256(_canonical({"f": list(findings)})).hexdigest(),
        "allowDowngrade": allow_downgrade,
        "candidate": candidate.listing(),
        "diff": hashlib.sha256(diff_text.encode("utf-8")).hexdigest(),
        "gate": gate_version,
        "installed": installed.listing(),
        "manifest": hashlib.sha256(manifest_bytes).hexdigest(),
        "policies": sorted([name, hashlib.sha256(data).hexdigest()]
                           for name, data in policy_files),
    }
    return hashlib.sha256(DOMAIN + _canonical(body)).hexdigest()
