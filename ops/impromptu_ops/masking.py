"""Private: Masking a child's output stream: delivered values and key shapes become a placeholder.

``secrets exec`` hands keys to a program and then reads what it prints (like 1Password's
``op run``, which conceals secrets printed to stdout or stderr by default). This module owns
the pure part: a :class:`StreamMasker` takes the bytes of one stream in whatever pieces the
pipe or terminal delivers them and returns what may be written on, with every delivered
value and every key-shaped string (:data:`impromptu_ops.contract.KEY_SHAPES`, the patterns
the log redactor uses) replaced by :data:`PLACEHOLDER`.

Streaming, not buffering a whole run: everything is passed on at once except the shortest
tail that could still become a secret when the next bytes arrive (a prefix of a delivered
value, or a key shape's prefix such as ``impr_sk_`` followed by key characters). That tail
waits for the next read, and the rest of it is released as soon as the next bytes show it is
not a secret; :meth:`StreamMasker.flush` releases it (masked) when the stream ends.

On a timer (:meth:`StreamMasker.release`, when the child has been quiet for a moment: a
prompt, a progress figure) only a tail that holds no secret material is written out: the
public start of a key shape (``0``, ``s.``, ``impr_sk_``). It stays in the masker's view, so
if the key's body follows, the rest is still concealed (``0<concealed by impromptu-ops>``).
A tail that holds part of a value or of a key body is never released on a timer: it would
let the rest of the key through unmasked later. A tail is at most
:attr:`StreamMasker.max_hold` bytes, so a run of output can never be held back without bound.

It does no I/O: the supervisor (:mod:`impromptu_ops.supervisor`) reads and writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from impromptu_ops import contract

PLACEHOLDER: Final = b"<concealed by impromptu-ops>"


def _fast_shapes(pattern: str) -> re.Pattern[bytes]:
    """The contract's key shapes as a bytes pattern (the child's output is bytes, not
    necessarily UTF-8), with each leading ``\\b`` moved behind the first letter
    (``\\bs\\.`` becomes ``s(?<!\\ws)\\.``: the same matches). A pattern that begins
    with a literal lets the regex engine skip ahead to candidate bytes: about 4x faster
    on ordinary output. Should the contract's pattern change shape, the rewrite simply
    does not apply and the pattern is used as it is."""
    raw = pattern.encode("ascii")
    for first, rest in ((b"h", b"v"), (b"s", b"\\."), (b"0", b"x")):
        raw = raw.replace(b"\\b" + first + rest, first + b"(?<!\\w" + first + b")" + rest)
    return re.compile(raw)


SHAPES: Final = _fast_shapes(contract.KEY_SHAPES.pattern)
# Where a key shape can start (its literal part), and the characters a key body is made of.
SHAPE_STARTS: Final = (b"impr_sk_", b"sk-or-v1-", b"hvs.", b"hvb.", b"hvr.", b"s.", b"0x")
BOUNDED_STARTS: Final = (b"hvs.", b"hvb.", b"hvr.", b"s.", b"0x")  # `\b` before them
WORD: Final = re.compile(rb"\w")
KEY_CHARS: Final = re.compile(rb"[A-Za-z0-9_.\-]*\Z")
MIN_HOLD: Final = 256  # room for any key shape we know (the longest is well under this)


class StreamMasker:
    """Masks one output stream fed in arbitrary pieces.

    Args:
        values: the exact values to conceal (empty values are ignored). Values can be added
            later with :meth:`add`, e.g. after a restart with new keys.
        max_hold: the most bytes ever held back (default: the longest value, at least
            :data:`MIN_HOLD`).
    """

    def __init__(self, values: Iterable[bytes] = (), max_hold: int | None = None) -> None:
        self._values: set[bytes] = set()
        self._pattern: re.Pattern[bytes] = SHAPES
        self._fixed_hold = max_hold
        self.max_hold = max_hold or MIN_HOLD
        self._pending = b""
        self._shown = 0  # leading bytes of _pending already written out by release()
        self.add(values)

    def add(self, values: Iterable[bytes]) -> None:
        """Conceal these values too (old values stay concealed)."""
        fresh = {v for v in values if v} - self._values
        if not fresh:
            return
        self._values |= fresh
        alts = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile(b"|".join(re.escape(v) for v in alts) + b"|"
                                   + SHAPES.pattern)
        if self._fixed_hold is None:
            self.max_hold = max(MIN_HOLD, *(len(v) for v in self._values))

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the stream; return what can be written on now."""
        buffer = self._pending + data
        hold = max(self._hold_start(buffer), 0)
        out = self._render(buffer[:hold], self._shown)
        self._pending = buffer[hold:]
        self._shown = max(0, self._shown - hold)
        return out

    def release(self) -> bytes:
        """The stream has been quiet: write out the held tail if it holds no secret
        material (only the public start of a key shape), keeping it in view."""
        tail = self._pending[self._shown:]
        whole = self._pending
        if not tail or not any(start.startswith(whole) for start in SHAPE_STARTS):
            return b""
        for value in self._values:  # "s" may also begin the value "s3cr3t": keep it
            if value.startswith(whole) and not any(
                    value.startswith(start) and len(whole) <= len(start)
                    for start in SHAPE_STARTS):
                return b""
        self._shown = len(self._pending)
        return tail

    def flush(self) -> bytes:
        """The stream ended: everything still held, masked."""
        rest, shown = self._pending, self._shown
        self._pending, self._shown = b"", 0
        return self._render(rest, shown)

    @property
    def pending(self) -> int:
        """How many bytes are held back (and not yet written out) right now."""
        return len(self._pending) - self._shown

    def _render(self, text: bytes, shown: int) -> bytes:
        """``text`` masked, less its first ``shown`` bytes (already written out): a match
        that began in them is still replaced, from where the output stands."""
        if not shown:
            return self._pattern.sub(PLACEHOLDER, text)
        out, pos = [], 0
        for match in self._pattern.finditer(text):
            if match.start() >= shown or match.end() > shown:
                out.append(text[max(pos, shown):max(match.start(), shown)])
                out.append(PLACEHOLDER)
            pos = match.end()
        out.append(text[max(pos, shown):])
        return b"".join(out)

    # -- pure helpers ---------------------------------------------------------------------
    def _hold_start(self, buffer: bytes) -> int:
        """The first byte that must wait: where a possible secret at the end begins."""
        end = len(buffer)
        floor = max(0, end - self.max_hold)
        hold = end
        for value in self._values:  # the longest suffix that is a proper prefix of a value
            for k in range(min(len(value) - 1, end - floor), 0, -1):
                if buffer.endswith(value[:k]):
                    hold = min(hold, end - k)
                    break
        hold = min(hold, self._shape_start(buffer, floor))
        # Never cut through a complete match: it would be emitted half masked.
        moved = True
        while moved:
            moved = False
            for match in self._pattern.finditer(buffer, max(0, hold - self.max_hold)):
                if match.start() < hold < match.end():
                    hold, moved = match.start(), True
                    break
        return hold

    @staticmethod
    def _shape_start(buffer: bytes, floor: int) -> int:
        """Where a key shape that the next bytes could complete or extend begins."""
        end = len(buffer)
        tail = KEY_CHARS.search(buffer, floor)
        run_start = tail.start() if tail else end
        for i in range(run_start, end):
            rest = buffer[i:]
            after_word = i > 0 and WORD.match(buffer, i - 1) is not None
            for start in SHAPE_STARTS:
                if after_word and start in BOUNDED_STARTS:
                    continue  # e.g. the 0 of "10" cannot begin a 0x... key
                if rest.startswith(start) or start.startswith(rest):
                    return i
        return end
