"""Benchmark: the sandbox's answer latency and a registration at ``sandbox serve`` defaults.

Prints figures; it is not a timed test. Run: ``.venv/bin/python bench/sandbox.py``
(``--requests N``, default 300; ``--agents N`` first creates a fleet of N agents with the
bulk control, default 0, and prints how long that took and the size of ``state.json``).

Measured, in this process, over one keep-alive httpx client on loopback:

- ``GET /api/health``: no auth, no state change (routing + HTTP only);
- ``GET /api/v1/agent/budget``: bearer auth, rate counting, and an atomic fsynced write of
  the state (every counted request changes the daily counter and the key's lastUsedAt);
- a whole registration at the ``serve`` defaults (64 MiB, 1 iteration, 2 bits x 10 rounds):
  challenge, solve with the project's solver (its planned backend and concurrency),
  register; the register POST's own time (the server verifies the 10 rounds with
  argon2-cffi while it holds the state lock) and that verification measured alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from impromptu_ops.pow.challenge import parse_challenge
from impromptu_ops.pow.solver import solve
from impromptu_ops.pow.verify import failing_rounds
from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer
from impromptu_ops.settings import PowSettings


def timed(client: httpx.Client, url: str, n: int, headers: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        client.get(url, headers=headers).raise_for_status()
        out.append(time.perf_counter() - start)
    return out


def show(name: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{name:34s} median {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms"
          f"   ({len(ms)} requests)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--agents", type=int, default=0)
    parser.add_argument("--skip-registration", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, \
            SandboxServer(SandboxConfig(burst_window_seconds=0.001),  # no 429s mid-bench
                          Path(tmp) / "state") as sb, \
            httpx.Client(timeout=120) as client:
        if args.agents:
            start = time.perf_counter()
            fleet = sb.control("POST", "agents/bulk", {"count": args.agents})["agents"]
            took = time.perf_counter() - start
            size = (Path(tmp) / "state" / "state.json").stat().st_size
            print(f"bulk-create {len(fleet)} agents            {took:7.2f} s   "
                  f"state.json {size / 1024:.0f} KiB")
        made = sb.control("POST", "agents", {"tier": "PARTNER"})
        auth = {"Authorization": f"Bearer {made['apiKey']}"}
        show("GET /health", timed(client, sb.base_url + "/health", args.requests, {}))
        show("GET /v1/agent/budget (auth+write)",
             timed(client, sb.base_url + "/v1/agent/budget", args.requests, auth))
        if args.skip_registration:
            return

        start = time.perf_counter()
        wire = client.post(sb.base_url + "/v1/agents/register/challenge").json()
        challenge = parse_challenge(wire)
        result = solve(challenge, PowSettings(calibration_seconds=0.3))
        solved = time.perf_counter()
        answer = client.post(sb.base_url + "/v1/agents/register", json={
            "name": "bench", "acceptTos": True, "pow": result.solution.to_json()})
        answer.raise_for_status()
        end = time.perf_counter()
        verify_start = time.perf_counter()
        assert not failing_rounds(challenge, result.solution)
        verify = time.perf_counter() - verify_start
        print(f"registration at serve defaults      {end - start:7.2f} s total "
              f"(challenge + calibrate + solve {solved - start:.2f} s of which solve "
              f"{result.elapsed:.2f} s, {result.hashes} hashes, backend "
              f"{result.plan.backend} x{result.plan.concurrency}; the register POST, which "
              f"verifies {len(challenge.rounds)} rounds under the state lock, "
              f"{(end - solved) * 1000:.0f} ms; the same verification alone "
              f"{verify * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
