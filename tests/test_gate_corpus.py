"""The attack corpus (tests/gate_corpus.py) through the real policy: every hostile case is
refused with a deny finding, every benign case passes without one. One test per class;
the counts are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from impromptu_ops.gate.policy import Finding, load_policy
from impromptu_ops.gate.scan import evaluate
from impromptu_ops.gate.tree import Tree, TreeFile
from tests.gate_corpus import BENIGN, HEAD, HOSTILE, Case

POLICY = load_policy((Path(__file__).resolve().parents[1] / "policies" / "update-gate.toml")
                     .read_text(encoding="utf-8"))
INSTALLED = {
    "SKILL.md": b"# Impromptu\n\nYou design conversations.\n",
    "HEARTBEAT.md": b"# Heartbeat\n\nCheck in every 30 minutes.\n",
    "heartbeat.sh": (HEAD + 'echo "done"\n').encode(),
}
CLASSES = sorted({c.cls for c in HOSTILE})


def judge(case: Case) -> list[Finding]:
    """The case as an update of an installed skill: its file changed (or added)."""
    old = Tree({p: TreeFile(d, 0o755 if p.endswith(".sh") else 0o644)
                for p, d in INSTALLED.items()})
    files = dict(old.files)
    files[case.path] = TreeFile(case.text.encode("utf-8"),
                                0o755 if case.path.endswith((".sh", ".py")) else 0o644)
    return evaluate(POLICY, old, Tree(files))


def denies(case: Case) -> list[str]:
    return sorted({f"{f.rule}@{f.line}" for f in judge(case) if f.severity == "deny"})


def test_corpus_size() -> None:
    """At least 60 hostile cases across every class of the report, 30 benign ones."""
    assert len(HOSTILE) >= 60 and len(BENIGN) >= 30
    assert set(CLASSES) >= {"reverse-shell", "download-exec", "exfiltration", "destructive",
                            "code-fetch", "persistence", "prompt-injection"}
    assert len({c.name for c in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("cls", CLASSES)
def test_every_hostile_case_of_the_class_is_refused(cls: str) -> None:
    cases = [c for c in HOSTILE if c.cls == cls]
    missed = [c.name for c in cases if not denies(c)]
    print(f"\n{cls}: {len(cases) - len(missed)} of {len(cases)} refused")
    assert not missed, f"{cls}: approved without a deny finding: {missed}"


def test_benign_cases_pass_without_a_deny() -> None:
    wrong = {c.name: denies(c) for c in BENIGN if denies(c)}
    print(f"\nbenign: {len(BENIGN) - len(wrong)} of {len(BENIGN)} passed")
    assert not wrong, wrong


def test_findings_name_the_hostile_line() -> None:
    """A finding points at the line that does it, not at the file as a whole."""
    case = next(c for c in HOSTILE if c.name == "download then run later")
    lines = {f.line for f in judge(case) if f.rule == "fetch-exec"}
    assert case.text.split("\n")[min(lines) - 1].startswith("sh /tmp/.upd")


def test_counts_by_rule() -> None:
    """Which rules do the refusing (printed; every capability rule is used)."""
    per_rule: Counter[str] = Counter()
    for case in HOSTILE:
        per_rule.update({d.split("@")[0] for d in denies(case)})
    print("\n" + ", ".join(f"{r}={n}" for r, n in sorted(per_rule.items())))
    assert {"net-egress", "key-leak", "env-dump", "fetch-exec", "persistence", "destructive",
            "code-fetch", "prompt-override", "prompt-secrets"} <= set(per_rule)
