"""The one table from verdicts and outcomes to process exit codes, per command family.

The library returns verdicts (:class:`~impromptu_ops.policy.verdict.Status`), outcomes
(``ok`` / ``failed`` / ``skipped``) and errors; only the CLI turns them into exit codes,
here. Each error of :mod:`impromptu_ops.errors` still carries its generic code
(``OpsError.exit_code``, the sysexits.h meaning); the families below decide when a command
speaks another convention:

============  ==========================================================================
generic       0 done; an error's own code (65 data, 69 unavailable, 75 try later, 77
              refused, 78 config...); 2 click usage; 70 a bug of ours; 130/141/143 signals
nagios        ``health``: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; our own failure (bad
              config or flag, a bug) is UNKNOWN, never CRITICAL (Monitoring Plugins)
health        ``health --format legacy``: the original script's 0 healthy, 2 degraded,
legacy        1 unhealthy (it could not tell = unhealthy)
heartbeat     0 ok, 75 skipped (EX_TEMPFAIL: the one "skipped" for every scheduler),
              otherwise the failure's generic code
reconcile     ``earnings``: 0 reconciled, 1 discrepancies, 3 could not tell
drop-ins      ``legacy health``: 0 / 2 / 1 like the original; ``legacy heartbeat``: 0
              (a skipped run too), 1 failed
rotate        ``rotate``: 0 done, 1 failed safely, 2 key at risk, 75 busy or try later, 64
              usage (never 2, which would page someone)
============  ==========================================================================

Nothing outside ``cli/`` and ``errors.py`` defines an exit code
(``tests/test_layers.py`` checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from impromptu_ops.errors import EXIT_FAILURE, EXIT_OK, EXIT_SKIPPED, OpsError
from impromptu_ops.policy.verdict import Status

if TYPE_CHECKING:
    from impromptu_ops.rotation.outcome import Verdict

# generic
OK: Final = EXIT_OK
FAILURE: Final = EXIT_FAILURE
USAGE: Final = 2  # click's own usage error
INTERNAL: Final = 70  # EX_SOFTWARE: a bug of ours
INTERRUPTED: Final = 130  # 128 + SIGINT
BROKEN_PIPE: Final = 141  # 128 + SIGPIPE
TERMINATED: Final = 143  # 128 + SIGTERM
SKIPPED: Final = EXIT_SKIPPED

# nagios (Monitoring Plugins guidelines: "Plugin Return Codes")
NAGIOS: Final = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}
NAGIOS_USAGE: Final = NAGIOS[Status.UNKNOWN]
# health --format legacy: impromptu-health.sh's codes
HEALTH_LEGACY: Final = {Status.OK: 0, Status.WARNING: 2, Status.CRITICAL: 1,
                        Status.UNKNOWN: 1}

# reconcile (earnings)
RECONCILED: Final = 0
DISCREPANCIES: Final = 1
RECONCILE_UNKNOWN: Final = 3

# drop-ins (legacy/)
DROPIN_HEALTH: Final = {"HEALTHY": 0, "DEGRADED": 2, "UNHEALTHY": 1}
DROPIN_HEARTBEAT_OK: Final = 0
DROPIN_HEARTBEAT_FAILED: Final = 1


def for_error(exc: OpsError) -> int:
    """The generic family: an error's own code."""
    return exc.exit_code


def health(status: Status, fmt: str) -> int:
    """``health``: Nagios codes in every format but ``legacy``."""
    return HEALTH_LEGACY[status] if fmt == "legacy" else NAGIOS[status]


def health_unknown(fmt: str) -> int:
    """``health`` could not check (our failure, a bad flag): UNKNOWN in the format's terms."""
    return health(Status.UNKNOWN, fmt)


def heartbeat(outcome: str, failure_code: int) -> int:
    """``heartbeat``: ``ok`` 0, ``skipped`` 75, ``failed`` the failure's generic code."""
    if outcome == "ok":
        return OK
    if outcome == "skipped":
        return SKIPPED
    return failure_code


def reconcile(reconciled: bool | None) -> int:
    """``earnings``: True reconciled, False discrepancies, None could not tell."""
    if reconciled is None:
        return RECONCILE_UNKNOWN
    return RECONCILED if reconciled else DISCREPANCIES


def dropin_health(status: str) -> int:
    """``legacy health`` (scripts/impromptu-health): HEALTHY 0, DEGRADED 2, UNHEALTHY 1."""
    return DROPIN_HEALTH[status]


def dropin_heartbeat(ok: bool) -> int:
    """``legacy heartbeat`` (scripts/heartbeat): 0 (a skipped run too) or 1."""
    return DROPIN_HEARTBEAT_OK if ok else DROPIN_HEARTBEAT_FAILED


# rotate
ROTATE_USAGE: Final = 64
ROTATE_DONE, ROTATE_FAILED_SAFE, ROTATE_KEY_AT_RISK, ROTATE_TRY_LATER = 0, 1, 2, EXIT_SKIPPED


def rotate(verdict: Verdict) -> int:
    """``rotate``: the one mapping of a rotation verdict to the code schedulers see."""
    from impromptu_ops.rotation.outcome import Verdict

    return {Verdict.DONE: ROTATE_DONE, Verdict.FAILED_SAFE: ROTATE_FAILED_SAFE,
            Verdict.KEY_AT_RISK: ROTATE_KEY_AT_RISK, Verdict.BUSY: ROTATE_TRY_LATER}[verdict]


# fleet heartbeat: the most severe first (a refused key outranks bad data, config, an
# outage, a failure)
FLEET_HEARTBEAT_SEVERITY: Final = (77, 65, 78, 69, 74, INTERNAL, FAILURE)


def fleet_heartbeat(codes: set[int], any_run: bool) -> int:
    """``fleet heartbeat``: 0 when every agent ran or was skipped on purpose; the most
    severe failure's code otherwise; 75 when every agent was skipped."""
    failed = next((c for c in FLEET_HEARTBEAT_SEVERITY if c in codes), None)
    if failed is not None:
        return failed
    if codes - {OK, SKIPPED}:
        return FAILURE
    return SKIPPED if any_run and codes == {SKIPPED} else OK
