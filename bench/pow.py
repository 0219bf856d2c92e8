"""Benchmark: the registration PoW at the documented 128 MiB, ours against the alternatives.

Prints figures; it is not a timed test. Full run, on a quiet machine:
``.venv/bin/python bench/pow.py`` (about 18 min on 2 cores, 11 of them node's sequential
searches). ``--noble-project`` projects node's t=3 time from its measured rate instead of
solving (about 10 min). Smoke test of the script itself (seconds, figures meaningless):
``.venv/bin/python bench/pow.py --quick --memory-mib 4 --rate-seconds 0.3 --reps 1``.

The challenge set: 128 MiB, parallelism 1, 32-byte output, iterations 1 and 3; for each, one
challenge of 10 rounds whose difficulties run 2, 2, 3, 3, ... 6, 6 bits (fixed salts and
chain ids, so every run and every solver faces the same work). Solvers:

- ours, on 1 core and on all cores (:class:`impromptu_ops.pow.solver.Solver` with the backend
  :func:`~impromptu_ops.pow.backends.candidates` picks);
- argon2-cffi, single-threaded: a plain sequential search (what a naive client does);
- ``@noble/hashes`` argon2id on node, the platform SDK's own choice (installed with npm into
  ``.cache/noble``), also a sequential search.

Sequential searches find the smallest solving nonce of each round, so they all compute the
same number of hashes (node's nonces are checked against argon2-cffi's: identical digests).
With ``--noble-project`` (implied by ``--quick``) node's t=3 time is projected from that
exact count and node's measured t=3 rate, and marked "(projected)".

Also printed: each library's raw rate at 1 and at all threads, and the memory-bandwidth
bound (bytes touched per hash x hashes/s against a measured copy bandwidth). Argon2 touches
about 3 KiB per 1 KiB block per pass (reads the previous and a reference block, writes
one), so ``3 x memory x iterations`` per hash.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from impromptu_ops import contract
from impromptu_ops.errors import Interrupted
from impromptu_ops.pow.backends import BACKENDS, candidates
from impromptu_ops.pow.challenge import Argon2Params, Challenge, Round
from impromptu_ops.pow.solver import Progress, Solver
from impromptu_ops.pow.verify import Hasher, meets, verify

REPO = Path(__file__).resolve().parents[1]
NOBLE_DIR = REPO / ".cache" / "noble"
NOBLE_VERSION = "2.4.0"
MEMORY_KIB = 128 * 1024
MiB = 1024 * 1024

NOBLE_SCRIPT = r"""
import { argon2id } from '@noble/hashes/argon2.js';
const job = JSON.parse(process.argv[2]);
const enc = new TextEncoder();
const p = job.params;
const opts = { t: p.iterations, m: p.memoryKiB, p: p.parallelism, dkLen: p.hashLength };
const b64 = (s) => Uint8Array.from(Buffer.from(s, 'base64'));
function zeros(d) {
  let bits = 0;
  for (const b of d) { if (b === 0) { bits += 8; continue; } return bits + Math.clz32(b) - 24; }
  return bits;
}
const t0 = performance.now();
let hashes = 0;
const nonces = [];
if (job.mode === 'rate') {
  const salt = b64(job.salt);
  for (let i = 0; i < job.n; i++) { argon2id(enc.encode('rate:' + i), salt, opts); hashes++; }
} else {
  for (const r of job.rounds) {
    const salt = b64(r.salt);
    for (let n = 0; ; n++) {
      hashes++;
      const pw = enc.encode(`${job.chainId}:${r.index}:${n}`);
      if (zeros(argon2id(pw, salt, opts)) >= r.difficulty) {
        nonces.push(n); break;
      }
    }
  }
}
console.log(JSON.stringify({ hashes, seconds: (performance.now() - t0) / 1000, nonces }));
"""


@dataclass
class Run:
    label: str
    hashes: int
    seconds: float
    projected: bool = False

    @property
    def rate(self) -> float:
        return self.hashes / self.seconds


def challenge_set(iterations: int, difficulties: list[int], rounds: int) -> Challenge:
    seed = f"impromptu-bench-{iterations}".encode()
    return Challenge(
        chain_id=str(uuid.UUID(bytes=hashlib.sha256(seed).digest()[:16], version=4)),
        params=Argon2Params(MEMORY_KIB, iterations, 1, 32),
        rounds=tuple(Round(i, hashlib.sha256(seed + bytes([i])).digest()[:16],
                           difficulties[i * len(difficulties) // rounds])
                     for i in range(rounds)),
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )


def sequential(hasher: Hasher, challenge: Challenge) -> tuple[Run, tuple[int, ...]]:
    """Search each round from nonce 0 upwards on one thread: the smallest solving nonces."""
    hashes, nonces = 0, []
    start = time.perf_counter()
    for rnd in challenge.rounds:
        n = 0
        while True:
            hashes += 1
            password = contract.pow_password(challenge.chain_id, rnd.index, n)
            if meets(hasher(password, rnd.salt, challenge.params), rnd.difficulty):
                nonces.append(n)
                break
            n += 1
    return Run("", hashes, time.perf_counter() - start), tuple(nonces)


def ours(challenge: Challenge, workers: int) -> Run:
    backend = candidates(challenge.params, [len(r.salt) for r in challenge.rounds])[0]
    start = time.perf_counter()
    solution, hashes = Solver(backend, workers).solve(challenge)
    seconds = time.perf_counter() - start
    assert verify(challenge, solution, backend.hash)
    return Run(f"ours ({backend.name}) x{workers}", hashes, seconds)


def ours_rate(workers: int, params: Argon2Params, seconds: float) -> float:
    """Hashes/s of our solver searching an unsolvable challenge until a deadline."""
    challenge = Challenge(str(uuid.uuid4()), params,
                          tuple(Round(i, os.urandom(16), 60) for i in range(10)),
                          datetime.now(UTC) + timedelta(days=1))
    backend = candidates(params, [16])[0]
    seen: list[Progress] = []
    solver = Solver(backend, workers, progress=seen.append, progress_interval=0.1)
    with contextlib.suppress(Interrupted):
        solver.solve(challenge, deadline=time.monotonic() + seconds)
    return seen[-1].rate if seen else 0.0


def raw_rate(hasher: Hasher, params: Argon2Params, threads: int, seconds: float) -> float:
    """Hashes/s of ``threads`` threads hashing throwaway passwords for ``seconds``."""
    counts = [0] * threads
    salt = os.urandom(16)
    start = time.perf_counter()

    def work(slot: int) -> None:
        while counts[slot] == 0 or time.perf_counter() - start < seconds:
            hasher(b"bench:%d:%d" % (slot, counts[slot]), salt, params)
            counts[slot] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def noble_ready() -> Path:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not installed")
    if not (NOBLE_DIR / "node_modules" / "@noble" / "hashes" / "argon2.js").exists():
        subprocess.run(["npm", "install", "--prefix", str(NOBLE_DIR),
                        f"@noble/hashes@{NOBLE_VERSION}"], check=True,
                       stdout=subprocess.DEVNULL)
    script = NOBLE_DIR / "bench-argon2.mjs"
    script.write_text(NOBLE_SCRIPT)
    return script


def noble(script: Path, job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(["node", str(script), json.dumps(job)], check=False,
                          capture_output=True, text=True, cwd=NOBLE_DIR)
    if proc.returncode:
        raise SystemExit(f"node failed: {proc.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def copy_bandwidth(threads: int, size: int = 256 * MiB, reps: int = 4) -> float:
    """Bytes moved (read + written) per second by ``threads`` concurrent memcpy loops.

    ``ctypes.memmove`` releases the GIL, so the threads really copy in parallel.
    """
    bufs = [(ctypes.create_string_buffer(size), ctypes.create_string_buffer(size))
            for _ in range(threads)]
    for src, dst in bufs:  # touch every page first
        ctypes.memmove(dst, src, size)

    def work(i: int) -> None:
        src, dst = bufs[i]
        for _ in range(reps):
            ctypes.memmove(dst, src, size)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return 2 * size * reps * threads / (time.perf_counter() - start)


def show(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="difficulties 2-4 only, node's t=3 time projected")
    parser.add_argument("--noble-project", action="store_true",
                        help="project node's t=3 solve time from its rate (saves ~8 min)")
    parser.add_argument("--rate-seconds", type=float, default=2.0,
                        help="length of one rate-measurement slice")
    parser.add_argument("--reps", type=int, default=3,
                        help="interleaved slices per configuration (the median is shown)")
    parser.add_argument("--memory-mib", type=int, default=128,
                        help="memory per hash (128 is the documented size; smaller only to "
                             "smoke-test this script)")
    args = parser.parse_args()
    global MEMORY_KIB  # noqa: PLW0603 - one knob for a smoke run, read everywhere below
    MEMORY_KIB = args.memory_mib * 1024
    cores = os.cpu_count() or 1
    difficulties = [2, 3, 4] if args.quick else [2, 3, 4, 5, 6]
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other work on the machine skews "
          "every figure)")
    print(f"PoW benchmark: {cores} cores, {args.memory_mib} MiB, p=1, 32-byte output, 10 rounds of "
          f"{difficulties[0]}-{difficulties[-1]} bits, iterations 1 and 3")
    script = noble_ready()

    print(f"\nraw hash rate per library (t=1), hashes/s, median of {args.reps} interleaved "
          f"{args.rate_seconds:g} s slices:")
    p1 = Argon2Params(MEMORY_KIB, 1, 1, 32)
    # Short slices, interleaved round-robin, median per configuration: load from other
    # processes drifts over minutes, and this spreads it over every configuration alike.
    slices: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.reps):
        for threads in sorted({1, cores}):
            for name, backend in BACKENDS.items():
                slices.setdefault((name, threads), []).append(
                    raw_rate(backend.hash, p1, threads, args.rate_seconds))
            slices.setdefault(("ours", threads), []).append(
                ours_rate(threads, p1, args.rate_seconds))
    medians = {k: statistics.median(v) for k, v in slices.items()}
    raw = {k: v for k, v in medians.items() if k[0] != "ours"}
    ours_raw = {t: medians[("ours", t)] for t in sorted({1, cores})}
    n_rate = noble(script, {"mode": "rate", "n": 4, "params": {
        "memoryKiB": MEMORY_KIB, "iterations": 1, "parallelism": 1, "hashLength": 32},
        "salt": "AAAAAAAAAAAAAAAAAAAAAA=="})
    show([("library", *[f"{t} thread(s)" for t in sorted({1, cores})], "ms/hash (1 thread)")]
         + [(name, *[f"{raw[(name, t)]:.2f}" for t in sorted({1, cores})],
             f"{1000 / raw[(name, 1)]:.0f}") for name in BACKENDS]
         + [("ours (solver search)", *[f"{ours_raw[t]:.2f}" for t in sorted({1, cores})],
             f"{1000 / ours_raw[1]:.0f}")]
         + [(f"@noble/hashes {NOBLE_VERSION} (node)", f"{n_rate['hashes'] / n_rate['seconds']:.2f}",
             *["-"] * (len({1, cores}) - 1), f"{1000 * n_rate['seconds'] / n_rate['hashes']:.0f}")])

    results: dict[str, list[Run]] = {}
    for iterations in (1, 3):
        challenge = challenge_set(iterations, difficulties, 10)
        print(f"\nsolving t={iterations} (difficulties "
              f"{[r.difficulty for r in challenge.rounds]}) ...", flush=True)
        runs = [ours(challenge, cores), ours(challenge, 1)]
        cffi, cffi_nonces = sequential(BACKENDS["argon2-cffi"].hash, challenge)
        cffi.label = "argon2-cffi x1 (sequential)"
        runs.append(cffi)
        job = {"chainId": challenge.chain_id, "params": challenge.to_json()["params"],
               "rounds": challenge.to_json()["rounds"]}
        if iterations == 1 or not (args.noble_project or args.quick):
            got = noble(script, {"mode": "solve", **job})
            assert tuple(got["nonces"]) == cffi_nonces, "node found other nonces: digests differ"
            runs.append(Run(f"@noble/hashes {NOBLE_VERSION} x1 (node)", got["hashes"],
                            got["seconds"]))
        else:
            rate = noble(script, {"mode": "rate", "n": 3, "params": job["params"],
                                  "salt": job["rounds"][0]["salt"]})
            seconds = cffi.hashes * rate["seconds"] / rate["hashes"]
            runs.append(Run(f"@noble/hashes {NOBLE_VERSION} x1 (node)", cffi.hashes, seconds,
                            projected=True))
        results[f"t={iterations}"] = runs
        show([("solver", "hashes", "seconds", "hashes/s")]
             + [(r.label, str(r.hashes), f"{r.seconds:.1f}" + (" (projected)" if r.projected
                                                                 else ""), f"{r.rate:.2f}")
                for r in runs])

    print("\ntotal solve time over the set (t=1 + t=3):")
    labels = [r.label for r in results["t=1"]]
    totals = {lab: sum(next(r for r in runs if r.label == lab).seconds
                       for runs in results.values()) for lab in labels}
    show([("solver", "total seconds")] + [(lab, f"{totals[lab]:.1f}") for lab in labels])

    print("\nmemory bandwidth bound (t=1):")
    bw1, bwn = copy_bandwidth(1), copy_bandwidth(cores)
    touched = 3 * MEMORY_KIB * 1024 * 1
    solve_rate = results["t=1"][0].rate
    show([("copy bandwidth, 1 thread", f"{bw1 / 1e9:.1f} GB/s"),
          (f"copy bandwidth, {cores} threads", f"{bwn / 1e9:.1f} GB/s"),
          (f"bytes touched per hash (3 x {args.memory_mib} MiB x t)", f"{touched / MiB:.0f} MiB"),
          ("bound at all-thread copy bandwidth", f"{bwn / touched:.1f} hashes/s"),
          ("ours, all cores (t=1 solve)",
           f"{solve_rate:.2f} hashes/s = {solve_rate * touched / 1e9:.1f} GB/s "
           f"({100 * solve_rate * touched / bwn:.0f}% of copy bandwidth)")])

    our_rate = ours_raw[cores]  # measured right beside the library rates: same conditions
    best_name, best_threads = max(raw, key=lambda k: raw[k])
    best = raw[(best_name, best_threads)]
    cffi1 = raw[("argon2-cffi", 1)]
    noble1 = n_rate["hashes"] / n_rate["seconds"]
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print("targets (t=1 raw rates, measured back to back):")
    show([
        ("ours all-core vs best library at its best thread count",
         f"{our_rate:.2f} vs {best:.2f} ({best_name} x{best_threads}): "
         f"{100 * our_rate / best:.0f}%", "target >= 95%",
         "MET" if our_rate >= 0.95 * best else "MISSED"),
        ("ours all-core vs argon2-cffi single-threaded", f"{our_rate / cffi1:.2f}x",
         "target >= 1.5x", "MET" if our_rate >= 1.5 * cffi1 else "MISSED"),
        ("ours all-core vs @noble/hashes", f"{our_rate / noble1:.1f}x", "target >= 7x",
         "MET" if our_rate >= 7 * noble1 else "MISSED"),
    ])


if __name__ == "__main__":
    main()
