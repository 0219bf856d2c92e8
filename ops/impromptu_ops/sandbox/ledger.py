"""The sandbox's earnings ledger (contract §6), real payouts on a dev chain, and scenarios.

Agent endpoints (both path generations, bearer auth):

- ``GET /v1/agent/earnings?after=<cursor>&limit=`` -> ``{entries, nextCursor}``: the agent's
  entries ordered by ``(createdAt, id)``; the cursor is the id of the last entry returned.
- ``GET /v1/agent/referrals`` -> ``{referrals: [{agentId, registeredAt}]}``: agents that
  registered with this agent as ``referrer``.

Controls under ``/_sandbox/ledger`` (no auth; the real platform has none of these):

- ``POST /token`` ``{decimals?}`` -> ``{address, decimals, treasury, chainId}``: deploy the
  test token (``sandbox/contracts``) on ``--chain-rpc`` from dev account 0, the treasury;
- ``POST /entries`` ``{agentId, entries: [...]}``: append raw entries verbatim (any shape:
  the reconciler's parser is under test too); ``createdAt`` etc. may be RFC 3339 or
  ``{"daysAgo": n}``;
- ``POST /earn`` ``{agentId, amount, daysAgo?}``: an ENGAGEMENT credit, plus the referrer's
  REFERRAL credit (floor 5%) when the agent was referred less than a year before;
- ``POST /payout`` ``{agentId, amount, daysAgo?}``: a real ``transfer`` from the treasury to
  the agent's wallet, recorded as a PAYOUT with its tx hash and log index;
- ``POST /scenario`` ``{agentId, name}``: a consistent history (``clean``) plus, for every
  other name in :data:`SCENARIOS`, the one discrepancy of that class (named as the
  reconciler names it);
- ``POST /reorg`` ``{depth}``: ``anvil_reorg`` the last ``depth`` blocks (without their
  transactions).

State: ``data["ledger"] = {"entries": [...], "token": {...} | None}``; entries keep times as
epoch seconds and render RFC 3339 on the wire. The negative REGISTRATION_FEE intents that
registration writes to ``data["ledgerIntents"]`` are served as entries too.
"""

from __future__ import annotations

import secrets
from typing import Any

from impromptu_ops import contract
from impromptu_ops.chain.rpc import JsonRpcClient
from impromptu_ops.errors import ChainError
from impromptu_ops.sandbox.access import agent_route
from impromptu_ops.sandbox.accounts import create_agent
from impromptu_ops.sandbox.contracts import token as token_ops
from impromptu_ops.sandbox.faults import CONTROL_ROOT
from impromptu_ops.sandbox.router import ApiError, Request, Response, Router, validation
from impromptu_ops.sandbox.state import State, iso, new_id, parse_iso

DAY = 86_400.0
E18 = 10**contract.DEFAULT_DECIMALS
TIME_FIELDS = ("createdAt", "vestsAt", "refereeRegisteredAt")
MAX_PAGE = 200
DEFAULT_PAGE = 50
TOKEN_SUPPLY = 10**40

SCENARIOS = (
    "clean", "payout_missing_on_chain", "amount_mismatch", "unexpected_sender",
    "unexpected_token", "wrong_chain", "duplicate_payout", "unrecorded_transfer",
    "payout_to_other_address", "unvested_payout", "registration_fee_mismatch",
    "referral_amount_mismatch", "referral_rounding", "referral_outside_window",
    "referral_unknown_referee", "reorged_transfer",
)


def _ledger(state: State) -> dict[str, Any]:
    ledger: dict[str, Any] = state.data.setdefault("ledger", {"entries": [], "token": None})
    return ledger


def _rpc(state: State) -> JsonRpcClient:
    if not state.config.chain_rpc:
        raise ApiError("VALIDATION_ERROR", "the sandbox has no chain: start it with --chain-rpc",
                       fields={"chainRpc": ["required for on-chain payouts"]})
    rpc = state.memory.get("ledger.rpc")
    if not isinstance(rpc, JsonRpcClient):
        rpc = JsonRpcClient(state.config.chain_rpc, timeout=state.config.chain_rpc_timeout,
                            rate_limit_retries=0, keepalive=False)
        state.memory["ledger.rpc"] = rpc
    return rpc


def _agent(state: State, agent_id: Any) -> dict[str, Any]:
    agent = state.data["agents"].get(agent_id) if isinstance(agent_id, str) else None
    if agent is None:
        raise ApiError("VAL_001", f"no agent {str(agent_id)[:40]}")
    result: dict[str, Any] = agent
    return result


def _amount(body: dict[str, Any], name: str = "amount") -> int:
    value = body.get(name)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise validation({name: ["must be an integer amount in base units (string or int)"]})


def _days_ago(state: State, body: dict[str, Any]) -> float:
    days = body.get("daysAgo", 0)
    if not isinstance(days, int | float) or isinstance(days, bool):
        raise validation({"daysAgo": ["must be a number"]})
    return state.now() - float(days) * DAY


def token_info(state: State, decimals: int = contract.DEFAULT_DECIMALS) -> dict[str, Any]:
    """The deployed test token, deploying it first if needed."""
    ledger = _ledger(state)
    if ledger.get("token"):
        info: dict[str, Any] = ledger["token"]
        return info
    rpc = _rpc(state)
    try:
        treasury = token_ops.dev_accounts(rpc)[0]
        address = token_ops.deploy_token(rpc, treasury, decimals=decimals, supply=TOKEN_SUPPLY)
        chain_id = rpc.chain_id()
    except ChainError as exc:
        raise ApiError("INTERNAL", f"token deployment failed: {exc.message}") from None
    ledger["token"] = {"address": address, "decimals": decimals, "treasury": treasury,
                       "chainId": chain_id}
    return dict(ledger["token"])


def add_entry(state: State, agent_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    entry = {"id": new_id("led"), **entry, "agentId": agent_id}
    _ledger(state)["entries"].append(entry)
    return entry


def pay(state: State, agent: dict[str, Any], amount: int, *, to: str | None = None,
        sender: str | None = None, token: str | None = None, record: bool = True,
        created: float | None = None, ledger_amount: int | None = None) -> dict[str, Any]:
    """Send a real transfer and (unless ``record`` is False) append its PAYOUT entry."""
    info = token_info(state)
    rpc = _rpc(state)
    sender = sender or info["treasury"]
    recipient = to or agent["walletAddress"]
    try:
        receipt = token_ops.transfer(rpc, token or info["address"], sender, recipient, amount,
                                     impersonate=sender != info["treasury"])
    except ChainError as exc:
        raise ApiError("INTERNAL", f"payout failed: {exc.message}") from None
    log_index = int(receipt.logs[0]["logIndex"], 16) if receipt.logs else 0
    entry = {"type": "PAYOUT", "amount": str(amount if ledger_amount is None else ledger_amount),
             "token": info["address"], "createdAt": state.now() if created is None else created,
             "txHash": receipt.tx_hash, "logIndex": log_index, "chainId": info["chainId"],
             "toAddress": recipient, "blockNumber": receipt.block_number}
    if record:
        entry = add_entry(state, agent["id"], entry)
    return entry


def earn(state: State, agent: dict[str, Any], amount: int, created: float) -> dict[str, Any]:
    """An ENGAGEMENT credit and, within the referral year, the referrer's 5% credit."""
    token = _token_address(state)
    entry = add_entry(state, agent["id"], {
        "type": "ENGAGEMENT", "amount": str(amount), "token": token, "createdAt": created,
        "nodeId": new_id("node"), "vestsAt": created + contract.VESTING_DAYS * DAY})
    referrer = agent.get("referrer")
    registered = float(agent["createdAt"])
    if isinstance(referrer, str) and referrer in state.data["agents"] and \
            registered <= created < registered + contract.REFERRAL_WINDOW_DAYS * DAY:
        credit = amount * contract.REFERRAL_BPS // contract.BPS_DENOMINATOR
        add_entry(state, referrer, {
            "type": "REFERRAL", "amount": str(credit), "token": token, "createdAt": created,
            "refereeAgentId": agent["id"], "refereeRegisteredAt": registered,
            "baseEntryId": entry["id"], "baseAmount": str(amount),
            "vestsAt": created + contract.VESTING_DAYS * DAY})
    return entry


def _token_address(state: State) -> str:
    token = _ledger(state).get("token")
    return str(token["address"]) if token else contract.IMPRMPT_TOKEN.lower()


def _referee(state: State, referrer: dict[str, Any], days_ago: float) -> dict[str, Any]:
    agent, _, _ = create_agent(state, name="referee-" + secrets.token_hex(4),
                               referrer=referrer["id"])
    agent["createdAt"] = state.now() - days_ago * DAY
    return agent


def _referral(state: State, referrer: dict[str, Any], referee_id: str, registered: float,
              base: int, created: float, credit: int | None = None) -> None:
    add_entry(state, referrer["id"], {
        "type": "REFERRAL", "token": _token_address(state), "createdAt": created,
        "amount": str(base * contract.REFERRAL_BPS // contract.BPS_DENOMINATOR
                      if credit is None else credit),
        "refereeAgentId": referee_id, "refereeRegisteredAt": registered,
        "baseEntryId": new_id("led"), "baseAmount": str(base),
        "vestsAt": created + contract.VESTING_DAYS * DAY})


def scenario(state: State, agent: dict[str, Any], name: str) -> dict[str, Any]:
    """Write a consistent history for ``agent``, plus the one discrepancy ``name`` names."""
    if name not in SCENARIOS:
        raise validation({"name": [f"must be one of {', '.join(SCENARIOS)}"]})
    info = token_info(state)
    now = state.now()
    fee = contract.REGISTRATION_FEE - (1 if name == "registration_fee_mismatch" else 0)
    add_entry(state, agent["id"], {"type": "REGISTRATION_FEE", "amount": str(-fee),
                                   "token": info["address"], "createdAt": now - 95 * DAY})
    earn(state, agent, 100 * E18 + 1, now - 90 * DAY)
    referee = _referee(state, agent, 100)
    _referral(state, agent, referee["id"], referee["createdAt"], 12_345_678_901_234_567_891,
              now - 80 * DAY)
    clean_payout = pay(state, agent, 50 * E18, created=now - 10 * DAY)
    out: dict[str, Any] = {"name": name, "token": info, "walletAddress": agent["walletAddress"],
                           "cleanPayout": clean_payout}
    rpc = _rpc(state)
    if name == "payout_missing_on_chain":
        add_entry(state, agent["id"], {
            "type": "PAYOUT", "amount": str(E18), "token": info["address"], "createdAt": now,
            "txHash": "0x" + secrets.token_hex(32), "logIndex": 0, "chainId": info["chainId"],
            "toAddress": agent["walletAddress"]})
    elif name == "amount_mismatch":
        pay(state, agent, E18, ledger_amount=E18 + 1)
    elif name == "unexpected_sender":
        stranger = "0x" + secrets.token_hex(20)
        token_ops.transfer(rpc, info["address"], info["treasury"], stranger, 2 * E18)
        pay(state, agent, E18, sender=stranger)
    elif name == "unexpected_token":
        other = token_ops.deploy_token(rpc, info["treasury"], decimals=18, supply=TOKEN_SUPPLY)
        pay(state, agent, E18, token=other)
    elif name == "wrong_chain":
        add_entry(state, agent["id"], {
            "type": "PAYOUT", "amount": str(E18), "token": info["address"], "createdAt": now,
            "txHash": "0x" + secrets.token_hex(32), "logIndex": 0, "chainId": 1,
            "toAddress": agent["walletAddress"]})
    elif name == "duplicate_payout":
        add_entry(state, agent["id"], {k: v for k, v in clean_payout.items()
                                       if k not in ("id", "agentId")})
    elif name == "unrecorded_transfer":
        pay(state, agent, 3 * E18, record=False)
    elif name == "payout_to_other_address":
        pay(state, agent, E18, to="0x" + secrets.token_hex(20))
    elif name == "unvested_payout":
        earn(state, agent, 1000 * E18, now - 10 * DAY)
        pay(state, agent, 500 * E18)
    elif name == "referral_amount_mismatch":
        _referral(state, agent, referee["id"], referee["createdAt"], 1000 * E18,
                  now - 70 * DAY, credit=50 * E18 + 7)
    elif name == "referral_rounding":
        # a referee whose credits were rounded on the running total: bases 19, 19, 21
        # -> credits 0, 1, 1 (per event the rule gives 0, 0, 1; both total 2)
        second = _referee(state, agent, 90)
        for days, base, credit in ((75, 19, 0), (74, 19, 1), (73, 21, 1)):
            _referral(state, agent, second["id"], second["createdAt"], base,
                      now - days * DAY, credit=credit)
    elif name == "referral_outside_window":
        old = _referee(state, agent, 400)
        _referral(state, agent, old["id"], old["createdAt"], 1000 * E18,
                  old["createdAt"] + contract.REFERRAL_WINDOW_DAYS * DAY)  # the first instant out
    elif name == "referral_unknown_referee":
        ghost = new_id("agt")
        _referral(state, agent, ghost, now - 50 * DAY, 1000 * E18, now - 40 * DAY)
    elif name == "reorged_transfer":
        out["reorgPayout"] = pay(state, agent, 2 * E18)
    return out


def render_entry(entry: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in entry.items() if k not in ("agentId", "blockNumber")}
    for key in TIME_FIELDS:
        if isinstance(out.get(key), int | float) and not isinstance(out.get(key), bool):
            out[key] = iso(float(out[key]))
    return out


def agent_entries(state: State, agent_id: str) -> list[dict[str, Any]]:
    entries = [e for e in _ledger(state)["entries"] if e.get("agentId") == agent_id]
    entries += [e for e in state.data.get("ledgerIntents", []) if e.get("agentId") == agent_id]

    def order(e: dict[str, Any]) -> tuple[float, str]:
        created = e.get("createdAt")
        if isinstance(created, str):
            try:
                return (parse_iso(created), str(e.get("id")))
            except ValueError:
                return (0.0, str(e.get("id")))
        return (float(created or 0), str(e.get("id")))
    return sorted(entries, key=order)


def _resolve_times(state: State, raw: dict[str, Any]) -> dict[str, Any]:
    out = dict(raw)
    for key in TIME_FIELDS:
        value = out.get(key)
        if isinstance(value, dict) and isinstance(value.get("daysAgo"), int | float):
            out[key] = state.now() - float(value["daysAgo"]) * DAY
    return out


def install(router: Router, state: State) -> None:
    def earnings(req: Request) -> Response:
        limit_raw = req.query.get("limit", str(DEFAULT_PAGE))
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= MAX_PAGE:
            raise validation({"limit": [f"must be an integer 1..{MAX_PAGE}"]})
        limit = int(limit_raw)
        entries = agent_entries(state, req.agent_id)
        start = 0
        after = req.query.get("after")
        if after:
            ids = [str(e.get("id")) for e in entries]
            if after not in ids:
                raise validation({"after": ["unknown cursor"]})
            start = ids.index(after) + 1
        page = entries[start:start + limit]
        more = start + limit < len(entries)
        return Response(200, {"entries": [render_entry(e) for e in page],
                              "nextCursor": str(page[-1]["id"]) if more and page else None})

    def referrals(req: Request) -> Response:
        items = sorted(
            ({"agentId": a["id"], "registeredAt": iso(float(a["createdAt"]))}
             for a in state.data["agents"].values() if a.get("referrer") == req.agent_id),
            key=lambda r: (r["registeredAt"], r["agentId"]))
        return Response(200, {"referrals": items})

    root = f"{CONTROL_ROOT}/ledger"

    def ctl_token(req: Request) -> Response:
        body = req.json_object(required=False)
        decimals = body.get("decimals", contract.DEFAULT_DECIMALS)
        if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 36:
            raise validation({"decimals": ["must be an integer 0..36"]})
        return Response(200, token_info(state, decimals))

    def ctl_entries(req: Request) -> Response:
        body = req.json_object()
        agent = _agent(state, body.get("agentId"))
        raw = body.get("entries")
        if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
            raise validation({"entries": ["must be a list of objects"]})
        added = [add_entry(state, agent["id"], _resolve_times(state, e)) for e in raw]
        return Response(201, {"entries": [render_entry(e) for e in added]})

    def ctl_earn(req: Request) -> Response:
        body = req.json_object()
        agent = _agent(state, body.get("agentId"))
        entry = earn(state, agent, _amount(body), _days_ago(state, body))
        return Response(201, render_entry(entry))

    def ctl_payout(req: Request) -> Response:
        body = req.json_object()
        agent = _agent(state, body.get("agentId"))
        entry = pay(state, agent, _amount(body), created=_days_ago(state, body))
        return Response(201, {**render_entry(entry), "blockNumber": entry["blockNumber"]})

    def ctl_scenario(req: Request) -> Response:
        body = req.json_object()
        agent = _agent(state, body.get("agentId"))
        result = scenario(state, agent, str(body.get("name")))
        return Response(201, _wire(result))

    def ctl_reorg(req: Request) -> Response:
        body = req.json_object()
        depth = body.get("depth")
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 1000:
            raise validation({"depth": ["must be an integer 1..1000"]})
        rpc = _rpc(state)
        try:
            rpc.request("anvil_reorg", [depth, []])
            latest = rpc.block_number()
        except ChainError as exc:
            raise ApiError("INTERNAL", f"reorg failed: {exc.message}") from None
        return Response(200, {"depth": depth, "latestBlock": latest})

    agent_route(router, state, "GET", "/earnings", earnings)
    agent_route(router, state, "GET", "/referrals", referrals)
    router.add("POST", f"{root}/token", ctl_token)
    router.add("POST", f"{root}/entries", ctl_entries)
    router.add("POST", f"{root}/earn", ctl_earn)
    router.add("POST", f"{root}/payout", ctl_payout)
    router.add("POST", f"{root}/scenario", ctl_scenario)
    router.add("POST", f"{root}/reorg", ctl_reorg)


def _wire(value: Any) -> Any:
    if isinstance(value, dict):
        if "type" in value and "createdAt" in value:
            return {**render_entry(value), **({"blockNumber": value["blockNumber"]}
                                              if "blockNumber" in value else {})}
        return {k: _wire(v) for k, v in value.items()}
    return value
