"""The gate's line diff: a correct edit script on every input, near-linear cost.

Correctness is a property (hypothesis): replaying the opcodes on the installed lines gives
the candidate's lines, and every line reported unchanged really is equal. The adversarial
shapes from the issue (N identical lines against a candidate alternating two lines) must
finish quickly; their timing is printed by ``bench/gate_scan.py``, not asserted here.
"""

from __future__ import annotations

import difflib

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from impromptu_ops.gate.linediff import added_lines, opcodes, unified_diff

lines = st.lists(st.sampled_from(["a", "b", "c", "x = 1", "", "curl | sh"]), max_size=40)


def replay(a: list[str], b: list[str]) -> list[str]:
    out: list[str] = []
    for tag, i1, i2, j1, j2 in opcodes(a, b):
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
            out += a[i1:i2]
        elif tag in ("insert", "replace"):
            out += b[j1:j2]
    return out


@settings(max_examples=300, deadline=None)
@given(lines, lines)
def test_opcodes_are_a_correct_edit_script(a: list[str], b: list[str]) -> None:
    assert replay(a, b) == b
    codes = opcodes(a, b)
    # contiguous over both sides, like SequenceMatcher.get_opcodes
    i = j = 0
    for _tag, i1, i2, j1, j2 in codes:
        assert (i1, j1) == (i, j)
        i, j = i2, j2
    assert (i, j) == (len(a), len(b))


def _changed(diff: list[str]) -> int:
    return sum(1 for ln in diff if ln[:1] in "+-" and not ln.startswith(("+++", "---")))


@settings(max_examples=200, deadline=None)
@given(lines, lines)
def test_unified_diff_is_difflibs_format_and_never_longer(a: list[str], b: list[str]) -> None:
    """Same hunk format as difflib; where both sides' lines are unique ours is a longest
    common subsequence, so it never reports more changed lines than difflib (whose
    longest-block matching is not always minimal), and it is exactly difflib's when both
    find the same matches. (The old form of this test compared texts on inputs whose lines
    were not always unique — k=2 and k=3 could both read "2:x" — and failed rarely.)"""
    a2 = [f"{k}:{x}" for k, x in enumerate(a)]
    b2 = [f"{k}:{x}" if k % 3 else f"{k - 1}:{x}" for k, x in enumerate(b)]
    assume(len(set(a2)) == len(a2) and len(set(b2)) == len(b2))
    ours = list(unified_diff(a2, b2, "a/f", "b/f"))
    theirs = list(difflib.unified_diff(a2, b2, "a/f", "b/f", n=3, lineterm=""))
    assert ours[:2] == theirs[:2]
    assert all(ln[:1] in " +-@" for ln in ours[2:])
    assert _changed(ours) <= _changed(theirs)
    if _changed(ours) == _changed(theirs) and replay(a2, b2) == b2:
        matcher = difflib.SequenceMatcher(None, a2, b2, autojunk=False)
        if list(matcher.get_opcodes()) == opcodes(a2, b2):
            assert ours == theirs


def test_adversarial_repeated_lines_stay_fast_and_correct() -> None:
    n = 20_000
    a = ["same"] * n
    b = ["same", "other"] * (n // 2)
    assert replay(a, b) == b
    added = added_lines(a, b)
    assert all(k in added for k in range(len(b)) if b[k] == "other")


def test_added_lines_on_an_insertion() -> None:
    a = ["#!/bin/sh", "echo one", "echo two"]
    b = ["#!/bin/sh", "echo one", "curl x | sh", "echo two"]
    assert added_lines(a, b) == frozenset({2})
    assert added_lines([], ["x"]) == frozenset({0})
    assert added_lines(["x"], []) == frozenset()
