"""The one error tree of impromptu-ops.

Every failure the library can report is an :class:`OpsError`. The CLI catches this base
class once, prints :meth:`OpsError.diagnostics` as a single line on stderr and exits with
:attr:`OpsError.exit_code`. Tracebacks appear only with ``--debug``.

The tree separates "the data is bad or hostile" (:class:`IntegrityError`: refuse, never
retry) from "the network failed" (:class:`TransportError`: retry under a deadline)::

    OpsError                          1   base; diagnostics() tells a person what to do
    ├── ConfigError                  78   bad settings, config file or flag combination
    ├── InternalError                70   a bug of ours, kept as one fleet agent's outcome
    ├── InputError                   65   bad operator input (a file, stdin, an argument)
    ├── IntegrityError               65   data is bad or hostile: refuse, never retry
    │   ├── MalformedResponse        65   a peer sent a body we cannot parse or trust
    │   └── TamperedStore            65   the local store failed authentication
    ├── TransportError               69   the network failed (connect, timeout, reset)
    │   ├── ConnectFailed            69   no connection was made: nothing was sent
    │   └── DeadlineExceeded         69   retries ran out of their overall deadline
    ├── PlatformError                 1   the platform answered with an error code
    │   ├── AuthError                77   UNAUTHORIZED, ACCOUNT_NOT_ACTIVE, AUTHZ_001
    │   ├── NotFoundError             1   VAL_001, unknown path
    │   ├── ValidationFailed          1   VALIDATION_ERROR (fields in .fields)
    │   ├── RateLimited              75   RATE_001 / RATE_003 (see .retry_after, .daily)
    │   ├── BudgetExhausted          75   BUDG_001
    │   ├── RegistrationRefused       1   POW_* / PAYMENT_*
    │   ├── KeyManagementRefused      1   KEY_LIMIT / LAST_KEY
    │   └── ServerError              69   INTERNAL and other 5xx
    ├── LocalIOError                 74   a local file could not be written or read (disk
    │                                      full, read-only, permissions); also an OSError
    ├── StoreError                   74   the secret store refused or failed
    │   ├── StoreUnavailable         69   sealed, standby, uninitialised, unreachable
    │   ├── CasConflict              75   someone else wrote first
    │   └── SecretNotFound            1   no such secret
    ├── PolicyDenied                  1   a policy (update gate, caps) refused the action
    ├── ChainError                   69   the chain RPC failed or disagrees with config
    ├── LockBusy                     75   another run holds the lock (EX_TEMPFAIL)
    └── Interrupted                 130   Ctrl-C or a deadline stopped the work

Exit codes follow sysexits(3) where one fits. Commands with their own published exit
contract (``health --format nagios``, ``rotate``, ``earnings reconcile``) map these errors
themselves, through the one table in ``impromptu_ops/cli/exitcodes.py``; everything else
uses the codes above. Exit codes are defined here and in ``cli/`` only (a test checks it):
no error's code is 0, since an error never means success.

Messages must never contain secret values: build them from names, ids and masked values.
The CLI additionally passes every line it prints through the redactor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

# The generic codes a job records before the CLI maps anything (the heartbeat writes its run's
# code into its state file and its metrics): success, failure, and "skipped, try later".
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_SKIPPED: Final = 75  # EX_TEMPFAIL: the one meaning of "skipped" for every scheduler


class OpsError(Exception):
    """Base of every error impromptu-ops raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """One line for a person: what went wrong and, when known, what to do."""
        line = self.message.replace("\n", " ").strip()
        if self.hint:
            line = f"{line} (hint: {self.hint.replace(chr(10), ' ').strip()})"
        return line


class ConfigError(OpsError):
    """The configuration (file, env, flags) is invalid or incomplete."""

    exit_code = 78


class InternalError(OpsError):
    """A bug of ours caught where one part's failure must not stop the others (one agent's
    job in a fleet run), kept as that part's outcome; exit 70 as the CLI's own catch."""

    exit_code = 70


class InputError(OpsError):
    """Operator-supplied input (a file, stdin, an argument) is unusable."""

    exit_code = 65


class IntegrityError(OpsError):
    """Data is bad or hostile. Refuse; retrying will not help."""

    exit_code = 65


class MalformedResponse(IntegrityError):
    """A peer answered with a body that cannot be parsed or is out of bounds."""


class TamperedStore(IntegrityError):
    """The local encrypted store failed authentication or is truncated."""


class TransportError(OpsError):
    """The network failed: connection refused or reset, timeout, truncated transfer."""

    exit_code = 69


class ConnectFailed(TransportError):
    """No connection could be made (refused, unresolvable, connect or pool timeout).

    The request never left the process, so even a non-idempotent POST (a registration)
    certainly did not reach the server: callers may safely start over.
    """


class DeadlineExceeded(TransportError):
    """Retries were stopped by their overall deadline."""


class PlatformError(OpsError):
    """The platform answered with an error code.

    Attributes:
        code: the platform's error code (``RATE_001``...), or ``HTTP_<status>`` when absent.
        status: the HTTP status.
        retryable: what the server said (or what the code implies).
        request_id: the server's request id, for support tickets.
        method, url: the request, with no query string secrets (we never put any there).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int,
        hint: str | None = None,
        retryable: bool = False,
        request_id: str | None = None,
        method: str = "",
        url: str = "",
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = status
        self.retryable = retryable
        self.request_id = request_id
        self.method = method
        self.url = url
        self.fields: dict[str, Any] = dict(fields or {})

    def diagnostics(self) -> str:
        where = f" [{self.method} {self.url}]" if self.method else ""
        rid = f" request {self.request_id}" if self.request_id else ""
        base = f"{self.code} ({self.status}): {self.message}{where}{rid}"
        if self.fields:  # VALIDATION_ERROR: which fields, so the operator can fix them
            shown = "; ".join(
                f"{name}: " + (", ".join(map(str, msgs)) if isinstance(msgs, list | tuple)
                               else str(msgs))
                for name, msgs in list(self.fields.items())[:5])
            base = f"{base} (fields: {shown})"
        if self.hint:
            base = f"{base} (hint: {self.hint})"
        return base.replace("\n", " ")


class AuthError(PlatformError):
    """The key is missing, revoked or expired, the account is not active, or tier too low."""

    exit_code = 77


class NotFoundError(PlatformError):
    """The resource (node, endpoint) does not exist."""


class ValidationFailed(PlatformError):
    """The request had a bad field; ``fields`` maps field to messages."""


class RateLimited(PlatformError):
    """Burst limit (RATE_001) or daily quota (RATE_003)."""

    exit_code = 75

    def __init__(self, message: str, *, retry_after: float | None = None,
                 daily: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after
        self.daily = daily

    def diagnostics(self) -> str:
        line = super().diagnostics()
        if self.retry_after is not None:
            line = f"{line} (the platform asks to wait {self.retry_after:.0f}s)"
        return line


class BudgetExhausted(PlatformError):
    """Out of budget (BUDG_001); it regenerates hourly."""

    exit_code = 75


class RegistrationRefused(PlatformError):
    """A registration step was refused (POW_*, PAYMENT_*)."""


class KeyManagementRefused(PlatformError):
    """Key management refused (KEY_LIMIT, LAST_KEY)."""


class ServerError(PlatformError):
    """INTERNAL or another 5xx."""

    exit_code = 69


class LocalIOError(OpsError, OSError):
    """A local file or folder could not be written or read: disk full, quota, read-only
    file system, permissions. The message names the path.

    It is also an ``OSError`` (with ``errno`` and ``filename``), so that code which already
    treats a failed write of a side file as a warning (``except OSError``) keeps doing so.
    """

    exit_code = 74

    def __init__(self, message: str, *, errno: int | None = None, path: str | None = None,
                 reason: str | None = None, hint: str | None = None) -> None:
        # strerror keeps the OS's own words, for callers that add the path themselves
        OSError.__init__(self, errno, reason or message, path)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class StoreError(OpsError):
    """The secret store refused or failed."""

    exit_code = 74


class StoreUnavailable(StoreError):
    """The store cannot serve: sealed, standby, uninitialised or unreachable."""

    exit_code = 69


class CasConflict(StoreError):
    """A check-and-set write lost: the secret changed since it was read."""

    exit_code = 75


class SecretNotFound(StoreError):
    """No secret under that name (or that version)."""

    exit_code = 1


class PolicyDenied(OpsError):
    """A policy refused the action (update gate rule, a configured cap)."""


class ChainError(OpsError):
    """The chain RPC failed, or disagrees with the configuration (chain id, token)."""

    exit_code = 69


class LockBusy(OpsError):
    """Another run holds the lock; a scheduler should treat this as 'skipped'."""

    exit_code = 75


class Interrupted(OpsError):
    """Ctrl-C, a signal or a deadline stopped the work."""

    exit_code = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's timeout, ``systemctl stop``, ``kill``), raised in the main thread
    by the CLI's handler. A KeyboardInterrupt so that it unwinds exactly like Ctrl-C: every
    ``finally`` runs (locks, temporary files, workers stopped); the CLI exits 143."""
