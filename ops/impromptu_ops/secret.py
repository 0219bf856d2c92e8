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

import re
import threading
from typing import Final

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


class Redactor:
    """Replaces every known secret value and key shape in text with its mask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        """Remember ``value`` so that it is scrubbed from all later output."""
        if len(value) < 6:  # too short to scrub without mangling ordinary words
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                alts = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in alts))
            return self._pattern

    def redact(self, text: str) -> str:
        """Return ``text`` with known secrets and key-shaped strings masked."""
        pattern = self._compiled()
        if pattern is not None:
            text = pattern.sub(lambda m: mask(m.group(0)), text)
        return contract.KEY_SHAPES.sub(lambda m: mask(m.group(0)), text)


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
