"""Registration (contract §3): the answers that walk a client through PoW and payment.

``POST /v1/agents/register`` checks, in order, and answers with what is still missing:

1. the body (VALIDATION_ERROR with ``error.fields``; names are unique, case-insensitively);
2. the proof of work, when :attr:`SandboxConfig.pow_required`: no ``pow`` -> 428
   POW_REQUIRED; ``POST /v1/agents/register/challenge`` hands out a challenge built with
   :class:`impromptu_ops.pow.challenge.Challenge` from the configured parameters and the
   submission is verified with :func:`impromptu_ops.pow.verify.failing_rounds` (argon2-cffi).
   A chain is single-use: unknown or malformed -> POW_INVALID; any failed submission spends
   it; past ``expiresAt`` on the simulated clock -> POW_EXPIRED; a spent chain ->
   POW_REPLAYED. A chain whose proof passed but whose registration still lacks a valid
   payment stays *verified*: resubmitting the same ``pow`` with a ``payment`` continues
   (resending different nonces is POW_REPLAYED); it is spent when registration succeeds;
3. the fee, by :attr:`SandboxConfig.payment_mode`: ``none``; ``withheld`` (registration
   succeeds and a negative REGISTRATION_FEE entry is appended to ``ledgerIntents`` in the
   state, for the ledger module); ``upfront``: no ``payment`` -> 402 PAYMENT_REQUIRED with
   ``payment: {chainId, token, amount, recipient, reference}`` (top level and in
   ``error``); ``payment: {txHash}`` is checked on the chain (``chain_rpc``:
   ``eth_getTransactionReceipt``, a successful ERC-20 Transfer of at least ``amount`` of
   ``token`` to ``recipient``) or, without a chain, against ``POST /_sandbox/payments``;
   a bad or unknown transfer -> PAYMENT_INVALID, a hash used before -> PAYMENT_REPLAYED;
4. 201 with ``agentId, apiKey`` (shown once), ``walletAddress, tier, status`` (PENDING
   unless ``acceptTos``), ``budget``, and when configured ``walletPrivateKey`` and
   ``quickStart``.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from impromptu_ops import contract
from impromptu_ops.errors import MalformedResponse
from impromptu_ops.pow.challenge import Argon2Params, Challenge, Round, parse_challenge
from impromptu_ops.pow.challenge import parse_solution as parse_pow_solution
from impromptu_ops.pow.verify import failing_rounds
from impromptu_ops.sandbox.accounts import budget_view, create_agent, name_taken
from impromptu_ops.sandbox.control import TX_HASH_RE
from impromptu_ops.sandbox.router import (
    ApiError,
    Request,
    Response,
    Router,
    agents_paths,
    validation,
)
from impromptu_ops.sandbox.state import State, iso, new_id, parse_iso

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")
MAX_DESCRIPTION = 2000
MAX_CAPABILITIES = 32
SPENT_CHALLENGE_KEEP_SECONDS = 86_400.0


def issue_challenge(state: State) -> dict[str, Any]:
    """A fresh challenge with the configured parameters, remembered as *issued*."""
    cfg = state.config
    now = state.now()
    challenge = Challenge(
        chain_id=str(uuid.uuid4()),
        params=Argon2Params(cfg.pow_memory_kib, cfg.pow_iterations,
                            contract.POW_DOC_PARAMS["parallelism"],
                            contract.POW_DOC_PARAMS["hashLength"]),
        rounds=tuple(Round(i, os.urandom(contract.POW_SALT_BYTES), cfg.pow_difficulty)
                     for i in range(cfg.pow_rounds)),
        expires_at=datetime.fromtimestamp(now + contract.POW_EXPIRY_SECONDS, UTC),
    )
    wire = challenge.to_json()
    chains: dict[str, Any] = state.data["challenges"]
    for chain_id in [c for c, r in chains.items()
                     if r["issuedAt"] < now - SPENT_CHALLENGE_KEEP_SECONDS]:
        del chains[chain_id]
    chains[challenge.chain_id] = {"challenge": wire, "status": "issued", "issuedAt": now}
    return wire


def _validate(state: State, body: dict[str, Any]) -> None:
    problems: dict[str, list[str]] = {}
    name = body.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems["name"] = ["required: 1-64 letters, digits, space, _ . - (starting with a "
                            "letter or digit)"]
    elif name_taken(state, name):
        problems["name"] = ["already taken"]
    description = body.get("description", "")
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        problems["description"] = [f"must be a string of at most {MAX_DESCRIPTION} characters"]
    caps = body.get("capabilities", [])
    if (not isinstance(caps, list) or len(caps) > MAX_CAPABILITIES
            or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in caps)):
        problems["capabilities"] = [f"must be a list of at most {MAX_CAPABILITIES} strings"]
    if not isinstance(body.get("acceptTos", False), bool):
        problems["acceptTos"] = ["must be true or false"]
    referrer = body.get("referrer")
    if referrer is not None and (not isinstance(referrer, str)
                                 or referrer not in state.data["agents"]):
        problems["referrer"] = ["must be the agentId of a registered agent"]
    for name_ in ("pow", "payment"):
        if name_ in body and not isinstance(body[name_], dict):
            problems[name_] = ["must be an object"]
    if problems:
        raise validation(problems, "registration request is invalid")


def _check_pow(state: State, req: Request, body: dict[str, Any]) -> dict[str, Any] | None:
    """Verify ``body.pow``; return the chain record (None when PoW is off)."""
    if not state.config.pow_required:
        return None
    submitted = body.get("pow")
    hint = f"POST {req.prefix}/agents/register/challenge, solve it, resubmit with a fresh pow"
    if submitted is None:
        raise ApiError("POW_REQUIRED", "registration needs a proof of work",
                       hint=f"POST {req.prefix}/agents/register/challenge, solve every round "
                       "and resubmit with pow: {chainId, nonces}")
    chain_id = submitted.get("chainId")
    record = state.data["challenges"].get(chain_id) if isinstance(chain_id, str) else None
    if record is None:
        raise ApiError("POW_INVALID", "unknown proof-of-work chain", hint=hint)
    if record["status"] == "spent":
        raise ApiError("POW_REPLAYED", "this proof-of-work chain was already used", hint=hint)
    challenge = parse_challenge(record["challenge"])
    try:
        solution = parse_pow_solution(submitted, len(challenge.rounds))
    except MalformedResponse as exc:
        record["status"] = "spent"
        raise ApiError("POW_INVALID", exc.message, hint=hint) from None
    if record["status"] == "verified":
        if list(solution.nonces) != record.get("nonces"):
            raise ApiError("POW_REPLAYED", "this proof-of-work chain was already used",
                           hint=hint)
        return dict(record)
    if state.now() > parse_iso(record["challenge"]["expiresAt"]):
        record["status"] = "spent"
        raise ApiError("POW_EXPIRED", "the proof-of-work challenge expired", hint=hint)
    bad = failing_rounds(challenge, solution)
    if bad:
        record["status"] = "spent"
        raise ApiError("POW_INVALID", f"rounds {bad[:20]} do not meet their difficulty",
                       hint=hint)
    record["status"] = "verified"
    record["nonces"] = list(solution.nonces)
    return dict(record)


def _advertised_chain_id(state: State) -> int:
    cfg = state.config
    if not cfg.chain_rpc:
        return cfg.payment_chain_id
    cached = state.memory.get("rpcChainId")
    if cached is None:
        cached = int(_rpc(state, "eth_chainId", []), 16)
        state.memory["rpcChainId"] = cached
    return int(cached)


def _rpc(state: State, method: str, params: list[Any]) -> Any:
    try:
        resp = httpx.post(state.config.chain_rpc, timeout=state.config.chain_rpc_timeout,
                          json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        reply = resp.json()
    except (httpx.HTTPError, ValueError):
        raise ApiError("INTERNAL", "the sandbox cannot reach its chain", status=503) from None
    if not isinstance(reply, dict) or "error" in reply:
        raise ApiError("INTERNAL", f"chain RPC {method} failed", status=503)
    return reply.get("result")


def _transfer_ok(state: State, tx: str) -> str | None:
    """Why the transfer ``tx`` does not pay the fee, or ``None`` when it does."""
    cfg = state.config
    token, recipient = cfg.payment_token.lower(), cfg.payment_recipient.lower()
    if not cfg.chain_rpc:
        record = state.data["payments"]["registered"].get(tx)
        if record is None:
            return "no such transfer"
        if record.get("status") != "success":
            return "the transfer failed"
        if record["token"].lower() != token or record["recipient"].lower() != recipient:
            return "the transfer is not of the fee token to the fee recipient"
        if int(record["amount"]) < cfg.registration_fee:
            return "the transfer is smaller than the fee"
        return None
    receipt = _rpc(state, "eth_getTransactionReceipt", [tx])
    if not isinstance(receipt, dict):
        return "no such transaction (not mined yet?)"
    if receipt.get("status") != "0x1":
        return "the transaction failed"
    for entry in receipt.get("logs") or []:
        topics = entry.get("topics") or []
        if (str(entry.get("address", "")).lower() == token and len(topics) == 3
                and str(topics[0]).lower() == contract.ERC20_TRANSFER_TOPIC
                and str(topics[2]).lower()[-40:] == recipient[2:]
                and int(str(entry.get("data") or "0x0"), 16) >= cfg.registration_fee):
            return None
    return "no transfer of the fee token to the fee recipient of at least the fee"


def _check_payment(state: State, body: dict[str, Any], chain: dict[str, Any] | None
                   ) -> str | None:
    """Enforce the upfront fee; return the tx hash that paid it (None: nothing to pay)."""
    cfg = state.config
    if cfg.payment_mode != "upfront":
        return None
    payment = body.get("payment")
    if payment is None:
        reference = new_id("ref")
        if chain is not None:
            record = state.data["challenges"][chain["challenge"]["chainId"]]
            reference = record.setdefault("paymentReference", reference)
        terms = {"chainId": _advertised_chain_id(state), "token": cfg.payment_token,
                 "amount": str(cfg.registration_fee), "recipient": cfg.payment_recipient,
                 "reference": reference}
        raise ApiError("PAYMENT_REQUIRED", "registration needs the fee paid up front",
                       hint="transfer the amount, then resubmit with payment: {txHash}",
                       extra={"payment": terms})
    tx = payment.get("txHash")
    if not isinstance(tx, str) or not TX_HASH_RE.match(tx):
        raise ApiError("PAYMENT_INVALID", "payment.txHash must be 0x + 64 hex digits")
    tx = tx.lower()
    if tx in state.data["payments"]["used"]:
        raise ApiError("PAYMENT_REPLAYED", "this transaction already paid a registration")
    why = _transfer_ok(state, tx)
    if why is not None:
        raise ApiError("PAYMENT_INVALID", f"the payment is not valid: {why}")
    return tx


def install(router: Router, state: State) -> None:
    def challenge(req: Request) -> Response:
        return Response(201, issue_challenge(state))

    def register(req: Request) -> Response:
        body = req.json_object()
        _validate(state, body)
        chain = _check_pow(state, req, body)
        tx = _check_payment(state, body, chain)
        cfg = state.config
        status = "ACTIVE" if body.get("acceptTos") else "PENDING"
        agent, key, wallet_key = create_agent(
            state, name=body["name"], description=body.get("description", ""),
            capabilities=body.get("capabilities", []), status=status,
            referrer=body.get("referrer"))
        if chain is not None:
            state.data["challenges"][chain["challenge"]["chainId"]]["status"] = "spent"
        if tx is not None:
            state.data["payments"]["used"][tx] = agent["id"]
            agent["registrationTx"] = tx
        if cfg.payment_mode == "withheld":
            state.data["ledgerIntents"].append({
                "id": new_id("led"), "agentId": agent["id"], "type": "REGISTRATION_FEE",
                "amount": str(-cfg.registration_fee), "token": cfg.payment_token,
                "createdAt": state.now()})
        answer: dict[str, Any] = {
            "agentId": agent["id"], "apiKey": key, "walletAddress": agent["walletAddress"],
            "tier": agent["tier"], "status": agent["status"], "budget": budget_view(state, agent),
            "createdAt": iso(agent["createdAt"]),
        }
        if cfg.return_wallet_key:
            answer["walletPrivateKey"] = wallet_key
        if cfg.quick_start:
            p = req.prefix
            answer["quickStart"] = {
                "heartbeat": {"method": "GET", "path": f"{p}/agent/heartbeat"},
                "acceptTos": {"method": "POST", "path": f"{p}/agent/accept-tos"},
                "discover": {"method": "GET", "path": f"{p}/agent/discover/opportunities"},
            }
        return Response(201, answer)

    router.add_many("POST", agents_paths("/register/challenge"), challenge)
    router.add_many("POST", agents_paths("/register"), register)
