"""Nagios range syntax, threshold policy and renderers: pure parts, checked exhaustively."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impromptu_ops.cli.exitcodes import health as exit_code
from impromptu_ops.errors import ConfigError
from impromptu_ops.health.model import CheckResult, Perf, Report, Status, worst
from impromptu_ops.health.render import legacy, nagios, prometheus, render, text
from impromptu_ops.policy.health import (
    ALL_METRICS,
    Thresholds,
    default_policy,
    evaluate,
    load_policy,
    parse_policy,
)
from impromptu_ops.policy.ranges import NagiosRange, RangeError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "inside_ok", "outside_alert"),
    [
        ("10", [0, 5, 10], [-1, 10.5, 11]),
        ("10:", [10, 11, 1e9], [9.99, 0, -5]),
        ("~:10", [-1e9, 0, 10], [10.01, 11]),
        ("10:20", [10, 15, 20], [9, 21]),
        ("0:", [0, 1], [-0.5]),
        ("-5:-1", [-5, -3, -1], [-6, 0]),
        ("1.5:2.5", [1.5, 2, 2.5], [1.4, 2.6]),
    ],
)
def test_guideline_examples(text: str, inside_ok: list[float], outside_alert: list[float]) -> None:
    r = NagiosRange.parse(text)
    assert not any(r.alerts(v) for v in inside_ok)
    assert all(r.alerts(v) for v in outside_alert)
    at = NagiosRange.parse("@" + text)  # the @ form inverts, ends included
    assert all(at.alerts(v) for v in inside_ok)
    assert not any(at.alerts(v) for v in outside_alert)


@pytest.mark.parametrize("bad", ["", " ", "abc", "10:5", "@", ":", "~", "1:2:3", "~:~",
                                 "10::", "1e5", "--1", "@@1", "x10", "1 0", "5:~"])
def test_invalid_ranges_are_refused(bad: str) -> None:
    with pytest.raises(RangeError):
        NagiosRange.parse(bad)


def test_nan_always_alerts() -> None:
    assert NagiosRange.parse("10").alerts(math.nan)
    assert NagiosRange.parse("@10").alerts(math.nan)


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
bounds = st.tuples(st.one_of(st.none(), finite), st.one_of(st.none(), finite)).filter(
    lambda t: (t[0] is not None or t[1] is not None)
    and (t[0] is None or t[1] is None or t[0] <= t[1]))


def _fmt(x: float) -> str:
    return repr(float(x)) if not float(x).is_integer() else str(int(x))


@given(bounds, st.booleans(), finite)
def test_parse_matches_definition_and_roundtrips(b: tuple[float | None, float | None],
                                                 inside: bool, value: float) -> None:
    start, end = b
    text = ("@" if inside else "") + ("~" if start is None else _fmt(start)) + ":" + (
        "" if end is None else _fmt(end))
    if "e" in text:  # repr of tiny/huge floats uses exponents, outside the syntax
        return
    r = NagiosRange.parse(text)
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end
    expected = (lo <= value <= hi) if inside else not (lo <= value <= hi)
    assert r.alerts(value) is expected
    assert NagiosRange.parse(str(r)) == r


@given(st.text(max_size=80))
def test_hostile_text_never_crashes(text: str) -> None:
    try:
        r = NagiosRange.parse(text)
    except RangeError as exc:
        assert "\n" not in str(exc)
    else:
        assert r.start <= r.end


@given(finite, st.sampled_from(list(ALL_METRICS)))
def test_critical_outranks_warning(value: float, metric: str) -> None:
    th = default_policy().for_metric(metric)
    status = evaluate(value, th)
    if th.critical and th.critical.alerts(value):
        assert status is Status.CRITICAL
    elif th.warning and th.warning.alerts(value):
        assert status is Status.WARNING
    else:
        assert status is Status.OK


def test_budget_defaults() -> None:
    th = default_policy().for_metric("budget")
    assert [evaluate(v, th) for v in (100, 20, 19, 5, 4)] == [
        Status.OK, Status.OK, Status.WARNING, Status.WARNING, Status.CRITICAL]
    assert evaluate(math.nan, Thresholds()) is Status.UNKNOWN


def test_shipped_policy_file_loads_and_matches_builtin_defaults() -> None:
    from impromptu_ops.policy.rotation import load_rotation_policy

    shipped = load_policy(REPO / "policies")
    rotation = load_rotation_policy(REPO / "policies")
    builtin = default_policy(rotation=rotation)
    assert dict(shipped.thresholds) == dict(builtin.thresholds)
    assert shipped.timeout("platform") == 3.0
    assert shipped.timeout("budget") == 5.0
    # Key thresholds are rotation.toml's: the [impromptu] and [openrouter] tables.
    imp, orr = rotation.for_provider("impromptu"), rotation.for_provider("openrouter")
    age = shipped.for_metric("key_age_days")
    assert age.warning is not None and age.warning.end == imp.max_age_days
    exp = shipped.for_metric("key_expiry_days")
    assert exp.warning is not None and exp.warning.start == imp.warn_before_expiry_days
    assert exp.critical is not None and exp.critical.start == imp.critical_before_expiry_days
    oage = shipped.for_metric("openrouter_key_age_days")
    assert oage.warning is not None and oage.warning.end == orr.max_age_days


def test_rotation_file_drives_key_thresholds(tmp_path: Path) -> None:
    (tmp_path / "rotation.toml").write_text(
        "[default]\nmax_age_days = 10\n[impromptu]\nwarn_before_expiry_days = 30\n")
    p = load_policy(tmp_path)
    assert evaluate(11, p.for_metric("key_age_days")) is Status.WARNING
    assert evaluate(9, p.for_metric("key_age_days")) is Status.OK
    assert evaluate(20, p.for_metric("key_expiry_days")) is Status.WARNING
    assert evaluate(2, p.for_metric("key_expiry_days")) is Status.CRITICAL
    (tmp_path / "health.toml").write_text("[key_age_days]\nwarning = '~:5'\n")
    with pytest.raises(ConfigError, match=r"rotation\.toml"):
        load_policy(tmp_path)


@pytest.mark.parametrize("doc", [
    {"budgte": {"warning": "1:"}},
    {"budget": {"warn": "1:"}},
    {"budget": {"warning": "x"}},
    {"budget": {"warning": 5}},
    {"timeouts": {"platform": -1}},
    {"timeouts": {"platform": True}},
    {"budget": "1:"},
])
def test_policy_typos_are_errors(doc: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_policy(doc, "test.toml")


def test_timeout_cap() -> None:
    p = parse_policy({"timeouts": {"default": 5, "platform": 3, "store": 10}}, "t").capped(4)
    assert (p.timeout("platform"), p.timeout("store"), p.timeout("other")) == (3, 4, 4)


def test_bad_policy_file_is_config_error(tmp_path: Path) -> None:
    (tmp_path / "health.toml").write_text("[budget\n")
    with pytest.raises(ConfigError):
        load_policy(tmp_path)
    assert load_policy(tmp_path / "absent").source == "built-in defaults"


def test_flag_overrides() -> None:
    p = default_policy().with_overrides(["budget=50:"], ["budget="])
    assert evaluate(40, p.for_metric("budget")) is Status.WARNING
    assert evaluate(1, p.for_metric("budget")) is Status.WARNING  # critical disabled
    for bad in (["budget"], ["nope=1"], ["budget=1:0"]):
        with pytest.raises(ConfigError):
            default_policy().with_overrides(bad)


# --- model and renderers -------------------------------------------------------------------

statuses = st.sampled_from(list(Status))


def test_worst_order() -> None:
    assert worst([]) is Status.OK
    assert worst([Status.OK, Status.WARNING]) is Status.WARNING
    assert worst([Status.WARNING, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.CRITICAL, Status.OK]) is Status.CRITICAL


def _report(sts: list[Status], summary: str = "s") -> Report:
    return Report(tuple(
        CheckResult(f"c{i}", s, summary, (Perf(f"m{i}", float(i), "s",
                                                NagiosRange.parse("10"), None, 0, None),))
        for i, s in enumerate(sts)))


@given(st.lists(statuses, min_size=1, max_size=8), st.text(max_size=40))
def test_nagios_is_one_line_with_the_worst_status(sts: list[Status], summary: str) -> None:
    rep = _report(sts, summary)
    line = nagios(rep)
    assert line.isprintable()  # no newline, no escape sequence, whatever the summary
    assert line.startswith(f"IMPROMPTU {worst(sts).name} - ")
    assert line.count("|") == 1  # only the perfdata separator
    assert exit_code(rep.status, "nagios") == int(worst(sts))
    assert exit_code(rep.status, "legacy") == {0: 0, 1: 2, 2: 1, 3: 1}[int(worst(sts))]


def test_perfdata_syntax() -> None:
    rep = Report((CheckResult("budget", Status.WARNING, "low", (
        Perf("budget", 12, "", NagiosRange.parse("20:"), NagiosRange.parse("5:"), 0, 100),
        Perf("it's", math.nan),
    )),))
    assert nagios(rep) == ("IMPROMPTU WARNING - budget: low | 'budget'=12;20:;5:;0;100 'its'=U")


def test_json_and_prometheus_and_text_and_legacy() -> None:
    rep = _report([Status.OK, Status.CRITICAL])
    doc = json.loads(render(rep, "json"))
    assert doc["status"] == "CRITICAL" and doc["code"] == 2 and len(doc["checks"]) == 2
    prom = prometheus(rep)
    assert "impromptu_health_status 2\n" in prom
    assert 'impromptu_health_check_status{check="c1"} 2' in prom
    assert 'impromptu_health_value{check="c0",metric="m0"} 0' in prom
    for line in prom.splitlines():
        assert line.startswith("#") or line.startswith("impromptu_health_")
    assert "overall: CRITICAL" in text(rep)
    assert legacy(rep).splitlines() == ["[OK] c0: s", "[FAIL] c1: s", "Status: unhealthy"]
