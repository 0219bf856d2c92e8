"""Private: The daily look at the platform's skill manifest: is a newer skill waiting for review?

The heartbeat calls :func:`check_if_due` once per run. At most once a day
(:data:`CHECK_EVERY`) it GETs ``settings.manifest_url`` (size-capped, timed out, no
redirects), parses it with the update gate's strict parser, compares the published version
with the one the gate installed, and records the answer in ``<state_dir>/skill-check.json``
(0600, written atomically). It never fetches the skill's files and never installs anything:
installing stays ``impromptu-ops update fetch``/``approve``/``apply``, a person's decision.

The record is also what the drop-in ``scripts/impromptu-health`` reads to decide whether the
skill manifest is stale (:func:`last_check`). This module only reads the gate's folder
(:func:`installed_version`); the gate's logic stays in :mod:`impromptu_ops.gate`.

A 404 at the manifest URL is a successful check that found nothing published (recorded with
``published`` = ``None``); a network failure, an error status or a manifest the gate's parser
refuses is an :class:`~impromptu_ops.errors.OpsError` and records nothing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from impromptu_ops.atomic import write_json
from impromptu_ops.errors import IntegrityError, OpsError, TransportError
from impromptu_ops.settings import Settings

log = logging.getLogger(__name__)

RECORD_FILE: Final = "skill-check.json"
CHECK_EVERY: Final = 24 * 3600.0  # at most one look a day; also the drop-in's staleness limit


@dataclass(frozen=True)
class SkillCheck:
    """One successful look at the platform's manifest."""

    checked_at: float  # epoch seconds
    published: str | None  # the version the platform publishes (None: nothing published)
    installed: str | None  # the version the update gate had installed at that time

    @property
    def newer_waiting(self) -> bool:
        """A published version newer than the installed one (or none installed)."""
        from impromptu_ops.gate.manifest import version_key

        if self.published is None:
            return False
        if self.installed is None:
            return True
        try:
            return version_key(self.published) > version_key(self.installed)
        except IntegrityError:
            return self.published != self.installed

    def summary(self) -> str:
        """One line for the heartbeat's ``skill`` step."""
        if self.published is None:
            return "the platform publishes no skill manifest"
        if self.newer_waiting:
            have = f"installed v{self.installed}" if self.installed else "none installed"
            return (f"v{self.published} published ({have}): waiting for your review, "
                    "see `impromptu-ops update fetch`")
        return f"v{self.published} published, v{self.installed} installed: up to date"

    def to_json(self) -> dict[str, Any]:
        return {"checkedAt": self.checked_at, "published": self.published,
                "installed": self.installed}


def record_path(settings: Settings) -> Path:
    return settings.paths.state_dir / RECORD_FILE


def last_check(settings: Settings) -> SkillCheck | None:
    """The last successful check, or ``None`` (never checked, or an unreadable record)."""
    path = record_path(settings)
    try:
        with path.open("rb") as fh:
            raw = fh.read(64 * 1024)
        doc = json.loads(raw)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    at = doc.get("checkedAt")
    pub, inst = doc.get("published"), doc.get("installed")
    if not isinstance(at, int | float) or isinstance(at, bool):
        return None
    if not (pub is None or isinstance(pub, str)) or not (inst is None or isinstance(inst, str)):
        return None
    return SkillCheck(float(at), pub, inst)


def installed_version(settings: Settings) -> str | None:
    """The version the update gate has installed (read-only), or ``None``."""
    if not (settings.skill_dir / "current").is_symlink():  # nothing installed: skip the imports
        return None
    from impromptu_ops.gate.folder import SkillFolder
    from impromptu_ops.gate.tree import Caps

    g = settings.gate
    folder = SkillFolder(settings.skill_dir, Caps(g.max_file_bytes, g.max_total_bytes,
                                                  g.max_files), g.max_manifest_bytes)
    try:
        slot = folder.current_slot()
        if slot is None:
            return None
        version = folder.meta(slot).get("version")
    except (OpsError, OSError):
        return None
    return version if isinstance(version, str) else None


def _get_manifest(settings: Settings, timeout: float,
                  transport: httpx.BaseTransport | None) -> bytes | None:
    url = settings.manifest_url
    cap = settings.gate.max_manifest_bytes
    p = settings.platform
    limits = httpx.Timeout(min(p.read_timeout, timeout), connect=min(p.connect_timeout, timeout))
    started = time.monotonic()
    try:
        with httpx.Client(timeout=limits, follow_redirects=False, transport=transport,
                          headers={"User-Agent": p.user_agent}) as client, \
                client.stream("GET", url) as resp:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise TransportError(f"GET {url}: HTTP {resp.status_code}")
            got = bytearray()
            for chunk in resp.iter_bytes():
                got += chunk
                if len(got) > cap:
                    raise IntegrityError(f"GET {url}: the manifest exceeds {cap} bytes")
                if time.monotonic() - started > timeout:
                    raise TransportError(f"GET {url}: slower than {timeout:g} s")
            return bytes(got)
    except httpx.TimeoutException:
        raise TransportError(f"GET {url}: timed out") from None
    except httpx.HTTPError as exc:
        raise TransportError(f"GET {url}: {type(exc).__name__}") from None


def check_now(settings: Settings, now: float, timeout: float,
              transport: httpx.BaseTransport | None = None) -> SkillCheck:
    """Look at the platform's manifest now and record the answer.

    Raises:
        TransportError: the manifest could not be fetched.
        IntegrityError: the manifest is too large or the gate's parser refuses it.
    """
    from impromptu_ops.gate.manifest import parse_manifest

    raw = _get_manifest(settings, timeout, transport)
    published = None
    if raw is not None:
        published = parse_manifest(raw, max_files=settings.gate.max_files).version
    check = SkillCheck(now, published, installed_version(settings))
    try:
        write_json(record_path(settings), check.to_json())
    except OSError as exc:  # the check happened; only its record is lost
        log.warning("cannot record the skill check in %s: %s", record_path(settings),
                    exc.strerror)
    return check


def check_if_due(settings: Settings, now: float, timeout: float,
                 transport: httpx.BaseTransport | None = None) -> tuple[SkillCheck, bool]:
    """``(check, fresh)``: a new check when the last one is a day old (or absent), else the
    recorded one with ``fresh`` False. Raises as :func:`check_now`."""
    from dataclasses import replace

    last = last_check(settings)
    if last is not None and 0 <= now - last.checked_at < CHECK_EVERY:
        return replace(last, installed=installed_version(settings)), False
    return check_now(settings, now, timeout, transport), True
