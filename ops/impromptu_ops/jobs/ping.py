"""Healthchecks-style pings: ``<url>/start`` when a run begins, ``<url>/<exit code>`` at the end.

The protocol of healthchecks.io (and compatible servers such as Uptime Kuma's push URLs
with a suffix): a GET or POST to ``/start`` measures the run's duration, and ``/<status>``
with status 0 means success, anything else failure. A ping is a side channel: it never
fails the job, never retries for long, and its URL (which works as a bearer token) is
never logged.
"""

from __future__ import annotations

import logging
import urllib.request

from impromptu_ops.secret import clip

log = logging.getLogger(__name__)
PING_TIMEOUT = 5.0


def ping_url(base: str, suffix: str) -> str:
    return f"{base.rstrip('/')}/{suffix}"


def ping(base: str, suffix: str, body: str = "", timeout: float = PING_TIMEOUT) -> bool:
    """POST ``body`` (a short run summary) to ``base/suffix``; True when it was accepted."""
    if not base.startswith(("http://", "https://")):
        log.warning("ping URL is not http(s); ping skipped")
        return False
    req = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        ping_url(base, suffix), data=clip(body, 10_000).encode(), method="POST",
        headers={"User-Agent": "impromptu-ops"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            status: int = resp.status
            return 200 <= status < 300
    except (OSError, ValueError) as exc:
        log.warning("ping %s failed: %s", suffix, type(exc).__name__)
        return False
