"""``impromptu-ops pow``: solve or verify a registration challenge by hand (runbooks)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import click

from impromptu_ops.cli.app import App, pass_app
from impromptu_ops.cli.output import err, out, out_json
from impromptu_ops.pow.estimate import format_duration
from impromptu_ops.pow.solver import Plan, Progress


def describe_plan(plan: Plan) -> str:
    """The one line printed before the search (the solver refused already if even the
    expected time does not fit; a p99 beyond the expiry is only a warning)."""
    est, ds = plan.estimate, plan.difficulties
    risk = (" (warning: 1 run in 100 takes longer than that; more --workers or memory "
            "budget would help)" if est.p99_seconds > plan.seconds_left else "")
    return (f"PoW: {len(ds)} rounds of {min(ds)}-{max(ds)} bits at "
            f"{plan.memory_kib / 1024:g} MiB; {plan.backend} x{plan.concurrency} at "
            f"{est.hash_rate:.1f} hashes/s; expected {format_duration(est.expected_seconds)}, "
            f"99% within {format_duration(est.p99_seconds)}; challenge expires in "
            f"{format_duration(plan.seconds_left)}{risk}")


class ProgressBar:
    """A one-line bar on stderr, redrawn at most every 0.2 s; only on a TTY."""

    def __init__(self, enabled: bool | None = None, width: int = 20) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._lock = threading.Lock()

    def __call__(self, p: Progress) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if now - self._last < 0.2 and p.rounds_done < p.rounds_total:
                return
            self._last = now
            filled = self.width * p.rounds_done // max(p.rounds_total, 1)
            bar = "#" * filled + "-" * (self.width - filled)
            mins, secs = divmod(int(p.elapsed), 60)
            err(f"\r[{bar}] {p.rounds_done}/{p.rounds_total} rounds  {p.rate:6.1f} h/s  "
                f"{mins:02d}:{secs:02d}", nl=p.rounds_done == p.rounds_total)


@click.group("pow")
def pow_group() -> None:
    """Solve or verify a registration proof-of-work challenge."""


@pow_group.command("solve")
@click.option("--challenge", "challenge_file", type=click.Path(path_type=Path), required=True,
              help="Challenge JSON as the server sent it ('-' for stdin).")
@click.option("--max-difficulty", type=int, help="Refuse rounds above this many bits.")
@click.option("--max-memory-mib", type=int, help="Refuse hashes needing more memory.")
@click.option("--workers", type=int, help="Concurrent hashes (default: one per core).")
@click.option("--backend", type=click.Choice(["auto", "libsodium", "cryptography",
                                              "argon2-cffi"]), help="Argon2id binding.")
@pass_app
def solve_cmd(app: App, challenge_file: Path, max_difficulty: int | None,
              max_memory_mib: int | None, workers: int | None, backend: str | None) -> None:
    """Solve a challenge; print the solution JSON ({chainId, nonces}) on stdout."""
    from impromptu_ops.pow.documents import read_challenge
    from impromptu_ops.pow.solver import solve

    settings = app.settings(pow__max_difficulty_bits=max_difficulty,
                            pow__max_memory_mib=max_memory_mib, pow__workers=workers,
                            pow__backend=backend)
    challenge = read_challenge(challenge_file)
    ds = [r.difficulty for r in challenge.rounds]
    result = solve(challenge, settings.pow, backend=settings.pow.backend,
                   on_plan=lambda p: err(describe_plan(p)),
                   progress=ProgressBar())
    err(f"solved {len(ds)} rounds with {result.hashes} hashes in "
        f"{format_duration(result.elapsed)} ({result.hashes / max(result.elapsed, 1e-9):.1f} "
        "hashes/s)")
    out_json(result.solution.to_json())


@pow_group.command("verify")
@click.option("--challenge", "challenge_file", type=click.Path(path_type=Path), required=True,
              help="Challenge JSON.")
@click.option("--solution", "solution_file", type=click.Path(path_type=Path), default="-",
              show_default=True, help="Solution JSON ({chainId, nonces}; '-' for stdin).")
@pass_app
def verify_cmd(app: App, challenge_file: Path, solution_file: Path) -> None:
    """Check a solution with the reference Argon2id; exit 65 naming the failing rounds."""
    from impromptu_ops.errors import IntegrityError
    from impromptu_ops.pow.documents import read_challenge, read_solution
    from impromptu_ops.pow.verify import failing_rounds

    challenge = read_challenge(challenge_file)
    bad = failing_rounds(challenge, read_solution(solution_file, challenge))
    if bad:
        raise IntegrityError(f"the solution fails round(s) {bad[:20]} of {len(challenge.rounds)}")
    out(f"valid: all {len(challenge.rounds)} rounds meet their difficulty")
