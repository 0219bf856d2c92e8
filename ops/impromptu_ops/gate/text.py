"""Private: Prompt text as a reader sees it: normalised before the prompt rules run (pure).

A phrase the rules look for must not escape them by its spelling on disk:

- NFKC folds fullwidth and other compatibility forms (fullwidth ``ignore`` is ``ignore``);
- zero-width, soft-hyphen, bidi and other invisible format characters are removed (the
  ``invisible-unicode`` rule reports them separately);
- Cyrillic and Greek letters that look like Latin ones are folded to Latin (``ign\u043ere``);
- Markdown emphasis (``*``, ``**``) is dropped, and lines are joined: a single line break
  inside a paragraph is a space, runs of spaces are one; a blank line still ends a
  paragraph (``\\n``), so "within one sentence" keeps its meaning.

:func:`normalise` returns the text and, for every character of it, the offset of the
character of the original that produced it, so a finding names the original line.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

# Look-alikes of Latin letters (Cyrillic, Greek, a few others) -> the Latin letter.
CONFUSABLES: Final = str.maketrans(
    # Cyrillic, Greek and other letters that render like Latin ones, written as escapes
    # (a reader cannot tell them apart in source, which is the point).
    (
        "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456"
        "\u0458\u0455\u0501\u051b\u051d\u04cf\u04bb\u0261"
        "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420"
        "\u0421\u0422\u0425\u0406\u0408\u0405\u03bf\u03b1"
        "\u03bd\u03c1\u03b9\u03ba\u03c4\u03c5\u03f2\u0391"
        "\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d"
        "\u039f\u03a1\u03a4\u03a5\u03a7\u0131\u2113\u0251"
    ),
    "aeopcyxijsdqwlhgABEKMHOPCTXIJSoavpiktucABEZHIKMNOPTYXila",
)
_INVISIBLE: Final = frozenset("\u00ad\u180e\u3164\u115f\u1160\uffa0\u034f")


@dataclass(frozen=True)
class Normalised:
    """Normalised text and, per character, the offset in the original it came from."""

    text: str
    origin: tuple[int, ...]

    def source_offset(self, index: int) -> int:
        if not self.origin:
            return 0
        return self.origin[min(max(index, 0), len(self.origin) - 1)]


def normalise(text: str) -> Normalised:
    """Fold ``text`` as described in the module doc. Linear in its length."""
    out: list[str] = []
    origin: list[int] = []
    pending_space = -1  # offset of the whitespace run not yet emitted
    newlines = 0
    for pos, raw in enumerate(text):
        if raw in _INVISIBLE or (unicodedata.category(raw) == "Cf"):
            continue
        folded = unicodedata.normalize("NFKC", raw).translate(CONFUSABLES)
        for ch in folded:
            if ch in _INVISIBLE or unicodedata.category(ch) == "Cf" or ch == "*":
                continue
            if ch.isspace():
                if pending_space < 0:
                    pending_space = pos
                newlines += ch == "\n"
                continue
            if pending_space >= 0 and out:
                out.append("\n" if newlines >= 2 else " ")
                origin.append(pending_space)
            pending_space, newlines = -1, 0
            out.append(ch)
            origin.append(pos)
    return Normalised("".join(out), tuple(origin))
