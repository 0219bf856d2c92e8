"""Private: Healthchecks-style pings for every scheduled job: one implementation, used by one
wrapper.

The protocol is healthchecks.io's Pinging API (https://healthchecks.io/docs/http_api/,
https://healthchecks.io/docs/signaling_failures/,
https://healthchecks.io/docs/measuring_script_run_time/):

- ``<url>/start`` when a run begins (healthchecks measures the run's duration);
- ``<url>`` (success) when it ends with 0 **or was skipped** (exit 75: lock held, or paused
  by RATE_003/BUDG_001). A skip is a planned non-run, not a failure: ``/75`` would count as
  a failure ("all non-zero values as failures") and alert every half hour during a daily
  pause. The body says that the run was skipped and why;
- ``<url>/fail`` otherwise, with the exit code and the last ``jobs.ping_body_bytes`` of the
  job's output (redacted) as the body.

Every ping of one run carries the same ``rid`` query parameter, a lowercase canonical UUID
(blog.healthchecks.io, "Using Run IDs to Track Run Times Of Overlapping Jobs"), so start
and end pair up even when runs overlap.

A ping is a side channel: it never fails the job. It retries a 5xx answer or a network
error ``jobs.ping_attempts`` times with exponential backoff (``jobs.ping_backoff``,
doubled each time), never a 4xx (the URL is wrong: retrying cannot help). The URL works as
a bearer token, so it is never logged: log lines name only the kind of ping.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from impromptu_ops.secret import REDACTOR
from impromptu_ops.settings import JobSettings

log = logging.getLogger(__name__)

EXIT_SKIPPED = 75  # EX_TEMPFAIL: the one meaning of "skipped" for every scheduler
JOB_PLACEHOLDER = "{job}"


def ping_url(base: str, suffix: str, rid: str = "") -> str:
    """``base/suffix?rid=...`` (no suffix: the success URL); base's own query is kept."""
    parts = urllib.parse.urlsplit(base)
    path = parts.path.rstrip("/") + (f"/{suffix}" if suffix else "")
    query = [q for q in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if q[0] != "rid"]
    if rid:
        query.append(("rid", rid))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path,
                                    urllib.parse.urlencode(query), ""))


def job_url(template: str, job: str, *, default_job: str = "heartbeat") -> str:
    """The ping URL of ``job``: ``{job}`` in the setting is replaced by the job's name.

    Without ``{job}`` the URL is one check's, which has always been the heartbeat's: the
    other jobs do not ping it (a daily rotation pinging a 30-minute check would hide the
    heartbeat's silence and mix their alerts).
    """
    if not template:
        return ""
    if JOB_PLACEHOLDER in template:
        return template.replace(JOB_PLACEHOLDER, job)
    return template if job == default_job else ""


@dataclass
class Pinger:
    """Pings for one run of one job (one ``rid``)."""

    base: str
    attempts: int = 3
    backoff: float = 1.0
    timeout: float = 5.0
    body_bytes: int = 10_000
    rid: str = field(default_factory=lambda: str(uuid.uuid4()))
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls, base: str, jobs: JobSettings) -> Pinger:
        return cls(base, attempts=max(1, jobs.ping_attempts), backoff=max(0.0, jobs.ping_backoff),
                   timeout=jobs.ping_timeout, body_bytes=max(0, jobs.ping_body_bytes))

    def start(self) -> bool:
        return self._send("start", "")

    def success(self, body: str = "") -> bool:
        return self._send("", body)

    def skipped(self, reason: str) -> bool:
        """A skipped run (exit 75) is a success ping whose body says why."""
        return self._send("", f"skipped (exit {EXIT_SKIPPED}): {reason}".strip())

    def fail(self, exit_code: int, output: str) -> bool:
        # redacted whole, then cut: a key cut in half would slip past the patterns
        return self._send("fail", f"exit {exit_code}\n{self.tail(REDACTOR.redact(output))}")

    def tail(self, text: str) -> str:
        """The last ``body_bytes`` bytes of ``text`` (cut on a character boundary)."""
        data = text.encode("utf-8", "replace")
        if len(data) <= self.body_bytes:
            return text
        return data[len(data) - self.body_bytes:].decode("utf-8", "ignore")

    def _send(self, suffix: str, body: str) -> bool:
        """POST ``body``; True when accepted. Retries 5xx and network errors with backoff."""
        import http.client  # here: a job that pings nothing does not pay for http.client
        import urllib.error
        import urllib.request

        kind = suffix or "success"
        body = REDACTOR.redact(body)
        if not self.base.startswith(("http://", "https://")):
            log.warning("ping URL is not http(s); %s ping skipped", kind)
            return False
        url = ping_url(self.base, suffix, self.rid)
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            req = urllib.request.Request(  # noqa: S310 - the scheme is checked above
                url, data=body.encode("utf-8", "replace"), method="POST",
                headers={"User-Agent": "impromptu-ops",
                         "Content-Type": "text/plain; charset=utf-8"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                    status: int = resp.status
                if 200 <= status < 300:
                    return True
                why = f"HTTP {status}"
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    log.warning("%s ping refused: HTTP %s (check jobs.ping_url)", kind, exc.code)
                    return False
                why = f"HTTP {exc.code}"
            except (ValueError, http.client.InvalidURL) as exc:  # retrying cannot help
                log.warning("%s ping not sent: %s (check jobs.ping_url)", kind,
                            type(exc).__name__)
                return False
            except (OSError, http.client.HTTPException) as exc:  # reset, bad status line
                why = type(exc).__name__
            if attempt < self.attempts:
                log.info("%s ping attempt %d failed (%s); retrying in %.1f s", kind, attempt,
                         why, delay)
                self.sleep(delay)
                delay *= 2
            else:
                log.warning("%s ping failed after %d attempt(s): %s", kind, attempt, why)
        return False
