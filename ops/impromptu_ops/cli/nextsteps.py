"""What to do next, for every error a user can hit: one table, applied by the CLI's one
error catch (:func:`impromptu_ops.cli.main.run`).

An error that carries its own hint (the precise fix, e.g. ``chmod 600 FILE``) keeps it;
any other gets the step of its nearest class here, so no error line ends without one.
``{cmd}`` is the command that failed (``impromptu-ops secrets get``).
"""

from __future__ import annotations

from impromptu_ops.errors import OpsError

_NETWORK = ("the server did not answer: check its URL with `impromptu-ops config show` "
            "(platform.api_url, env IMPROMPTU_API_URL) and that it is up "
            "(`impromptu-ops api status`), then run `{cmd}` again")

# error class name -> next step (the nearest class in the error's MRO wins)
NEXT_STEPS: dict[str, str] = {
    "SecretNotFound": "`impromptu-ops secrets list` shows what is stored; "
                      "`impromptu-ops secrets put NAME` stores a key (the platform key comes "
                      "with `impromptu-ops register`)",
    "CasConflict": "someone changed it meanwhile: run `{cmd}` again",
    "StoreUnavailable": "`impromptu-ops secrets check` says what the store needs (Vault "
                        "unsealed, reachable, a valid token)",
    "TamperedStore": "restore the store file from a backup; do not delete it",
    "StoreError": "`impromptu-ops secrets check` says what the store needs",
    "TransportError": _NETWORK,
    "ServerError": "the platform failed on its side: run `{cmd}` again later; "
                   "`impromptu-ops api status` shows when it answers",
    "AuthError": "the key was refused: `impromptu-ops api status` checks it; after a "
                 "rotation, `impromptu-ops rotate status`",
    "RateLimited": "wait for the time the platform gave, then run `{cmd}` again (scheduled "
                   "jobs skip such runs by themselves)",
    "BudgetExhausted": "the agent's budget is used up: it refills on the platform's "
                       "schedule; `impromptu-ops health` shows it",
    "MalformedResponse": "the answer was not what the platform sends: check that "
                         "platform.api_url points at the platform (`impromptu-ops config show`)",
    "ConfigError": "`impromptu-ops config show` lists every setting and where it came from",
    "InputError": "see `{cmd} --help`",
    "ChainError": "check chain.rpc_url and chain.wallet_address (`impromptu-ops config "
                  "show`), then run `{cmd}` again",
    "LockBusy": "another run is in progress: let it finish, then run `{cmd}` again",
    "PolicyDenied": "see `{cmd} --help` for what the policy allows",
    "Interrupted": "",  # the person (or a signal they sent) stopped it: nothing to add
    "OpsError": "see `{cmd} --help`",
}


def next_step(exc: OpsError, command: str = "impromptu-ops") -> str | None:
    """The step to print after ``exc``'s line; None when the error has its own hint."""
    if exc.hint:
        return None
    for cls in type(exc).__mro__:
        step = NEXT_STEPS.get(cls.__name__)
        if step is not None:
            return step.replace("{cmd}", command) or None
    return None


def line(exc: OpsError, command: str = "impromptu-ops") -> str:
    """``exc``'s one line, ending with what to do next."""
    step = next_step(exc, command)
    text = exc.diagnostics()
    return f"{text} (next: {step})" if step else text
