"""Private: Logging for the CLI: always stderr, human on a TTY, JSON lines on request, redacted.

Every record passes through :class:`RedactingFilter`, which masks every secret the process
has loaded (through :data:`impromptu_ops.secret.REDACTOR`) and every known key shape, in
the message, its arguments and any exception text. Library modules only call
``logging.getLogger(__name__)``; configuring handlers is the CLI's job (:func:`configure`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from impromptu_ops.secret import REDACTOR


class RedactingFilter(logging.Filter):
    """Renders the record's message once, redacted, and drops args and exc text secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = REDACTOR.redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = REDACTOR.redact(formatted)
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (and exc when present)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def configure(level: str = "warning", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Install one stderr handler on the root logger.

    Args:
        level: debug, info, warning or error.
        fmt: ``human``, ``json`` or ``auto`` (human on a TTY, JSON otherwise).
        stream: where to write (default: ``sys.stderr``).
    """
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "human" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # hvac and httpx log request lines; they never need to be louder than ours.
    for noisy in ("httpx", "httpcore", "hvac", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
