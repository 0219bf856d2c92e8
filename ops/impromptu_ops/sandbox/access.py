"""Who may call an agent endpoint, and how often: bearer auth, activation, rate limits.

:func:`agent_route` registers a handler on both path generations (``/api/v1/agent/...`` and
legacy ``/api/agent/...``) behind, in this order:

1. the bearer key: missing, unknown, revoked or expired -> 401 UNAUTHORIZED;
2. the account: not ACTIVE -> 403 ACCOUNT_NOT_ACTIVE (unless the route allows PENDING:
   profile and accept-tos);
3. the per-key burst limit (tier ``burst_per_second`` in a sliding window) -> 429 RATE_001
   with ``Retry-After``; then the per-agent daily quota (tier ``actions_per_day``, resets
   at midnight UTC of the simulated clock) -> 429 RATE_003 with ``X-RateLimit-Reset``.

Responses, errors included, carry ``X-RateLimit-Limit/-Remaining/-Reset`` for the daily
quota (the burst window's figures on a RATE_001). Uncounted routes (heartbeat) skip step 3:
their headers show the quota without using any of it. Budgets are not checked here: a
handler that costs something calls :func:`impromptu_ops.sandbox.accounts.spend`.
"""

from __future__ import annotations

import collections
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from impromptu_ops import contract
from impromptu_ops.sandbox.accounts import find_key, key_status
from impromptu_ops.sandbox.router import ApiError, Handler, Request, Response, Router, agent_paths
from impromptu_ops.sandbox.state import State


def next_midnight(ts: float) -> float:
    day = datetime.fromtimestamp(ts, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def utc_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def authenticate(state: State, req: Request, *, allow_pending: bool = False
                 ) -> dict[str, Any]:
    """Resolve the bearer key to its agent; set ``req.agent_id`` / ``req.key_id``.

    Raises:
        ApiError: UNAUTHORIZED or ACCOUNT_NOT_ACTIVE.
    """
    token = req.bearer()
    if token is None:
        raise ApiError("UNAUTHORIZED", "no API key was sent",
                       hint="send Authorization: Bearer impr_sk_...")
    record = find_key(state, token)
    if record is None:
        raise ApiError("UNAUTHORIZED", "the API key is not valid")
    status = key_status(state, record)
    if status != "active":
        raise ApiError("UNAUTHORIZED", f"the API key is {status}",
                       hint="use a current key; rotate before expiry")
    agent: dict[str, Any] | None = state.data["agents"].get(record["agentId"])
    if agent is None:
        raise ApiError("UNAUTHORIZED", "the API key's agent no longer exists")
    if agent["status"] != "ACTIVE" and not allow_pending:
        raise ApiError("ACCOUNT_NOT_ACTIVE", f"the account is {agent['status']}",
                       hint=f"accept the terms: POST {req.prefix}/agent/accept-tos")
    record["lastUsedAt"] = state.now()
    req.agent_id, req.key_id = agent["id"], record["id"]
    return agent


def _daily_headers(limit: int, used: int, reset: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(max(0, limit - used)),
            "X-RateLimit-Reset": str(int(reset))}


def _today(agent: dict[str, Any], now: float) -> dict[str, Any]:
    daily: dict[str, Any] = agent.setdefault("daily", {"day": "", "used": 0})
    if daily.get("day") != utc_day(now):
        daily.update(day=utc_day(now), used=0)
    return daily


def quota_headers(state: State, agent: dict[str, Any]) -> dict[str, str]:
    """The daily quota's headers, without using any of it."""
    now = state.now()
    return _daily_headers(contract.TIERS[agent["tier"]].actions_per_day,
                          _today(agent, now)["used"], next_midnight(now))


def count_request(state: State, agent: dict[str, Any], key_id: str) -> dict[str, str]:
    """Apply the burst limit and the daily quota; return the rate-limit headers.

    Raises:
        ApiError: RATE_001 (burst) or RATE_003 (daily quota), with their headers.
    """
    tier = contract.TIERS[agent["tier"]]
    window = state.config.burst_window_seconds
    real = state.real_now()
    windows: dict[str, collections.deque[float]] = state.memory.setdefault("burst", {})
    hits = windows.setdefault(key_id, collections.deque())
    while hits and hits[0] <= real - window:
        hits.popleft()
    if len(hits) >= tier.burst_per_second:
        wait = max(1, math.ceil(hits[0] + window - real))
        raise ApiError("RATE_001", f"burst limit of {tier.burst_per_second} per "
                       f"{window:g} s reached", hint="retry after Retry-After seconds",
                       headers={"Retry-After": str(wait),
                                "X-RateLimit-Limit": str(tier.burst_per_second),
                                "X-RateLimit-Remaining": "0",
                                "X-RateLimit-Reset": str(math.ceil(state.now() + wait))})
    now = state.now()
    reset = next_midnight(now)
    daily = _today(agent, now)
    if daily["used"] >= tier.actions_per_day:
        headers = _daily_headers(tier.actions_per_day, daily["used"], reset)
        headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
        raise ApiError("RATE_003", f"daily quota of {tier.actions_per_day} requests used",
                       hint="no retry before X-RateLimit-Reset (midnight UTC)", headers=headers)
    hits.append(real)
    daily["used"] += 1
    return _daily_headers(tier.actions_per_day, daily["used"], reset)


def guarded(state: State, handler: Handler, *, counted: bool = True,
            allow_pending: bool = False) -> Handler:
    """Wrap ``handler`` with authentication, activation and (when counted) rate limits."""

    def run(req: Request) -> Response:
        agent = authenticate(state, req, allow_pending=allow_pending)
        if counted:
            headers = count_request(state, agent, req.key_id)
        else:
            headers = quota_headers(state, agent)
        try:
            resp = handler(req)
        except ApiError as exc:
            exc.headers = {**headers, **exc.headers}
            raise
        resp.headers = {**headers, **resp.headers}
        return resp

    return run


def agent_route(router: Router, state: State, method: str, subpath: str, handler: Handler,
                *, counted: bool = True, allow_pending: bool = False,
                public: bool = False) -> None:
    """Register ``handler`` for ``method /api[/v1]/agent<subpath>``.

    Args:
        public: no authentication at all (the sample feed).
    """
    wrapped = handler if public else guarded(state, handler, counted=counted,
                                             allow_pending=allow_pending)
    router.add_many(method, agent_paths(subpath), wrapped)
