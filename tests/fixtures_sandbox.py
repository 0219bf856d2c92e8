"""Sandbox fixtures: the simulated platform over real HTTP on a free loopback port.

- ``sandbox``: a running :class:`~impromptu_ops.sandbox.server.SandboxServer` with the test
  defaults (:data:`FAST`: tiny Argon2id parameters so a registration solves in
  milliseconds). Use ``.base_url`` (``http://127.0.0.1:P/api``), ``.openrouter_url``,
  ``.root_url``, ``.state_dir`` and ``.control(method, path, json)`` for ``/_sandbox/...``.
- ``sandbox_factory(**config)``: start another one with :class:`SandboxConfig` overrides;
  ``state_dir=`` reuses a folder (a restart), ``start=False`` returns it unstarted.

The limits are the contract's: a REGISTERED agent gets 10 requests per second (RATE_001
beyond) and 100 per day. Request-heavy tests make their agent ``tier="VERIFIED"`` or
``"PARTNER"`` (``POST /_sandbox/agents``), or pass ``burst_window_seconds=0.001``.

Helpers for tests of any area: :func:`solve` (a plain brute-force PoW solver, independent
of ``impromptu_ops.pow.solver``) and :func:`register` (the whole registration loop over raw
httpx, returning the 201 body).

Every server started here is stopped at teardown and binds 127.0.0.1 only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.pow.challenge import parse_challenge
from impromptu_ops.pow.verify import check_round
from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer

# Test defaults: 64 KiB, 1 iteration, 1 bit per round: a full solve is ~20 tiny hashes.
FAST: dict[str, Any] = {"pow_memory_kib": 64, "pow_iterations": 1, "pow_difficulty": 1}

SandboxFactory = Callable[..., SandboxServer]


def solve(challenge_json: dict[str, Any]) -> list[int]:
    """Nonces for every round of a challenge (brute force from 0; fine for tiny params)."""
    challenge = parse_challenge(challenge_json)
    nonces = []
    for rnd in challenge.rounds:
        nonce = 0
        while not check_round(challenge, rnd.index, nonce):
            nonce += 1
        nonces.append(nonce)
    return nonces


def register(server: SandboxServer, *, prefix: str = "/v1", tx_hash: str | None = None,
             **body: Any) -> dict[str, Any]:
    """Register through the real endpoints (challenge, solve, pay if asked); the 201 body.

    ``tx_hash`` answers PAYMENT_REQUIRED; register it first with
    ``server.control("POST", "payments", {...})``.
    """
    body = {"name": "agent-" + secrets.token_hex(4), "description": "test",
            "capabilities": ["chat"], "acceptTos": True, **body}
    url = f"{server.base_url}{prefix}/agents/register"
    with httpx.Client(timeout=30.0) as client:
        for _ in range(4):
            resp = client.post(url, json=body)
            if resp.status_code == 201:
                answer: dict[str, Any] = resp.json()
                return answer
            code = resp.json()["error"]["code"]
            if code == "POW_REQUIRED":
                chal = client.post(url + "/challenge").json()
                body["pow"] = {"chainId": chal["chainId"], "nonces": solve(chal)}
            elif code == "PAYMENT_REQUIRED" and tx_hash is not None:
                body["payment"] = {"txHash": tx_hash}
            else:
                raise AssertionError(f"registration refused: {resp.text}")
    raise AssertionError("registration did not finish in 4 steps")


@pytest.fixture
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxFactory]:
    started: list[SandboxServer] = []

    def make(*, state_dir: Path | None = None, start: bool = True,
             **config: Any) -> SandboxServer:
        folder = state_dir or tmp_path_factory.mktemp("sandbox") / "state"
        server = SandboxServer(SandboxConfig.build(**{**FAST, **config}), folder,
                               host="127.0.0.1", port=0)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxServer:
    return sandbox_factory()
