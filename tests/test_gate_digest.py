"""The review digest is bound to every input of a review, and to nothing else.

Pure: each input of :func:`review_digest` (installed tree, candidate tree, manifest bytes,
rendered diff, policy files, gate version, the downgrade flag) is varied alone and must
change the digest; equal inputs give the equal digest. The end-to-end consequences (apply
refused when the installed tree or the gate changed after approval) are in
``test_gate_attacks.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from impromptu_ops.gate.digest import review_digest
from impromptu_ops.gate.tree import Tree, TreeFile


def _tree(**files: tuple[bytes, int]) -> Tree:
    return Tree({k.replace("_", "."): TreeFile(d, m) for k, (d, m) in files.items()})


BASE: dict[str, Any] = {
    "installed": _tree(SKILL_md=(b"# v1\n", 0o644), run_sh=(b"echo 1\n", 0o755)),
    "candidate": _tree(SKILL_md=(b"# v2\n", 0o644), run_sh=(b"echo 1\n", 0o755)),
    "manifest_bytes": b'{"name":"impromptu","version":"1.1.0"}',
    "diff_text": "--- a/SKILL.md\n+++ b/SKILL.md\n-# v1\n+# v2\n",
    "policy_files": [("update-gate.toml", b"[[rule]]\nid = 'x'\n")],
    "gate_version": "impromptu-ops-gate/1 impromptu-ops/0.1.0",
    "allow_downgrade": False,
    "findings": [{"rule": "new-file", "severity": "warn", "path": "x", "line": 0,
                  "message": "new file", "excerpt": ""}],
}

VARIANTS: dict[str, Any] = {
    "installed tree: one byte": _tree(SKILL_md=(b"# v1!\n", 0o644),
                                      run_sh=(b"echo 1\n", 0o755)),
    "installed tree: one mode": _tree(SKILL_md=(b"# v1\n", 0o644),
                                      run_sh=(b"echo 1\n", 0o775)),
    "candidate tree: one byte": _tree(SKILL_md=(b"# v3\n", 0o644),
                                      run_sh=(b"echo 1\n", 0o755)),
    "candidate tree: a file more": _tree(SKILL_md=(b"# v2\n", 0o644),
                                         run_sh=(b"echo 1\n", 0o755), x_sh=(b"", 0o644)),
    "manifest bytes": b'{"name":"impromptu","version":"1.1.1"}',
    "rendered diff": "--- a/SKILL.md\n+++ b/SKILL.md\n-# v1\n+# v2 \n",
    "policy file content": [("update-gate.toml", b"[[rule]]\nid = 'y'\n")],
    "policy file name": [("other.toml", b"[[rule]]\nid = 'x'\n")],
    "a second policy file": [("update-gate.toml", b"[[rule]]\nid = 'x'\n"),
                             ("extra.toml", b"")],
    "gate version": "impromptu-ops-gate/2 impromptu-ops/0.1.0",
    "downgrade allowed": True,
    "a finding dropped": [],
    "a finding changed": [{"rule": "new-file", "severity": "deny", "path": "x", "line": 0,
                           "message": "new file", "excerpt": ""}],
}

FIELD = {
    "installed tree: one byte": "installed", "installed tree: one mode": "installed",
    "candidate tree: one byte": "candidate", "candidate tree: a file more": "candidate",
    "manifest bytes": "manifest_bytes", "rendered diff": "diff_text",
    "policy file content": "policy_files", "policy file name": "policy_files",
    "a second policy file": "policy_files", "gate version": "gate_version",
    "downgrade allowed": "allow_downgrade",
    "a finding dropped": "findings", "a finding changed": "findings",
}


def test_same_inputs_same_digest() -> None:
    first = review_digest(**BASE)
    again = review_digest(**{**BASE, "policy_files": list(reversed(BASE["policy_files"]))})
    assert first == again and len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_input_changes_the_digest(variant: str) -> None:
    changed = {**BASE, FIELD[variant]: VARIANTS[variant]}
    assert review_digest(**changed) != review_digest(**BASE)


def test_installed_and_candidate_are_not_interchangeable() -> None:
    swapped = {**BASE, "installed": BASE["candidate"], "candidate": BASE["installed"]}
    assert review_digest(**swapped) != review_digest(**BASE)
