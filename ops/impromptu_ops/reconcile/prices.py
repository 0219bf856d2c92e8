"""Private: The user's price file: one price of the token per UTC day, in one named currency.

No price service is reachable from here, so fiat values come from a CSV the user supplies
(``--prices FILE``), e.g. exported from their exchange or tax tool. Two layouts are read::

    date,price,currency          date,EUR
    2026-01-31,0.0123,EUR        2026-01-31,0.0123

Dates are ``YYYY-MM-DD`` (UTC days); prices are plain decimals (``.`` as the decimal point,
no grouping, no exponent) of one whole token. One currency per file (a 3-12 letter code),
one price per day. Anything else is refused with the line number: a silently skipped row
would be a wrong tax figure. This module parses and looks up; reading the file (with its
size limit) is :func:`load_prices`.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from impromptu_ops.errors import InputError

_PRICE = re.compile(r"^\d{1,30}(?:\.\d{1,30})?$")
_CURRENCY = re.compile(r"^[A-Za-z]{3,12}$")


@dataclass(frozen=True)
class PriceList:
    currency: str
    by_day: dict[date, Decimal]

    def price(self, day: date) -> Decimal | None:
        return self.by_day.get(day)


def parse_prices(text: str, source: str = "prices") -> PriceList:
    """Parse the CSV text of a price file.

    Raises:
        InputError: a bad header, date, price or currency, a repeated day, or no rows.
    """
    try:
        rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    except csv.Error as exc:
        raise InputError(f"{source}: not a CSV file ({exc})") from None
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise InputError(f"{source}: empty price file (expected a header: date,price,currency)")
    header = [c.strip().lower() for c in rows[0]]
    fixed: str | None = None
    if header == ["date", "price", "currency"]:
        width = 3
    elif len(header) == 2 and header[0] == "date" and _CURRENCY.match(header[1]) \
            and header[1] != "price":
        width, fixed = 2, header[1].upper()
    else:
        raise InputError(f"{source}: the header must be 'date,price,currency' or "
                         "'date,<CURRENCY>'")
    currency = fixed
    by_day: dict[date, Decimal] = {}
    for number, row in enumerate(rows[1:], start=2):
        cells = [c.strip() for c in row]
        if len(cells) != width:
            raise InputError(f"{source} line {number}: expected {width} columns")
        try:
            day = date.fromisoformat(cells[0])
        except ValueError:
            raise InputError(f"{source} line {number}: {cells[0][:20]!r} is not a date "
                             "(YYYY-MM-DD)") from None
        if len(cells[0]) != 10:
            raise InputError(f"{source} line {number}: write dates as YYYY-MM-DD")
        if not _PRICE.match(cells[1]):
            raise InputError(f"{source} line {number}: {cells[1][:30]!r} is not a price "
                             "(digits, optional '.' decimals)")
        if width == 3:
            code = cells[2].upper()
            if not _CURRENCY.match(code):
                raise InputError(f"{source} line {number}: {cells[2][:20]!r} is not a "
                                 "currency code")
            if currency is not None and code != currency:
                raise InputError(f"{source} line {number}: currency {code}, but the file "
                                 f"started with {currency} (one currency per file)")
            currency = code
        if day in by_day:
            raise InputError(f"{source} line {number}: a second price for {day}")
        by_day[day] = Decimal(cells[1])
    if not by_day or currency is None:
        raise InputError(f"{source}: no prices in the file")
    return PriceList(currency, by_day)


def load_prices(path: Path, max_bytes: int) -> PriceList:
    """Read and parse a price file of at most ``max_bytes``.

    Raises:
        InputError: missing, unreadable, too large, not UTF-8, or malformed.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"--prices {path}: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > max_bytes:
        raise InputError(f"--prices {path}: larger than {max_bytes} bytes "
                         "(chain.max_price_file_bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--prices {path}: not UTF-8 text") from None
    return parse_prices(text, f"--prices {path.name}")
