"""Every help page ends with examples: one table, applied where the command tree is loaded.

Command modules belong to their features; the examples (and the exit codes of the jobs
a scheduler runs) are kept here, keyed by command path, and :func:`apply` sets each
command's epilog when the CLI's lazy group loads it. ``tests/test_help_examples.py``
walks every command and fails on a page without an example, so a new command cannot ship
without one.
"""

from __future__ import annotations

import click

# command path ("" = the root) -> one or two example invocations
EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("impromptu-ops quickstart",
         "impromptu-ops health --format nagios"),
    "agents": ("impromptu-ops agents list",),
    "agents list": ("impromptu-ops agents list --json",),
    "api": ("impromptu-ops api status",),
    "api status": ("impromptu-ops api status --json",),
    "config": ("impromptu-ops config show",),
    "config path": ("impromptu-ops config path",),
    "config show": ("impromptu-ops config show --json | jq '.[\"jobs.ping_url\"]'",),
    "earnings": ("impromptu-ops earnings reconcile --since 2026-01-01",),
    "earnings reconcile": (
        "impromptu-ops earnings reconcile --since 2026-01-01",
        "impromptu-ops earnings reconcile --format json --output ~/earnings.json"),
    "fleet": ("impromptu-ops fleet health --format nagios",),
    "fleet health": ("impromptu-ops fleet health",
                     "impromptu-ops fleet health --format prometheus > /var/lib/node_exporter/"
                     "textfile_collector/impromptu-fleet.prom"),
    "fleet heartbeat": ("impromptu-ops fleet heartbeat --json",),
    "fleet reconcile": ("impromptu-ops fleet reconcile --since 2026-01-01",
                        "impromptu-ops fleet reconcile --format json --output-dir "
                        "~/earnings/2026 --report-format html"),
    "fleet rotate": ("impromptu-ops fleet rotate --if-due",
                     "impromptu-ops fleet rotate --if-due --provider openrouter --json"),
    "health": ("impromptu-ops health",
               "impromptu-ops health --format nagios -w budget=30: -t 10"),
    "heartbeat": ("impromptu-ops heartbeat",
                  "impromptu-ops heartbeat --json --metrics-file "
                  "/var/lib/node_exporter/textfile_collector/impromptu.prom"),
    "install": ("impromptu-ops install --dry-run",
                "sudo impromptu-ops install --scheduler systemd --scope system --create-user"),
    "legacy": ("impromptu-ops legacy health   # what scripts/impromptu-health runs",),
    "legacy health": ("impromptu-ops legacy health",),
    "legacy heartbeat": ("impromptu-ops legacy heartbeat >/dev/null   # still logs to "
                         "~/.impromptu/heartbeat.log",),
    "legacy install": ("impromptu-ops legacy install",),
    "pow": ("impromptu-ops pow solve --challenge challenge.json > solution.json",),
    "pow solve": ("impromptu-ops pow solve --challenge challenge.json > solution.json",),
    "pow verify": ("impromptu-ops pow verify --challenge challenge.json "
                   "--solution solution.json",),
    "quickstart": ("impromptu-ops quickstart",
                   "impromptu-ops quickstart --workdir /tmp/impromptu-try --no-chain"),
    "register": ("impromptu-ops register accept-tos",),
    "register accept-tos": ("impromptu-ops register accept-tos",),
    "register recover": ("impromptu-ops register recover ~/.local/state/impromptu-ops/"
                         "emergency-secrets.json",),
    "rotate": ("impromptu-ops rotate impromptu --if-due",
               "impromptu-ops rotate status"),
    "rotate impromptu": ("impromptu-ops rotate impromptu --dry-run",
                         "impromptu-ops rotate impromptu --if-due --json"),
    "rotate openrouter": ("impromptu-ops rotate openrouter --grace 2h",),
    "rotate vault-secret-id": ("impromptu-ops rotate vault-secret-id --if-due",),
    "rotate resume": ("impromptu-ops rotate resume openrouter",),
    "rotate rollback": ("impromptu-ops rotate rollback impromptu",),
    "rotate status": ("impromptu-ops rotate status --lines 20",),
    "sandbox": ("impromptu-ops sandbox serve --port 8787",),
    "sandbox serve": ("impromptu-ops sandbox serve --port 8787 --no-pow",),
    "screen": ("impromptu-ops screen SKILL.md",
               "curl -s https://example.org/skill.md | impromptu-ops screen -"),
    "secrets": ("impromptu-ops secrets list",
                "impromptu-ops secrets exec -- ./my-agent"),
    "secrets check": ("impromptu-ops secrets check",),
    "secrets exec": ("impromptu-ops secrets exec -- ./my-agent",),
    "secrets get": ("impromptu-ops secrets get impromptu-api-key",),
    "secrets history": ("impromptu-ops secrets history impromptu-api-key",),
    "secrets import": ("impromptu-ops secrets import --from-file .env",),
    "secrets list": ("impromptu-ops secrets list --json",),
    "secrets policy": ("impromptu-ops secrets policy heartbeat --agent my-agent "
                       "> heartbeat.hcl",),
    "secrets put": ("impromptu-ops secrets put openrouter-api-key   # asks, hidden",),
    "secrets rollback": ("impromptu-ops secrets rollback impromptu-api-key --version 3",),
    "secrets scan": ("impromptu-ops secrets scan",
                     "impromptu-ops secrets scan --fix"),
    "update": ("impromptu-ops update fetch && impromptu-ops update diff",),
    "update apply": ("impromptu-ops update apply",),
    "update approve": ("impromptu-ops update approve --digest sha256:...",),
    "update diff": ("impromptu-ops update diff --no-pager",),
    "update fetch": ("impromptu-ops update fetch",
                     "impromptu-ops update fetch ./skill-folder"),
    "update log": ("impromptu-ops update log --json",),
    "update rollback": ("impromptu-ops update rollback",),
    "update status": ("impromptu-ops update status",),
}

_SKIP = "75 skipped (lock held, or paused by RATE_003/BUDG_001; see --skipped-exit-code)"
_ROTATE = ("0 done or not due", _SKIP, "1 failed, the agent still has a working key",
           "2 the agent may be without a working key (page someone)", "64 usage error")
# The jobs a scheduler runs: what each exit code means.
EXIT_CODES: dict[str, tuple[str, ...]] = {
    "heartbeat": ("0 ok", "1 failed", "65 malformed answer", "69 platform unavailable",
                  _SKIP, "77 key refused", "78 configuration error"),
    "rotate impromptu": _ROTATE,
    "rotate openrouter": _ROTATE,
    "rotate vault-secret-id": _ROTATE,
    "legacy health": ("0 HEALTHY", "2 DEGRADED (warnings only)", "1 UNHEALTHY"),
    "legacy heartbeat": ("0 ok, or skipped (one line says why)", "1 failed"),
    "earnings reconcile": ("0 reconciled", "1 discrepancies found",
                           "3 could not check (usage errors too)"),
    "health": ("0 OK", "1 WARNING", "2 CRITICAL", "3 UNKNOWN (our own failure or a usage "
               "error)", "legacy format: 0 healthy, 2 degraded, 1 unhealthy"),
}


def epilog(path: str) -> str | None:
    """The text that ends ``path``'s help page (None: no example is known)."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    # \b keeps click from re-wrapping the lines of a paragraph
    parts = []
    codes = EXIT_CODES.get(path)
    if codes:
        parts.append("\b\nExit codes:\n" + "\n".join(f"  {c}" for c in codes))
    parts.append("\b\nExamples:\n" + "\n".join(f"  $ {e}" for e in examples))
    return "\n\n".join(parts)


def apply(cmd: click.Command, path: tuple[str, ...]) -> None:
    """Set the epilog of ``cmd`` and every command below it (an existing one is kept)."""
    text = epilog(" ".join(path))
    if text and not cmd.epilog:
        cmd.epilog = text
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            apply(sub, (*path, name))
