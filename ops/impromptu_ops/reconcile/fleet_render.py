"""Private: the fleet reconciliation's outputs: one report file per agent, and the fleet summary.

This module owns the file names of the per-agent reports (``<agent>.<ext>`` in a folder
the operator names, written atomically by :func:`.render.write_report`) and the summary's
two shapes (a table for people, JSON for programs). It does no chain or platform I/O.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from impromptu_ops.errors import InputError
from impromptu_ops.reconcile import render
from impromptu_ops.reconcile.fleet import FleetResult, Outcome

EXTENSIONS = {"table": "txt", "json": "json", "csv": "csv", "koinly": "koinly.csv",
              "html": "html"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def report_path(folder: Path, agent: str, fmt: str) -> Path:
    """Where ``agent``'s report goes; refuses a name that could leave the folder.

    Raises:
        InputError: the agent name is not a plain file name.
    """
    if not _SAFE_NAME.match(agent) or ".." in agent:
        raise InputError(f"agent name {agent[:40]!r} cannot name a report file")
    return folder / f"{agent}.{EXTENSIONS[fmt]}"


def check_folder(folder: Path) -> None:
    """Refuse, before any work, a report folder that does not exist (no typo folders).

    Raises:
        InputError: not an existing folder.
    """
    if not folder.is_dir():
        raise InputError(f"--output-dir {folder} is not an existing folder")


def write_reports(result: FleetResult, folder: Path, fmt: str) -> dict[str, Path]:
    """Write each checked agent's report to ``folder``; returns ``{agent: path}``.

    Raises:
        InputError: the folder is missing or a file cannot be written.
    """
    check_folder(folder)
    written: dict[str, Path] = {}
    for o in result.outcomes:
        if o.report is not None:
            path = report_path(folder, o.name, fmt)
            render.write_report(o.report, fmt, path)
            written[o.name] = path
    return written


def _row(o: Outcome) -> dict[str, Any]:
    row: dict[str, Any] = {"agent": o.name, "wallet": o.wallet, "status": o.status}
    if o.report is not None:
        row["discrepancies"] = len(o.report.discrepancies)
        row["kinds"] = sorted(k.value for k in o.report.kinds())
    else:
        row["error"] = o.error
    return row


def summary_dict(result: FleetResult, written: dict[str, Path] | None = None
                 ) -> dict[str, Any]:
    rows = [_row(o) for o in result.outcomes]
    for row in rows:
        if written and row["agent"] in written:
            row["report"] = str(written[row["agent"]])
    return {"agents": rows,
            "discrepancies": result.named("discrepancies"),
            "unknown": result.named("unknown"),
            "scan": {"blocks": result.scanned_blocks, "getLogsCalls": result.getlogs_calls,
                     "splits": result.splits}}


def render_summary(result: FleetResult, fmt: str,
                   written: dict[str, Path] | None = None) -> str:
    """The summary as ``table`` or ``json``."""
    data = summary_dict(result, written)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    lines = [f"{'AGENT':<20} {'STATUS':<14} {'FINDINGS':>8}  WALLET / DETAIL"]
    for row in data["agents"]:
        detail = row["wallet"] or "-"
        if row.get("kinds"):
            detail += "  " + ", ".join(row["kinds"])
        if "error" in row:
            detail += "  " + row["error"]
        found = str(row.get("discrepancies", "-"))
        lines.append(f"{row['agent'][:20]:<20} {row['status']:<14} {found:>8}  {detail}")
    scan = data["scan"]
    lines.append(f"one chain scan for {len(data['agents'])} agents: {scan['blocks']} blocks, "
                 f"{scan['getLogsCalls']} eth_getLogs calls, {scan['splits']} splits")
    if data["discrepancies"]:
        lines.append("discrepancies: " + ", ".join(data["discrepancies"]))
    if data["unknown"]:
        lines.append("could not check: " + ", ".join(data["unknown"]))
    if not data["discrepancies"] and not data["unknown"]:
        lines.append("every agent reconciled")
    return "\n".join(lines) + "\n"
