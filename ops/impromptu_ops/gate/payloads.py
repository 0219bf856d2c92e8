"""Private: what a line really holds: hidden characters shown, base64 and hex blobs decoded. Pure.

:func:`visible` shows every control, format, bidi and invisible character as ``<U+XXXX>``
(excerpts and the rendered diff use it, so a reviewer sees what is really there);
:func:`decoded_payloads` decodes the base64 and hex blobs of a text, nested up to a depth,
so that :mod:`.scan` can read them again.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterator
from typing import Final

_B64_RE: Final = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_-]{16,}={0,2}")
_HEX_RE: Final = re.compile(r"(?:\\x[0-9a-fA-F]{2}){8,}|\b(?:[0-9a-fA-F]{2}){12,}\b")
_INVISIBLE: Final = frozenset("\u00ad\u180e\u3164\u115f\u1160\uffa0")
_HIDDEN_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"})


def visible(text: str, limit: int = 160) -> str:
    """``text`` with every control, format, bidi or invisible character shown as ``<U+XXXX>``.

    Args:
        text: any text.
        limit: longer results are cut to this many characters, ending with ``…``.
    """
    out: list[str] = []
    for ch in text[:limit + 1]:  # each character shows as at least one: the rest is cut
        if ch != "\t" and (unicodedata.category(ch) in _HIDDEN_CATEGORIES or ch in _INVISIBLE):
            out.append(f"<U+{ord(ch):04X}>")
        else:
            out.append(ch)
    shown = "".join(out)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _decode_blob(blob: str) -> str | None:
    raw: bytes | None = None
    if blob.startswith("\\x"):
        raw = bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-fA-F]{2})", blob))
    elif re.fullmatch(r"[0-9a-fA-F]+", blob) and len(blob) % 2 == 0:
        raw = bytes.fromhex(blob)
    if raw is None:
        padded = blob + "=" * (-len(blob) % 4)
        for decoder in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                raw = decoder(padded)
                break
            except (binascii.Error, ValueError):
                continue
    if not raw:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t\r" for ch in text)
    return text if printable >= 0.9 * len(text) else None


def decoded_payloads(text: str, min_chars: int, depth: int) -> Iterator[tuple[int, str]]:
    """``(offset, decoded text)`` for base64 or hex blobs in ``text``, up to ``depth`` levels.

    Nested payloads report the offset of the outermost blob.
    """
    if depth <= 0:
        return
    for m in [*_B64_RE.finditer(text), *_HEX_RE.finditer(text)]:
        if len(m.group(0)) < min_chars:
            continue
        decoded = _decode_blob(m.group(0))
        if decoded:
            yield m.start(), decoded
            for _off, inner in decoded_payloads(decoded, min_chars, depth - 1):
                yield m.start(), inner
