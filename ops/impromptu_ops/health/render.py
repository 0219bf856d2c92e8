"""Private: The four output formats of ``impromptu-ops health``, plus the legacy script format.

- ``text``: an aligned table, one row per check, then the overall verdict.
- ``nagios``: ONE line, ``IMPROMPTU <STATUS> - <summary> | <perfdata>`` (Monitoring Plugins
  guidelines: status line first, perfdata after the pipe, single-quoted labels).
- ``json``: one object (``status``, ``code``, ``checks[]``) on one line.
- ``prometheus``: text exposition format, ready for the node_exporter textfile collector.
- ``legacy``: one ``[OK]``/``[WARN]``/``[FAIL]`` line per check with the original
  impromptu-health.sh's exit codes (its full output, sections and texts, is the drop-in's:
  :mod:`impromptu_ops.legacy.health`).

Renderers are pure: a :class:`~impromptu_ops.health.model.Report` in, a string out. Exit
codes are decided here too (:func:`exit_code`) so that the CLI holds no logic.
"""

from __future__ import annotations

import json
import math
import re

from impromptu_ops.health.model import CheckResult, Perf, Report, Status

FORMATS = ("text", "nagios", "json", "prometheus", "legacy")
SERVICE = "IMPROMPTU"
_LEGACY_TAG = {Status.OK: "[OK]", Status.WARNING: "[WARN]", Status.CRITICAL: "[FAIL]",
               Status.UNKNOWN: "[FAIL]"}
# The original script: 0 healthy, 2 degraded, 1 unhealthy (it could not tell = unhealthy).
_LEGACY_EXIT = {Status.OK: 0, Status.WARNING: 2, Status.CRITICAL: 1, Status.UNKNOWN: 1}


def exit_code(report: Report, fmt: str) -> int:
    """Nagios codes (0/1/2/3) for every format except ``legacy`` (0 / 2 / 1)."""
    if fmt == "legacy":
        return _LEGACY_EXIT[report.status]
    return int(report.status)


def _one_line(text: str) -> str:
    # A perfdata pipe or a newline inside a summary would corrupt the plugin output, and
    # summaries can quote the platform's answers: no control characters reach a terminal.
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return re.sub(r"\s+", " ", text.replace("|", "/")).strip()


def _num(value: float) -> str:
    x = float(value)
    if math.isnan(x) or math.isinf(x):
        return "U"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.6g}"


def _perf(p: Perf) -> str:
    label = p.label.replace("'", "").replace("=", "_")
    parts = [
        f"{_num(p.value)}{p.uom if not math.isnan(p.value) else ''}",
        str(p.warning) if p.warning else "",
        str(p.critical) if p.critical else "",
        _num(p.minimum) if p.minimum is not None else "",
        _num(p.maximum) if p.maximum is not None else "",
    ]
    return f"'{label}'=" + ";".join(parts).rstrip(";")


def nagios(report: Report) -> str:
    """One status line with perfdata."""
    status = report.status
    problems = report.problems()
    if problems:
        head = problems[0]
        summary = f"{head.name}: {head.summary}"
        if len(problems) > 1:
            others = ", ".join(f"{r.name} {r.status.name}" for r in problems[1:])
            summary += f"; also {others}"
    else:
        summary = f"{len(report.results)} checks OK"
    perf = " ".join(_perf(p) for r in report.results for p in r.perf)
    line = f"{SERVICE} {status.name} - {_one_line(summary)}"
    return f"{line} | {perf}" if perf else line


def text(report: Report) -> str:
    """A table for a person, then the overall verdict."""
    rows = [(r.name, r.status.name, f"{r.duration * 1000:.0f} ms", _one_line(r.summary))
            for r in report.results]
    header = ("check", "status", "time", "detail")
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, (*("-" * w for w in widths), "------"), *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True))
                     + "  " + row[3])
    lines.append("")
    lines.append(f"overall: {report.status.name} ({report.duration * 1000:.0f} ms)")
    return "\n".join(line.rstrip() for line in lines)


def _check_json(r: CheckResult) -> dict[str, object]:
    return {
        "name": r.name,
        "status": r.status.name,
        "code": int(r.status),
        "summary": r.summary,
        "durationSeconds": round(r.duration, 4),
        "perfdata": [
            {"label": p.label, "value": None if math.isnan(p.value) else p.value, "uom": p.uom,
             "warning": str(p.warning) if p.warning else None,
             "critical": str(p.critical) if p.critical else None,
             "min": p.minimum, "max": p.maximum}
            for p in r.perf
        ],
        "details": r.details,
    }


def as_json(report: Report) -> str:
    return json.dumps(
        {"status": report.status.name, "code": int(report.status),
         "durationSeconds": round(report.duration, 4),
         "checks": [_check_json(r) for r in report.results]},
        sort_keys=True, default=str, ensure_ascii=False,
    )


def _metric_name(label: str) -> str:
    name = re.sub(r"[^a-zA-Z0-9_]", "_", label)
    return name if re.match(r"^[a-zA-Z_]", name) else f"_{name}"


def prometheus(report: Report) -> str:
    """Text exposition format (through :mod:`impromptu_ops.metrics`, the one writer)."""
    from impromptu_ops.metrics import Sample
    from impromptu_ops.metrics import render as render_samples

    codes = "(0 ok, 1 warning, 2 critical, 3 unknown)"
    samples = [Sample("impromptu_health_status", int(report.status), f"Overall health {codes}.")]
    samples += [Sample("impromptu_health_check_status", int(r.status), f"Status per check {codes}.",
                       labels={"check": r.name}) for r in report.results]
    samples += [Sample("impromptu_health_check_duration_seconds", round(r.duration, 6),
                       "Time each check took.", labels={"check": r.name})
                for r in report.results]
    samples += [Sample("impromptu_health_value", p.value,
                       "Measured values (perfdata), by check and metric.",
                       labels={"check": r.name, "metric": _metric_name(p.label)})
                for r in report.results for p in r.perf if not math.isnan(p.value)]
    return render_samples(samples)


def legacy(report: Report) -> str:
    """The original script's lines: ``[OK] platform: reachable`` and a verdict line."""
    lines = [f"{_LEGACY_TAG[r.status]} {r.name}: {_one_line(r.summary)}" for r in report.results]
    verdict = {0: "healthy", 2: "degraded", 1: "unhealthy"}[_LEGACY_EXIT[report.status]]
    lines.append(f"Status: {verdict}")
    return "\n".join(lines)


def render(report: Report, fmt: str) -> str:
    """Dispatch on ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "nagios":
        return nagios(report)
    if fmt == "json":
        return as_json(report)
    if fmt == "prometheus":
        return prometheus(report).rstrip("\n")
    if fmt == "legacy":
        return legacy(report)
    return text(report)
