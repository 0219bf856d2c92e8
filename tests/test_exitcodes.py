"""The one table from verdicts to exit codes (cli/exitcodes.py), and health's could-not-check
answer rendered by the library (health/render.py). No server needed.

Monitoring Plugins guidelines, "Plugin Return Codes": 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN, and one status line on stdout; sysexits(3) for EX_TEMPFAIL (75).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.cli import exitcodes
from impromptu_ops.errors import ConfigError, LockBusy
from impromptu_ops.health.render import FORMATS, render_unknown
from impromptu_ops.policy.verdict import Status


@pytest.mark.parametrize(("status", "nagios", "legacy"), [
    (Status.OK, 0, 0), (Status.WARNING, 1, 2), (Status.CRITICAL, 2, 1), (Status.UNKNOWN, 3, 1)])
def test_health_codes_per_format(status: Status, nagios: int, legacy: int) -> None:
    for fmt in ("text", "nagios", "json", "prometheus"):
        assert exitcodes.health(status, fmt) == nagios
    assert exitcodes.health(status, "legacy") == legacy


def test_could_not_check_is_unknown_never_critical() -> None:
    assert exitcodes.health_unknown("nagios") == 3 == exitcodes.NAGIOS_USAGE
    assert exitcodes.health_unknown("legacy") == 1  # the original script's "unhealthy"


def test_heartbeat_and_dropin_and_reconcile_families() -> None:
    assert exitcodes.heartbeat("ok", 0) == 0
    assert exitcodes.heartbeat("skipped", 0) == 75
    assert exitcodes.heartbeat("failed", 77) == 77
    assert exitcodes.dropin_heartbeat(True) == 0 and exitcodes.dropin_heartbeat(False) == 1
    assert [exitcodes.dropin_health(s) for s in ("HEALTHY", "DEGRADED", "UNHEALTHY")] == \
        [0, 2, 1]
    assert (exitcodes.reconcile(True), exitcodes.reconcile(False),
            exitcodes.reconcile(None)) == (0, 1, 3)
    assert exitcodes.for_error(ConfigError("x")) == 78
    assert exitcodes.for_error(LockBusy("x")) == exitcodes.SKIPPED == 75


@given(st.sampled_from(FORMATS), st.text(max_size=200))
def test_could_not_check_answer_per_format(fmt: str, message: str) -> None:
    stdout, stderr = render_unknown(fmt, message)
    if fmt == "nagios":
        assert stdout.startswith("IMPROMPTU UNKNOWN - ")
        assert stdout.isprintable() and "|" not in stdout  # one line, no perfdata
        assert stderr == ""
    elif fmt == "json":
        doc = json.loads(stdout)
        assert doc["status"] == "UNKNOWN" and doc["code"] == 3 and doc["error"] == message
    elif fmt == "prometheus":
        assert stdout.endswith("impromptu_health_status 3")
        assert stderr == f"impromptu-ops health: {message}"
    elif fmt == "legacy":
        assert stdout.endswith("\nStatus: unhealthy") and stdout.startswith("[FAIL] ")
    else:
        assert stdout == "" and stderr == f"impromptu-ops health: {message}"
