"""The registration loop: follow the server's answers until the agent exists, keep its secrets.

:func:`register_agent` sends the registration, and on each answer does what the server
asks (contract §3.1): 428 -> fetch a challenge, check it against the caps, solve it;
402 -> check the payment transaction's receipt (when a chain RPC is configured) and attach
it, or stop and say what to pay; 201 -> hand every secret to :mod:`.keeping` *before
anything else*. Terms are accepted only when the request says so (the CLI asks the
operator on a TTY). :func:`accept_terms` is the separate accept step for a PENDING agent.

Every stop leaves a :mod:`.journal` record and an error whose hint says how to continue.
The register POST is never resent once it may have reached the server (see :mod:`.api`):
if its answer is lost, the record says so instead of guessing.

This module never prints; the CLI renders the returned :class:`Registration`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from impromptu_ops import contract
from impromptu_ops.errors import (
    ChainError,
    InputError,
    Interrupted,
    MalformedResponse,
    PlatformError,
    PolicyDenied,
    RegistrationRefused,
    SecretNotFound,
    TransportError,
)
from impromptu_ops.locks import ProcessLock
from impromptu_ops.pow.challenge import parse_challenge
from impromptu_ops.pow.solver import Plan, Progress, SolveResult, solve
from impromptu_ops.registration.api import (
    NEEDS_PAYMENT,
    NEEDS_POW,
    RegistrationApi,
    never_sent,
)
from impromptu_ops.registration.journal import Entry, Journal
from impromptu_ops.registration.keeping import (
    VALUE_FIELD,
    Kept,
    SecretsNotStored,
    StoreOpener,
    keep_secrets,
    pause_for_test,
    pending_emergency_files,
    recover,
)
from impromptu_ops.registration.payment import (
    PaymentRequest,
    check_tx_hash,
    fetch_receipt,
    parse_payment_request,
    receipt_problems,
)
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings

API_KEY_NAME, WALLET_KEY_NAME = contract.IMPROMPTU_API_KEY, contract.WALLET_PRIVATE_KEY
MAX_STEPS = 8


RETRY_HINTS = {
    "POW_EXPIRED": "the challenge expired before the proof arrived; nothing was registered: "
                   "run register again (a fresh challenge is fetched), with more workers if "
                   "solving was slow",
    "POW_REPLAYED": "that challenge was already used; nothing was registered: run register "
                    "again for a fresh challenge",
    "POW_INVALID": "the server rejected the proof; nothing was registered: run register again "
                   "(and check the challenge with `impromptu-ops pow verify`)",
    "PAYMENT_INVALID": "the server did not accept the payment transaction; nothing was "
                       "registered: check amount, token and recipient, then run register again",
    "PAYMENT_REPLAYED": "that transaction already paid for a registration; nothing was "
                        "registered: pay again and run register with the new --payment-tx",
}


@dataclass(frozen=True)
class RegistrationRequest:
    name: str
    description: str = ""
    capabilities: tuple[str, ...] = ()
    accept_tos: bool = False
    referrer: str | None = None
    payment_tx: str | None = None
    force_new: bool = False


@dataclass(frozen=True)
class Registration:
    """The outcome, with no secret in it."""

    agent_id: str
    name: str
    wallet_address: str
    tier: str
    status: str
    kept: Kept
    tos_accepted: bool
    notes: tuple[str, ...] = ()
    pow: SolveResult | None = None


@dataclass(frozen=True)
class Hooks:
    """Callbacks for the CLI: the PoW plan, progress, and one-line notes."""

    on_plan: Callable[[Plan], None] | None = None
    progress: Callable[[Progress], None] | None = None
    note: Callable[[str], None] = field(default=lambda _: None)
    stop: threading.Event | None = None


class PaymentNeeded(PolicyDenied):
    """The server wants a fee and no transaction was given."""


def journal_for(settings: Settings) -> Journal:
    return Journal(settings.paths.state_dir / "registration.json")


def _preflight(settings: Settings, request: RegistrationRequest, journal: Journal,
               open_store: StoreOpener, note: Callable[[str], None]) -> Entry:
    for path in pending_emergency_files(settings):
        raise PolicyDenied(f"the secrets of an earlier registration are in the emergency file "
                           f"{path}", hint=f"run: impromptu-ops register recover {path}")
    entry = journal.read()
    store = open_store()
    store.check()
    try:
        store.read(API_KEY_NAME)
    except SecretNotFound:
        pass
    else:
        if entry and entry.step in ("submitted", "stored"):
            todo = ("nothing to do" if entry.tos_accepted
                    else "run `impromptu-ops register accept-tos` if it is still PENDING")
            raise PolicyDenied(
                f"agent {entry.agent_id or '(id not recorded)'} ({entry.name!r}) is already "
                f"registered and its {API_KEY_NAME} is in the store ({store.description})",
                hint=todo,
            )
        raise PolicyDenied(
            f"the store ({store.description}) already holds {API_KEY_NAME}; registering "
            "another agent there would put two agents' keys in one place",
            hint="point the store elsewhere: another [store] agent (Vault) or "
                 "store.local_path (local)",
        )
    if entry and entry.step == "submitted" and not request.force_new:
        raise PolicyDenied(
            f"a registration of {entry.name!r} was sent at {entry.updated_at} and its answer "
            "was never recorded",
            hint="the agent may exist with a lost key: check with the platform (or look for the "
                 "name), then run register again with --force-new to start a new one",
        )
    if entry and entry.step in ("stored", "emergency") and not request.force_new:
        raise PolicyDenied(f"agent {entry.agent_id} ({entry.name!r}) was registered but its "
                           f"{API_KEY_NAME} is not in the store ({store.description})",
                           hint="restore the store (or `register recover` its emergency file); "
                                "--force-new registers another agent")
    if entry and entry.step in ("solving", "payment"):
        note(f"an earlier run stopped at step {entry.step!r}; nothing was registered then")
    return journal.write(Entry(name=request.name, step="started"))


def _reusable_proof(entry: Entry | None, request: RegistrationRequest
                    ) -> dict[str, Any] | None:
    """The proof a previous run had accepted before stopping for payment, if still valid."""
    if (entry is None or entry.step != "payment" or entry.name != request.name
            or not entry.pow or not request.payment_tx or not entry.expires_at):
        return None
    try:
        expires = datetime.fromisoformat(entry.expires_at)
    except ValueError:
        return None
    return dict(entry.pow) if expires > datetime.now(UTC) else None


def _refused(exc: RegistrationRefused) -> RegistrationRefused:
    hint = RETRY_HINTS.get(exc.code, exc.hint)
    return RegistrationRefused(exc.message, code=exc.code, status=exc.status, hint=hint,
                               request_id=exc.request_id, method=exc.method, url=exc.url)


def _challenge_body(raw: Any) -> Any:
    if isinstance(raw, Mapping) and isinstance(raw.get("challenge"), Mapping):
        return raw["challenge"]
    return raw


def _check_payment(settings: Settings, tx: str, req: PaymentRequest,
                   note: Callable[[str], None]) -> None:
    if not settings.chain.rpc_url:
        note("no chain RPC configured (chain.rpc_url): the platform alone checks the payment")
        return
    try:
        receipt = fetch_receipt(settings.chain.rpc_url, tx, req.chain_id,
                                settings.chain.rpc_timeout, settings.chain.max_response_bytes)
    except ChainError as exc:  # the proof stays kept with the payment step: say so
        raise ChainError(exc.message, hint="; ".join(h for h in (
            exc.hint, "nothing was submitted: run register again with the same --payment-tx "
            "once the chain RPC answers (the accepted proof is kept)") if h)) from None
    problems = receipt_problems(receipt, req)
    if problems:
        raise InputError(
            f"payment transaction {contract.show_tx_hash(tx)} does not pay the fee: "
            + "; ".join(problems),
            hint=f"the fee is {req.describe()}; nothing was submitted",
        )
    note(f"payment {contract.show_tx_hash(tx)} checked on chain {req.chain_id}: "
         f"at least {req.amount} base units reached {req.recipient}")


def _fee_note(body: Mapping[str, Any], paid: bool) -> str | None:
    """What to tell the operator about the fee when nothing was paid up front.

    The contract's answer does not always say which mode applied; without a 402 there was
    nothing to pay now, and a platform in ``withheld`` mode takes the fee from the first
    earnings (a negative REGISTRATION_FEE ledger entry, which reconciliation will show).
    """
    if paid:
        return None
    payment = body.get("payment")
    if isinstance(payment, Mapping) and payment.get("mode") == "withheld":
        amount = payment.get("amount", "the registration fee")
        return (f"payment mode is withheld: nothing to pay now; {amount} base units will be "
                "taken from the first earnings")
    return ("no fee was asked up front: nothing to pay now (in withheld mode the platform "
            "takes it from the first earnings as a REGISTRATION_FEE ledger entry)")


def register_agent(settings: Settings, request: RegistrationRequest, *, api: RegistrationApi,
                   open_store: StoreOpener, hooks: Hooks | None = None) -> Registration:
    """Register an agent end to end and keep its secrets.

    Args:
        settings: all settings (PoW caps in ``settings.pow``, chain RPC, paths).
        request: name, description, capabilities, terms, referrer, payment tx.
        api: the registration endpoints.
        open_store: opens the secret store (called before registering, to fail early, and
            again to keep the secrets).
        hooks: callbacks for the PoW plan, progress and notes.

    Returns:
        What was registered and where the secrets went (never a secret).

    Raises:
        PolicyDenied: a cap, an earlier unfinished registration, an occupied store slot.
        PaymentNeeded: the server wants a fee and ``payment_tx`` was not given.
        InputError: the payment transaction does not pay the fee.
        RegistrationRefused: POW_* or PAYMENT_* refusal (nothing registered; hint says so).
        MalformedResponse: a malformed challenge or answer.
        SecretsNotStored: registered, but the secrets went to an emergency file.
        TransportError: the network failed (hint says whether the agent may exist).
        LockBusy: another registration is running.
    """
    hooks = hooks or Hooks()
    tx = check_tx_hash(request.payment_tx) if request.payment_tx else None
    # One registration at a time per state folder: two would race on the journal and store.
    with ProcessLock(settings.paths.state_dir / "registration.lock", "registration"):
        return _register(settings, request, tx, api, open_store, hooks)


def _register(settings: Settings, request: RegistrationRequest, tx: str | None,
              api: RegistrationApi, open_store: StoreOpener, hooks: Hooks) -> Registration:
    journal = journal_for(settings)
    entry_before = journal.read()
    entry = _preflight(settings, request, journal, open_store, hooks.note)
    body: dict[str, Any] = {
        "name": request.name,
        "description": request.description,
        "capabilities": list(request.capabilities),
        "acceptTos": request.accept_tos,
    }
    if request.referrer:
        body["referrer"] = request.referrer
    solved: SolveResult | None = None
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        hooks.note(text)

    reused = _reusable_proof(entry_before, request)
    if reused and entry_before:
        body["pow"] = reused
        entry = journal.write(entry, step="payment", chain_id=entry_before.chain_id,
                              expires_at=entry_before.expires_at, pow=entry_before.pow,
                              payment=entry_before.payment)  # still reusable if unsent
        note("reusing the proof of work the server accepted before the payment was asked")

    for _ in range(MAX_STEPS):
        proof_sent = "pow" in body or "payment" in body
        before_send = entry
        if proof_sent:
            entry = journal.write(entry, step="submitted")
        try:
            answer = api.register(body)
        except TransportError as exc:
            if proof_sent and never_sent(exc):  # back to where we were: nothing can exist
                journal.write(before_send)
                raise type(exc)(exc.message, hint="; ".join(
                    h for h in (exc.hint, "nothing was sent, so nothing was registered: run "
                                "register again when the platform is reachable") if h)
                ) from None
            if proof_sent:
                raise TransportError(
                    f"the registration of {request.name!r} was sent but its answer was lost "
                    f"({exc.message})",
                    hint="the agent may exist with a key nobody received: check with the "
                         "platform before running register again with --force-new",
                ) from None
            journal.write(entry, step="started")
            raise
        except RegistrationRefused as exc:
            journal.write(entry, step="started")
            raise _refused(exc) from None
        except PlatformError:
            journal.write(entry, step="started")  # the server answered: nothing registered
            raise
        if reused and answer.code and answer.code.startswith("POW_"):
            note(f"the earlier proof was refused ({answer.code}); solving a fresh challenge")
            reused = None
            del body["pow"]
            continue
        if answer.code and answer.code not in ("POW_REQUIRED", "PAYMENT_REQUIRED"):
            journal.write(entry, step="started")  # the server refused: nothing registered
            message, hint = answer.error_text()
            raise RegistrationRefused(message, code=answer.code, status=answer.status,
                                      hint=RETRY_HINTS.get(answer.code, hint),
                                      method="POST", url="/agents/register")
        if 200 <= answer.status < 300:  # secrets first: no journal write before keeping them
            return _registered(settings, request, answer.body, open_store, journal, entry,
                               notes, note, solved, paid="payment" in body)
        if proof_sent:  # the server answered that it needs more: nothing registered
            entry = journal.write(entry, step="started")
        if answer.status == NEEDS_POW or answer.code == "POW_REQUIRED":
            if "pow" in body:
                raise MalformedResponse("the server asked for a proof of work again after "
                                        "receiving one", hint="nothing was registered")
            challenge = parse_challenge(_challenge_body(api.challenge()))
            entry = journal.write(entry, step="solving", chain_id=challenge.chain_id,
                                  expires_at=challenge.expires_at.isoformat())
            try:
                solved = solve(challenge, settings.pow, backend=settings.pow.backend,
                               on_plan=hooks.on_plan, progress=hooks.progress, stop=hooks.stop)
            except (PolicyDenied, Interrupted) as exc:
                entry = journal.write(entry, step="started")
                raise type(exc)(exc.message, hint="; ".join(
                    h for h in (exc.hint, "nothing was registered: run register again") if h)
                ) from None
            body["pow"] = solved.solution.to_json()
        elif answer.status == NEEDS_PAYMENT or answer.code == "PAYMENT_REQUIRED":
            err = answer.body.get("error")
            terms = answer.body.get("payment") or (
                err.get("payment") if isinstance(err, Mapping) else None)
            req = parse_payment_request(terms)
            if "payment" in body:
                raise MalformedResponse("the server asked for payment again after receiving "
                                        "a transaction", hint="nothing was registered")
            entry = journal.write(entry, step="payment", pow=body.get("pow") or {}, payment={
                "chainId": req.chain_id, "token": req.token, "amount": str(req.amount),
                "recipient": req.recipient, "reference": req.reference})
            if tx is None:
                raise PaymentNeeded(
                    f"registration needs a fee: {req.describe()}; nothing was registered",
                    hint="pay it, then run register again with --payment-tx 0x<transaction hash>",
                )
            _check_payment(settings, tx, req, note)
            body["payment"] = {"txHash": tx}
        else:
            raise MalformedResponse(f"unexpected registration answer HTTP {answer.status}")
    raise MalformedResponse(f"the server asked for more than {MAX_STEPS} registration steps")


def _registered(settings: Settings, request: RegistrationRequest, body: Mapping[str, Any],
                open_store: StoreOpener, journal: Journal, entry: Entry, notes: list[str],
                note: Callable[[str], None], solved: SolveResult | None, *, paid: bool
                ) -> Registration:
    # Secrets first: nothing else happens until they are in the store or the emergency file.
    agent_id = body.get("agentId") if isinstance(body.get("agentId"), str) else ""
    secrets: dict[str, Secret] = {}
    for field_name, secret_name in (("apiKey", API_KEY_NAME),
                                    ("walletPrivateKey", WALLET_KEY_NAME)):
        value = body.get(field_name)
        if isinstance(value, Secret) and value:
            secrets[secret_name] = value
        elif isinstance(value, str) and value:
            secrets[secret_name] = Secret(value, secret_name)
    kept: Kept | None = None
    failed: SecretsNotStored | None = None
    if secrets:
        try:
            kept = keep_secrets(settings, open_store, secrets, str(agent_id or "unknown"))
        except SecretsNotStored as exc:
            failed = exc
    pause_for_test("register-response")
    if failed is not None:
        journal.write(entry, step="emergency", agent_id=str(agent_id),
                      emergency_file=str(failed.emergency_file))
        raise failed
    if kept is None or API_KEY_NAME not in secrets or not agent_id:
        journal.write(entry, step="submitted", agent_id=str(agent_id))
        raise MalformedResponse(
            "the server reported a registration without an agentId and apiKey",
            hint="check with the platform whether the agent exists; its key may be lost",
        )
    status = str(body.get("status") or ("ACTIVE" if request.accept_tos else "PENDING"))
    tos = status != "PENDING"
    fee = _fee_note(body, paid)
    if fee:
        note(fee)
    if request.payment_tx and not paid:
        note(f"--payment-tx {contract.show_tx_hash(request.payment_tx)} was not used: the "
             "platform asked no fee up front")
    if tos:
        journal.clear()
    else:
        journal.write(entry, step="stored", agent_id=agent_id, tos_accepted=False)
        note("terms not accepted: the agent stays PENDING until you run "
             "`impromptu-ops register accept-tos`")
    return Registration(
        agent_id=agent_id, name=str(body.get("name") or request.name),
        wallet_address=str(body.get("walletAddress") or ""), tier=str(body.get("tier") or ""),
        status=status, kept=kept, tos_accepted=tos, notes=tuple(notes), pow=solved,
    )


def accept_terms(settings: Settings, *, api: RegistrationApi, open_store: StoreOpener) -> str:
    """Accept the terms for the agent whose key is in the store; returns the new status.

    Raises:
        SecretNotFound: no API key in the store (register first).
    """
    try:
        key = open_store().read(API_KEY_NAME).data[VALUE_FIELD]
    except SecretNotFound as exc:
        raise SecretNotFound(exc.message, hint="register the agent first (impromptu-ops "
                             "register --name ...), or point the store at its key") from None
    answer = api.accept_tos(key)
    journal = journal_for(settings)
    entry = journal.read()
    if entry and entry.step == "stored":
        journal.clear()
    return str(answer.get("status") or "ACTIVE")


def recover_emergency(settings: Settings, path: Path, open_store: StoreOpener
                      ) -> tuple[str, Kept]:
    """Move an emergency file's secrets into the store (see :func:`.keeping.recover`)."""
    agent_id, kept = recover(settings, open_store, path)
    journal = journal_for(settings)
    entry = journal.read()
    if entry and entry.step in ("emergency", "submitted"):
        journal.write(entry, step="stored", emergency_file="", agent_id=agent_id)
    return agent_id, kept
