"""Private: the values of an update review, and the rule that decides whether it may be approved.

:class:`Review` is what a person needs to decide (diff, findings, the digest that names it);
:class:`Status` what is installed and waiting; :func:`check_approval` the pure approval rule
the :class:`~.gate.UpdateGate` applies before it records an approval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from impromptu_ops.errors import InputError, PolicyDenied
from impromptu_ops.gate.diff import Summary
from impromptu_ops.gate.policy import Finding, deny_rules


@dataclass(frozen=True)
class Review:
    """Everything a person needs to decide, and the digest that names it."""

    digest: str
    summary: Summary
    findings: tuple[Finding, ...]
    diff: str
    origin: str
    signature: str  # "verified" | "not checked (no publisher key pinned)"
    allow_downgrade: bool
    candidate_id: str

    @property
    def deny_rules(self) -> list[str]:
        return deny_rules(self.findings)

    def as_json(self) -> dict[str, Any]:
        """``{digest, summary, findings}`` for ``update diff --json``."""
        return {
            "digest": self.digest,
            "summary": {**self.summary.as_dict(), "origin": self.origin,
                        "signature": self.signature, "allowDowngrade": self.allow_downgrade,
                        "denyRules": self.deny_rules},
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class Status:
    installed: str | None
    installed_version: str | None
    candidate_version: str | None
    versions: tuple[str, ...]


def check_approval(rev: Review, digest: str | None, overrides: Sequence[str],
                   confirm: Callable[[Review], bool] | None) -> None:
    """Whether ``rev`` may be approved: by a person (``confirm``) or the exact ``digest``,
    with one explicit override per deny rule found and none for a rule not found.

    Raises:
        InputError: no person and no digest; an override of a rule this review lacks.
        PolicyDenied: a digest mismatch, a deny rule not overridden, a declined prompt.
    """
    if confirm is None and digest is None:
        raise InputError("approval needs a person: run on a TTY, or pass --yes with "
                         "--digest D (the digest you reviewed)")
    if digest is not None and digest != rev.digest:
        raise PolicyDenied(
            f"digest mismatch: you reviewed {digest[:16]}…, the candidate now is "
            f"{rev.digest[:16]}…",
            hint="the candidate, installed tree or policy changed; review again with "
                 "`update diff`")
    denied = rev.deny_rules
    unknown = sorted(set(overrides) - set(denied))
    if unknown:
        raise InputError(f"--override {', '.join(unknown)}: no deny finding of that rule "
                         "in this review (overrides are per rule and per review)")
    missing = sorted(set(denied) - set(overrides))
    if missing:
        raise PolicyDenied(
            f"deny findings block approval: {', '.join(missing)}",
            hint="read them in `update diff`; to approve anyway, pass --override RULE "
                 "for each (every override is logged)")
    if confirm is not None and not confirm(rev):
        raise PolicyDenied("approval declined")
