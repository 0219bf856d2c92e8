"""``impromptu-health.sh``'s checks, sections and verdicts, on top of the new core.

Facts kept (``/work/shared/original-interfaces.md``): six sections, each an empty line, its
title and a rule of 60 ``-``; check lines ``[OK] ...``, ``[WARN] ...``, ``[FAIL] ...`` with
detail lines indented five spaces; the same check texts; a 10 s limit per request; null
fields shown as ``unknown`` or ``0``, never a failure; ``Status: HEALTHY`` (exit 0),
``DEGRADED`` (2, warnings only) or ``UNHEALTHY`` (1), each followed by an empty line and the
original's sentence; colours only on a terminal.

Deliberate differences (also in the script's header and the README):

- dependencies are what the drop-in needs (impromptu-ops and Python), not curl and jq;
- keys come from the secret store, else (the old way) from the environment, with a hint on
  stderr; the advice says how to store a key instead of ``export``;
- the registration check uses ``platform.path_prefix`` (``/v1/agent/heartbeat`` by
  default); it says ``Agent not registered or invalid API key`` only when the platform
  refused the key (or answered with an ``"error"`` member, as the original read it); when it
  could not ask (platform unreachable, timeout, 5xx) it says ``Cannot check registration
  (...)`` instead of blaming the key;
- the skill manifest counts as cached when ``~/.impromptu/impromptu.skill.json`` exists or
  the update gate has installed a version, and as stale when neither the file's mtime nor the
  heartbeat's last successful look at the platform's manifest is within 24 h.

:func:`run_checks` does the I/O and returns a :class:`LegacyHealth`; :func:`render` is pure.
"""

from __future__ import annotations

import json
import platform as py_platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from impromptu_ops import __version__, contract
from impromptu_ops.errors import AuthError, NotFoundError, OpsError
from impromptu_ops.legacy import MANIFEST_FILE, NOTIFICATIONS_URL, SETUP_URL, legacy_dir, shown
from impromptu_ops.legacy.keys import (
    OPENROUTER_KEY,
    PLATFORM_KEY,
    FoundKey,
    env_hint,
    find_keys,
    legacy_mask,
)
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings

if TYPE_CHECKING:
    from impromptu_ops.store.base import SecretStore

REQUEST_TIMEOUT: Final = 10.0  # the original's `curl --max-time 10`, per request
STALE_AFTER: Final = 86_400.0  # the original's manifest age limit (mtime), in seconds
RULE: Final = "-" * 60
INDENT: Final = " " * 5
MAX_TEXT: Final = 200
_COLOURS: Final = {"OK": "\033[0;32m", "WARN": "\033[1;33m", "FAIL": "\033[0;31m"}
_RESET: Final = "\033[0m"
_STATUS_COLOUR: Final = {"HEALTHY": "OK", "DEGRADED": "WARN", "UNHEALTHY": "FAIL"}
SENTENCES: Final = {
    "HEALTHY": "All checks passed. Your agent is ready to participate.",
    "DEGRADED": "{w} warning(s) detected. Your agent is operational but some optional "
                "features may be missing.",
    "UNHEALTHY": "{e} error(s) detected. Please resolve the issues above before proceeding.",
}
EXIT: Final = {"HEALTHY": 0, "DEGRADED": 2, "UNHEALTHY": 1}


@dataclass(frozen=True)
class Line:
    """A check line (``tag`` OK, WARN or FAIL) or a detail line (``tag`` empty)."""

    tag: str
    text: str


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class LegacyHealth:
    """All sections but the summary, and the stderr notes (keys read from the environment)."""

    sections: tuple[Section, ...]
    notes: tuple[str, ...] = ()

    def _count(self, tag: str) -> int:
        return sum(1 for s in self.sections for ln in s.lines if ln.tag == tag)

    @property
    def warnings(self) -> int:
        return self._count("WARN")

    @property
    def errors(self) -> int:
        return self._count("FAIL")

    @property
    def status(self) -> str:
        if self.errors:
            return "UNHEALTHY"
        return "DEGRADED" if self.warnings else "HEALTHY"

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]


def _text(value: object, default: str = "unknown", limit: int = MAX_TEXT) -> str:
    return shown(value, default, limit)


def render(result: LegacyHealth, colour: bool = False) -> str:
    """The whole output, summary included (no trailing newline)."""
    def tagged(line: Line) -> str:
        if not line.tag:
            return INDENT + line.text
        tag = f"[{line.tag}]"
        if colour:
            tag = f"{_COLOURS[line.tag]}{tag}{_RESET}"
        return f"{tag} {line.text}"

    out: list[str] = []
    for section in result.sections:
        out += ["", section.title, RULE, *(tagged(ln) for ln in section.lines)]
    status = result.status
    word = f"{_COLOURS[_STATUS_COLOUR[status]]}{status}{_RESET}" if colour else status
    out += ["", "Health Check Summary", RULE, "", f"Status: {word}", "",
            SENTENCES[status].format(w=result.warnings, e=result.errors)]
    return "\n".join(out)


# --- the checks (I/O) ----------------------------------------------------------------------

def _dependencies() -> Section:
    return Section("Checking dependencies...", (
        Line("OK", f"impromptu-ops installed (v{__version__})"),
        Line("OK", f"Python installed (v{py_platform.python_version()})"),
    ))


def _key_lines(found: FoundKey, optional: str | None) -> list[Line]:
    var = found.env_name
    if found.secret is not None:
        return [Line("OK", f"{var} configured ({legacy_mask(found.secret.reveal())})")]
    if found.store_problem is not None and optional is None:
        return [Line("FAIL", f"{var} cannot be read (the secret store is unavailable)"),
                Line("", _text(found.store_problem))]
    if optional is not None:
        lines = [Line("WARN", f"{var} not set ({optional})"),
                 Line("", "Get one at: https://openrouter.ai/keys")]
    else:
        lines = [Line("FAIL", f"{var} not set"), Line("", f"Get your key at: {SETUP_URL}"),
                 Line("", f"Then: impromptu-ops secrets put {found.name}")]
    if found.store_problem is not None:
        lines.append(Line("", f"(the secret store could not be read: "
                              f"{_text(found.store_problem)})"))
    return lines


def _get(settings: Settings, path: str, bearer: Secret | None) -> Any:
    """One GET of ``{base}{path}`` within the original's 10 s, as the original's one curl:
    no retries (a check reports the state now), raising the typed error of the contract."""
    from impromptu_ops.health import probe

    p = settings.platform
    return probe.get(p.api_url.rstrip("/") + path, timeout=REQUEST_TIMEOUT,
                     max_bytes=p.max_response_bytes, user_agent=p.user_agent, bearer=bearer)


def _connectivity(settings: Settings) -> tuple[Section, bool]:
    from impromptu_ops.platform.results import parse_health

    base = settings.platform.api_url
    title = "Checking API connectivity..."
    try:
        resp = _get(settings, "/health", None)  # sent without the key
    except OpsError:
        return Section(title, (
            Line("FAIL", f"Cannot reach API endpoint ({base})"),
            Line("", "Check your network connection or try again later"),
            Line("", "Status page: https://status.impromptusocial.ai"))), False
    try:
        status = parse_health(resp.json("GET /health")).status
    except OpsError:  # answered, but not JSON: the original's jq found no status either
        status = None
    return Section(title, (
        Line("OK", f"API endpoint reachable ({base})"),
        Line("OK" if status in ("ok", "healthy") else "WARN",
             f"API status: {_text(status)}"))), True


def _registration(settings: Settings, key: FoundKey, reachable: bool) -> Section:
    from impromptu_ops.platform.results import parse_heartbeat

    title = "Checking agent registration..."
    if key.secret is None:
        return Section(title, (Line("FAIL", "Cannot check registration (no API key)"),))
    if not reachable:
        return Section(title, (Line("FAIL", "Cannot check registration (API unreachable)"),))
    refused = (Line("FAIL", "Agent not registered or invalid API key"),
               Line("", f"Register at: {SETUP_URL}"))
    prefix = contract.PATH_PREFIXES[settings.platform.path_prefix]
    try:
        resp = _get(settings, f"{prefix}/agent/heartbeat", key.secret)
    except (AuthError, NotFoundError):
        return Section(title, refused)
    except OpsError as exc:
        return Section(title, (Line("FAIL", "Cannot check registration (the heartbeat "
                                            "request failed)"),
                               Line("", _text(exc.diagnostics()))))
    if b'"error"' in resp.body:  # the original's test of the body, kept
        return Section(title, refused)
    try:
        hb = parse_heartbeat(resp.json("GET heartbeat"))
    except OpsError as exc:
        return Section(title, (Line("FAIL", "Cannot check registration (the answer is not "
                                            "JSON)"),
                               Line("", _text(exc.diagnostics()))))
    unread = hb.unread_notifications or 0
    lines = [Line("OK", "Agent registered and authenticated"),
             Line("OK", f"Agent ID: {_text(hb.agent_id)}"),
             Line("", f"Name: {_text(hb.name)}"),
             Line("OK", f"Current tier: {_text(hb.tier)}"),
             Line("", f"Reputation: {_text(hb.reputation, '0')}"),
             Line("OK", f"Token balance: {_text(hb.token_balance, '0')} IMPRMPT"),
             Line("", f"Budget balance: {_text(hb.budget_balance, '0')}")]
    if unread > 0:
        lines += [Line("WARN", f"{unread} unread notifications"),
                  Line("", f"Check at: {NOTIFICATIONS_URL}")]
    else:
        lines.append(Line("OK", "No pending notifications"))
    return Section(title, tuple(lines))


def _manifest_version(path: Path, cap: int) -> str:
    try:
        with path.open("rb") as fh:
            doc = json.loads(fh.read(cap + 1)[:cap])
    except (OSError, ValueError):
        return "unknown"
    return _text(doc.get("version"), "unknown") if isinstance(doc, dict) else "unknown"


def _manifest(settings: Settings, home: Path, now: float) -> Section:
    from impromptu_ops.jobs.skillcheck import installed_version, last_check

    title = "Checking skill manifest..."
    path = legacy_dir(home) / MANIFEST_FILE
    try:
        mtime: float | None = path.stat().st_mtime if path.is_file() else None
    except OSError:
        mtime = None
    installed = installed_version(settings)
    if mtime is None and installed is None:
        return Section(title, (Line("WARN", "Skill manifest not cached"),
                               Line("", "Install it through the update gate: "
                                        "impromptu-ops update fetch")))
    version = installed or _manifest_version(path, settings.gate.max_manifest_bytes)
    lines = [Line("OK", f"Skill manifest cached (v{version})")]
    check = last_check(settings)
    seen = [t for t in (mtime, check.checked_at if check else None) if t is not None]
    if not seen:
        lines += [Line("WARN", "Skill manifest is stale (never checked)"),
                  Line("", "Run scripts/heartbeat to check the platform's manifest")]
    elif now - max(seen) > STALE_AFTER:
        hours = int((now - max(seen)) // 3600)
        lines += [Line("WARN", f"Skill manifest is stale ({hours} hours old)"),
                  Line("", "Run scripts/heartbeat to check the platform's manifest")]
    return Section(title, tuple(lines))


def run_checks(settings: Settings, env: Mapping[str, str], home: Path, now: float, *,
               open_store: Callable[[], SecretStore]) -> LegacyHealth:
    """Run the original's checks in its order; never raises for what it checks.

    ``open_store`` opens the agent's store (:attr:`impromptu_ops.api.Agent.store`).
    """
    platform_key, openrouter_key = find_keys(open_store, [PLATFORM_KEY, OPENROUTER_KEY], env)
    environment = Section("Checking environment...", tuple(
        _key_lines(platform_key, None)
        + _key_lines(openrouter_key, "optional for LLM inference")))
    connectivity, reachable = _connectivity(settings)
    registration = _registration(settings, platform_key, reachable)
    sections = (_dependencies(), environment, connectivity, registration,
                _manifest(settings, home, now))
    hint = env_hint("impromptu-health", [platform_key, openrouter_key])
    return LegacyHealth(sections, (hint,) if hint else ())
