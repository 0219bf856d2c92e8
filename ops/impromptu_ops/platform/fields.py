"""Private: Tolerant reading of the platform's JSON answers: each missing, null or mistyped member
becomes a problem string (``heartbeat.budgetBalance: null``) instead of an exception.

One reader for every consumer: :mod:`.results` builds typed values with it, and the health
checks (:mod:`impromptu_ops.health.answers`) read their few fields with it directly, so both
report the same problems in the same words and both follow ``_fieldMappings``. Plain class,
standard library only: cheap to import for a command whose start-up time is measured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from impromptu_ops.secret import clip

_BASE_UNITS = re.compile(r"^-?\d{1,78}$", re.ASCII)  # 2**256 has 78 digits
MAX_ITEMS = 10_000



class Reader:
    """Reads members of one JSON object, recording each problem instead of raising.

    The server's ``_fieldMappings`` (``{alias: canonical}``) is followed: a member asked for
    by its canonical name but sent under the alias is read from the alias. The mappings of
    the top-level object apply to the objects nested in it as well.

    Args:
        raw: the value to read (anything; a non-object is itself a problem).
        where: a label for problems (``heartbeat``, ``notifications[3]``).
        problems: a shared list to append to (nested readers share their parent's).
        aliases: ``{canonical: alias}`` inherited from a parent reader; by default taken
            from this object's own ``_fieldMappings``.
    """

    def __init__(self, raw: Any, where: str, problems: list[str] | None = None,
                 aliases: Mapping[str, str] | None = None) -> None:
        self.where = where
        self.problems = problems if problems is not None else []
        if isinstance(raw, dict):
            self.raw: dict[str, Any] = raw
        else:
            self.raw = {}
            self.problems.append(f"{where}: not an object")
        if aliases is None:
            inverse: dict[str, str] = {}
            for alias, canonical in self.field_mappings().items():
                inverse.setdefault(canonical, alias)
            aliases = inverse
        self.aliases: Mapping[str, str] = aliases

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.raw and self.aliases.get(key) in self.raw:
            key = self.aliases[key]  # the server said it names this member differently
        value = self.raw.get(key)
        if value is None and required:
            self.problems.append(f"{self.where}.{key}: missing" if key not in self.raw
                                 else f"{self.where}.{key}: null")
        return value

    def _bad(self, key: str, want: str) -> None:
        self.problems.append(f"{self.where}.{key}: not {want}")

    def text(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is None or isinstance(value, str):
            return value
        self._bad(key, "a string")
        return None

    def integer(self, key: str, required: bool = True) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        self._bad(key, "an integer")
        return None

    def number(self, key: str, required: bool = True) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        self._bad(key, "a number")
        return None

    def amount(self, key: str, required: bool = True) -> int | None:
        """A decimal string of base units (an exact JSON integer is accepted too)."""
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and _BASE_UNITS.match(value.strip()):
            return int(value.strip())
        self._bad(key, "an amount in base units")
        return None

    def flag(self, key: str, required: bool = True) -> bool | None:
        value = self._get(key, required)
        if value is None or isinstance(value, bool):
            return value
        self._bad(key, "a boolean")
        return None

    def array(self, key: str, required: bool = True) -> list[Any]:
        value = self._get(key, required)
        if value is None:
            return []
        if isinstance(value, list):
            if len(value) > MAX_ITEMS:
                self.problems.append(f"{self.where}.{key}: more than {MAX_ITEMS} items")
                return value[:MAX_ITEMS]
            return value
        self._bad(key, "a list")
        return []

    def obj(self, key: str, required: bool = True) -> Reader:
        value = self._get(key, required)
        if value is None:
            return Reader({}, f"{self.where}.{key}", [], self.aliases)  # absence recorded
        return Reader(value, f"{self.where}.{key}", self.problems, self.aliases)

    def items(self, key: str, required: bool = True) -> list[Reader]:
        return [Reader(v, f"{self.where}.{key}[{i}]", self.problems, self.aliases)
                for i, v in enumerate(self.array(key, required))]

    def field_mappings(self) -> dict[str, str]:
        value = self.raw.get("_fieldMappings")
        if not isinstance(value, dict):
            return {}
        return {clip(str(k), 64): clip(str(v), 64) for k, v in list(value.items())[:50]
                if isinstance(v, str)}
