"""The :class:`Secret` value type and the process-wide redactor.

A secret is not a ``str``: its ``str``/``repr``/``format`` are masked, so an f-string or a
log call cannot leak it by accident. The only ways out are :meth:`Secret.reveal` (to put it
into the store, a child's environment or an ``Authorization`` header) and nothing else.

Every ``Secret`` registers its value with :data:`REDACTOR`, which the logging filter and the
CLI's output path use to scrub any text before it leaves the process. The redactor also
knows the key *shapes* of the platform, OpenRouter, Vault tokens and hex private keys, so a
secret the process never loaded is still masked.

This module owns masking; it does not own storage (see :mod:`impromptu_ops.store`).
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Final
from urllib.parse import quote, quote_plus, unquote_plus

from impromptu_ops import contract

MASK: Final = "****"


def mask(value: str) -> str:
    """A display form that shows only enough to tell two keys apart.

    Keeps a known prefix (``impr_sk_``, ``sk-or-v1-``, ``hvs.``) and the last 4 characters
    when the value is long enough that 4 characters reveal nothing useful.
    """
    for prefix in contract.KEY_PREFIXES:
        if value.startswith(prefix) and len(value) >= len(prefix) + 24:
            return f"{prefix}{MASK}{value[-4:]}"
    if len(value) >= 24:
        return f"{MASK}{value[-4:]}"
    return MASK


# A known key prefix followed by a few key characters is a key even when someone cut it
# short (a message truncated before it reached us): mask the rest, however short.
_CUT_KEY = re.compile(r"impr_sk_[A-Za-z0-9_-]{4,}|sk-or-v1-[A-Za-z0-9]{4,}"
                      r"|\bhv[sbr]\.[A-Za-z0-9_-]{8,}")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=")
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
# Words, then those holding a %XX: a single pattern with % in the middle would backtrack
# quadratically over a long word with a % near its end (a hostile body could send one).
_WORD = re.compile(r"[^\s\"'<>]+")
_PCT = re.compile(r"%[0-9A-Fa-f]{2}")
_PREFIX_LEN = 12  # a held value's first 12 characters, then anything: a cut copy of it
_MIN_CORE = 12  # shortest base64 core of a held value worth matching


def _b64_cores(value: bytes) -> list[str]:
    """The base64 text that ``value`` contributes to *any* base64 string containing it.

    Base64 works in 3-byte groups, so the encoding of ``value`` inside a larger blob (like
    ``Bearer KEY``) depends on its offset modulo 3; for each offset, keep only the
    characters that come from ``value``'s bytes alone.
    """
    cores: list[str] = []
    for offset in range(3):
        padded = b"\0" * offset + value
        full = (len(padded) // 3) * 4
        text = base64.b64encode(padded).decode("ascii")[:full]
        core = text[(0, 2, 3)[offset]:]
        if len(core) >= _MIN_CORE:
            cores.append(core)
            cores.append(core.replace("+", "-").replace("/", "_"))
    return cores


class Redactor:
    """Replaces every known secret value and key shape in text with its mask.

    Besides the exact value, a held secret is recognised when it was cut short (its first
    characters), URL-encoded, or inside base64 (``base64("Bearer KEY")`` too); a key shape
    is recognised inside base64 and percent-encoding as well. Masking works on the whole
    text *before* anyone shortens it: :func:`clip` is the one way to shorten text for show.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._cores: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        """Remember ``value`` so that it is scrubbed from all later output."""
        if len(value) < 6:  # too short to scrub without mangling ordinary words
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def _compiled(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        with self._lock:
            if self._pattern is None and self._values:
                forms: set[str] = set()
                cores: set[str] = set()
                for v in self._values:
                    forms.update({re.escape(v), re.escape(quote(v, safe="")),
                                  re.escape(quote_plus(v))})
                    if len(v) >= 16:
                        forms.add(re.escape(v[:_PREFIX_LEN]) + r"[^\s\"'<>,;]*")
                    cores.update(_b64_cores(v.encode("utf-8")))
                alts = sorted(forms, key=len, reverse=True)
                self._pattern = re.compile("|".join(alts))
                self._cores = re.compile("|".join(
                    re.escape(c) for c in sorted(cores, key=len, reverse=True))) \
                    if cores else None
            if not self._values:
                return None, None
            return self._pattern, self._cores

    def _hides_secret(self, text: str, held: re.Pattern[str] | None) -> bool:
        return bool(contract.KEY_SHAPES.search(text) or _CUT_KEY.search(text)
                    or (held is not None and held.search(text)))

    def _decoded(self, token: str) -> str | None:
        """``token`` decoded as standard or URL-safe base64 (latin-1), if it is one."""
        body = token.rstrip("=")
        for alphabet in (None, b"-_"):
            try:
                raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=alphabet,
                                       validate=True)
            except ValueError:
                continue
            return raw.decode("latin-1")
        return None

    def redact(self, text: str) -> str:
        """Return ``text`` with known secrets and key-shaped strings masked, in plain,
        cut, URL-encoded and base64 forms."""
        held, cores = self._compiled()
        # Shapes first: a held value that is only part of a key (a prefix someone stored,
        # a short test value) must not eat the prefix and leave the key's body unmatched.
        text = contract.KEY_SHAPES.sub(lambda m: mask(m.group(0)), text)
        text = _CUT_KEY.sub(lambda m: mask(m.group(0)), text)
        if held is not None:  # a cut or encoded copy shows no characters at all
            text = held.sub(lambda m: mask(m.group(0)) if m.group(0) in self._values
                            else MASK, text)
        if cores is not None:
            text = self._mask_spans(text, [m.span() for m in cores.finditer(text)])
        spans = []
        for m in _B64_TOKEN.finditer(text):
            decoded = self._decoded(m.group(0))
            if decoded is not None and self._hides_secret(decoded, held):
                spans.append(m.span())
        text = self._mask_spans(text, spans)
        if "%" in text:
            spans = [m.span() for m in _WORD.finditer(text)
                     if _PCT.search(m.group(0))
                     and self._hides_secret(unquote_plus(m.group(0)), held)]
            text = self._mask_spans(text, spans)
        return text

    @staticmethod
    def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
        """Replace each span, widened to its whole base64 token, with the mask."""
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for first, last in spans:
            start, end = first, last
            while start > pos and text[start - 1] in _B64_CHARS:
                start -= 1
            while end < len(text) and text[end] in _B64_CHARS:
                end += 1
            if start < pos:  # overlaps the previous span: already masked
                start = pos
                if end <= pos:
                    continue
            out.append(text[pos:start])
            out.append(MASK)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def holds_secret(self, text: str) -> bool:
        """Whether ``text`` shows a secret in any form :meth:`redact` would mask."""
        return self.redact(text) != text


def clip(text: str, limit: int, ellipsis: str = "…") -> str:
    """``text`` redacted first, then cut to ``limit`` characters: cutting first would let a
    key cut in half slip past the patterns that recognise it whole."""
    text = REDACTOR.redact(text)
    return text if len(text) <= limit else text[:limit] + ellipsis


REDACTOR: Final = Redactor()


class Secret:
    """A secret string whose textual forms are masked.

    Args:
        value: the secret itself. It is registered with the process redactor.
        name: an optional label (``impromptu-api-key``) shown in place of the value.
    """

    __slots__ = ("_name", "_value")

    def __init__(self, value: str, name: str = "") -> None:
        if not isinstance(value, str):
            raise TypeError("Secret value must be str")
        self._value = value
        self._name = name
        REDACTOR.register(value)

    def reveal(self) -> str:
        """The value itself. Call only at the edge where it must leave the process."""
        return self._value

    @property
    def name(self) -> str:
        return self._name

    @property
    def masked(self) -> str:
        return mask(self._value)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        label = f" {self._name}" if self._name else ""
        return f"<Secret{label} {self.masked}>"

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            import hmac

            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("Secret values are not picklable")
