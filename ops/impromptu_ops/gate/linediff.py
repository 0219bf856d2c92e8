"""Private: A line diff whose cost is near-linear in the size of its inputs, on every input (pure).

``difflib.SequenceMatcher`` is quadratic (and worse) when lines repeat: N identical
installed lines against a candidate alternating two lines took minutes at a few thousand
lines. This module finds matching blocks the way patience diff does, with a hard budget:

1. the common prefix and suffix of a region match;
2. lines that occur exactly once on each side of a region are anchors; the longest chain
   of anchors in order on both sides (longest increasing subsequence, ``O(n log n)``)
   matches, and the regions between anchors are diffed again (a work list, no recursion);
3. a region without anchors is handed to ``difflib`` only while the total of its cells
   (``len(a) * len(b)``) stays inside a fixed budget; past it, the region is reported as
   replaced.

The result is always a correct edit script (applying it to ``a`` gives ``b``), not always
a minimal one. For the gate that errs on the safe side: a line wrongly reported as added
is scanned as new content, never the reverse.

:func:`opcodes` has ``SequenceMatcher.get_opcodes``'s shape; :func:`unified_diff` renders
them in ``difflib.unified_diff``'s format, so the review text looks as it always did.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterator, Sequence
from typing import Final

Opcode = tuple[str, int, int, int, int]

# Cells (len(a) * len(b)) of anchor-less regions that difflib may examine, in total, for
# one file: about a second of work in the worst case on a slow machine.
FALLBACK_CELLS: Final = 2_000_000
# Regions examined per input line, in total, before the rest is reported as replaced:
# a bound on the work list whatever the shape of the input.
REGION_WORK_FACTOR: Final = 24


def _lis(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest chain of ``pairs`` (sorted by the first item) increasing in the second."""
    tails: list[int] = []  # tails[k] = smallest j ending a chain of length k + 1
    tail_idx: list[int] = []
    prev: list[int] = [-1] * len(pairs)
    for idx, (_i, j) in enumerate(pairs):
        k = bisect.bisect_left(tails, j)
        if k == len(tails):
            tails.append(j)
            tail_idx.append(idx)
        else:
            tails[k] = j
            tail_idx[k] = idx
        prev[idx] = tail_idx[k - 1] if k else -1
    out: list[tuple[int, int]] = []
    idx = tail_idx[-1] if tail_idx else -1
    while idx >= 0:
        out.append(pairs[idx])
        idx = prev[idx]
    out.reverse()
    return out


def _anchors(a: Sequence[str], alo: int, ahi: int, b: Sequence[str], blo: int, bhi: int
             ) -> list[tuple[int, int]]:
    count_a: dict[str, int] = {}
    where_a: dict[str, int] = {}
    for i in range(alo, ahi):
        count_a[a[i]] = count_a.get(a[i], 0) + 1
        where_a[a[i]] = i
    count_b: dict[str, int] = {}
    where_b: dict[str, int] = {}
    for j in range(blo, bhi):
        line = b[j]
        if count_a.get(line) == 1:
            count_b[line] = count_b.get(line, 0) + 1
            where_b[line] = j
    pairs = sorted((where_a[line], j) for line, j in where_b.items() if count_b[line] == 1)
    return _lis(pairs)


def matching_blocks(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int, int]]:
    """``(i, j, n)`` blocks with ``a[i:i+n] == b[j:j+n]``, increasing, without a sentinel."""
    blocks: list[tuple[int, int, int]] = []
    cells = FALLBACK_CELLS
    work = REGION_WORK_FACTOR * (len(a) + len(b) + 1)
    todo = [(0, len(a), 0, len(b))]
    while todo:
        alo, ahi, blo, bhi = todo.pop()
        # common prefix and suffix
        start = 0
        while alo + start < ahi and blo + start < bhi and a[alo + start] == b[blo + start]:
            start += 1
        if start:
            blocks.append((alo, blo, start))
            alo, blo = alo + start, blo + start
        end = 0
        while ahi - end > alo and bhi - end > blo and a[ahi - end - 1] == b[bhi - end - 1]:
            end += 1
        if end:
            blocks.append((ahi - end, bhi - end, end))
            ahi, bhi = ahi - end, bhi - end
        if alo == ahi or blo == bhi:
            continue
        size = (ahi - alo) + (bhi - blo)
        if work < size:
            continue  # budget spent: the region is reported as replaced
        work -= size
        anchors = _anchors(a, alo, ahi, b, blo, bhi)
        if anchors:
            pi, pj = alo, blo
            for i, j in anchors:
                blocks.append((i, j, 1))
                todo.append((pi, i, pj, j))
                pi, pj = i + 1, j + 1
            todo.append((pi, ahi, pj, bhi))
            continue
        region = (ahi - alo) * (bhi - blo)
        if region <= cells:
            cells -= region
            sm = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
            blocks.extend((alo + i, blo + j, n) for i, j, n in sm.get_matching_blocks() if n)
    blocks.sort()
    merged: list[tuple[int, int, int]] = []
    for i, j, n in blocks:
        if merged and merged[-1][0] + merged[-1][2] == i and merged[-1][1] + merged[-1][2] == j:
            merged[-1] = (merged[-1][0], merged[-1][1], merged[-1][2] + n)
        else:
            merged.append((i, j, n))
    return merged


def opcodes(a: Sequence[str], b: Sequence[str]) -> list[Opcode]:
    """Edit operations turning ``a`` into ``b``, as ``SequenceMatcher.get_opcodes``."""
    out: list[Opcode] = []
    i = j = 0
    for ai, bj, size in [*matching_blocks(a, b), (len(a), len(b), 0)]:
        tag = ""
        if i < ai and j < bj:
            tag = "replace"
        elif i < ai:
            tag = "delete"
        elif j < bj:
            tag = "insert"
        if tag:
            out.append((tag, i, ai, j, bj))
        i, j = ai + size, bj + size
        if size:
            out.append(("equal", ai, i, bj, j))
    return out


def added_lines(a: Sequence[str], b: Sequence[str]) -> frozenset[int]:
    """Indexes of the lines of ``b`` that are not matched to a line of ``a``."""
    added: set[int] = set()
    for tag, _i1, _i2, j1, j2 in opcodes(a, b):
        if tag in ("insert", "replace"):
            added.update(range(j1, j2))
    return frozenset(added)


def _grouped(codes: list[Opcode], n: int) -> Iterator[list[Opcode]]:
    """Hunks of ``codes`` with ``n`` lines of context (``get_grouped_opcodes``'s rules)."""
    if not codes:
        codes = [("equal", 0, 1, 0, 1)]
    if codes[0][0] == "equal":
        _t, i1, i2, j1, j2 = codes[0]
        codes[0] = ("equal", max(i1, i2 - n), i2, max(j1, j2 - n), j2)
    if codes[-1][0] == "equal":
        _t, i1, i2, j1, j2 = codes[-1]
        codes[-1] = ("equal", i1, min(i2, i1 + n), j1, min(j2, j1 + n))
    nn = n + n
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        si, sj = i1, j1
        if tag == "equal" and i2 - i1 > nn:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            si, sj = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, si, i2, sj, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    beginning = start + 1
    length = stop - start
    if length == 1:
        return f"{beginning}"
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def unified_diff(a: Sequence[str], b: Sequence[str], fromfile: str, tofile: str,
                 n: int = 3) -> Iterator[str]:
    """``difflib.unified_diff(a, b, fromfile, tofile, n=n, lineterm="")`` over
    :func:`opcodes` (same text, near-linear cost)."""
    started = False
    for group in _grouped(opcodes(a, b), n):
        if not started:
            started = True
            yield f"--- {fromfile}"
            yield f"+++ {tofile}"
        first, last = group[0], group[-1]
        yield f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@"
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield from (" " + line for line in a[i1:i2])
                continue
            if tag in ("replace", "delete"):
                yield from ("-" + line for line in a[i1:i2])
            if tag in ("replace", "insert"):
                yield from ("+" + line for line in b[j1:j2])
