"""``impromptu-ops quickstart``: the whole lifecycle, rehearsed against the local sandbox."""

from __future__ import annotations

from pathlib import Path

import click

from impromptu_ops.cli.output import out, table


@click.command("quickstart")
@click.option("--workdir", type=click.Path(path_type=Path, file_okay=False),
              default=Path(".quickstart"), show_default=True,
              help="Folder for the rehearsal's runs (each run gets its own 0700 folder).")
@click.option("--pow-memory-mib", type=click.IntRange(1, 4096), default=128, show_default=True,
              help="Argon2id memory per hash the sandbox asks for (the documented 128 MiB).")
@click.option("--pow-difficulty", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Leading zero bits per round the sandbox asks for.")
@click.option("--no-chain", is_flag=True, help="Skip the earnings step even if anvil exists.")
def quickstart(workdir: Path, pow_memory_mib: int, pow_difficulty: int, no_chain: bool) -> None:
    """Register, store, heartbeat, health, rotate, gate an update and reconcile earnings,
    all against the built-in sandbox platform and an encrypted local store.

    Nothing touches your real configuration or keys: everything lives in WORKDIR.
    """
    from impromptu_ops.quickstart import next_steps, run_quickstart, summarise

    repo_root = Path(__file__).resolve().parents[3]
    root, results = run_quickstart(workdir.resolve(), out,
                                   pow_memory_kib=pow_memory_mib * 1024,
                                   pow_difficulty=pow_difficulty, with_chain=not no_chain,
                                   repo_root=repo_root)
    out("\nSummary")
    out(table(summarise(results), ("step", "exit", "verdict")))
    failed = [r for r in results if not r.ok]
    out("")
    out(next_steps(root))
    if failed:
        raise click.exceptions.Exit(1)
