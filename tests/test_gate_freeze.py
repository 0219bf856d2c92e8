"""Freeze attacks and the once-per-candidate scan.

A release dated in the future (or with an absurd version) installs once and then makes
every genuine release look "older", so the gate refuses it: ``publishedAt`` later than now
plus ``gate.max_clock_skew`` is refused at fetch (exit 65, logged), and a version jump
beyond the policy's ``version-jump`` bound is a deny finding. The scan (diff and findings)
runs once, at fetch; approve and apply reuse the verdict stored with the candidate, bound
to the exact inputs and to the digest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.errors import IntegrityError, PolicyDenied
from impromptu_ops.gate import gate as gate_module
from impromptu_ops.gate import scan
from impromptu_ops.gate.gate import UpdateGate
from impromptu_ops.settings import load_settings
from tests.fixtures_gate import BENIGN_V1, BENIGN_V2, GateEnv

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def gate_at(env: GateEnv, now: datetime, **more: Any) -> UpdateGate:
    return UpdateGate(load_settings({**env.settings_overrides(), **more}), clock=lambda: now)


@pytest.mark.parametrize("published", ["9999-12-31T23:59:59Z", "2026-06-01T12:10:00Z"])
def test_release_dated_in_the_future_is_refused(gate_env: GateEnv, published: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    gate_env.install("1.0.0", BENIGN_V1)
    before = gate_env.snapshot()
    pkg = gate_env.pkg("1.1.0", BENIGN_V2, published_at=published)
    gate = gate_at(gate_env, NOW)
    with pytest.raises(IntegrityError, match="in the future"):
        gate.fetch(str(pkg))
    assert gate_env.snapshot() == before
    assert list(gate.audit.entries())[-1]["event"] == "fetch-refused"
    if published.startswith("9999"):  # the real clock: the CLI's answer
        capsys.readouterr()
        assert run(["update", "fetch", str(pkg)]) == 65
        err = capsys.readouterr().err
        assert "in the future" in err and len(err.strip().splitlines()) == 1


def test_small_clock_skew_is_tolerated_and_configurable(gate_env: GateEnv) -> None:
    gate_env.install("1.0.0", BENIGN_V1)
    pkg = gate_env.pkg("1.1.0", BENIGN_V2, published_at="2026-06-01T12:04:00Z")
    assert gate_at(gate_env, NOW).fetch(str(pkg)).summary.to_version == "1.1.0"
    with pytest.raises(IntegrityError, match="allowed clock skew 60 s"):
        gate_at(gate_env, NOW, **{"gate.max_clock_skew": 60}).fetch(str(pkg))
    # an hour later the same release is fine
    later = NOW + timedelta(hours=1)
    assert gate_at(gate_env, later, **{"gate.max_clock_skew": 60}).fetch(str(pkg))


@pytest.mark.parametrize("version", ["999999999.0.0", "1.99999.0", "4.0.0"])
def test_version_jump_beyond_the_bound_is_a_deny(gate_env: GateEnv, version: str) -> None:
    gate_env.install("1.0.0", BENIGN_V1)
    before = gate_env.snapshot()
    gate = gate_env.gate()
    rev = gate.fetch(str(gate_env.pkg(version, BENIGN_V2)))
    assert "version-jump" in rev.deny_rules
    with pytest.raises(PolicyDenied, match="version-jump"):
        gate.approve(digest=rev.digest)
    assert gate_env.snapshot() == before


def test_ordinary_version_steps_pass(gate_env: GateEnv) -> None:
    gate_env.install("1.0.0", BENIGN_V1)
    for version in ("1.1.0", "2.0.0"):
        rev = gate_env.gate().fetch(str(gate_env.pkg(version, BENIGN_V2)))
        assert "version-jump" not in rev.deny_rules


def test_first_install_of_an_absurd_version_is_a_deny(gate_env: GateEnv) -> None:
    rev = gate_env.gate().fetch(str(gate_env.pkg("999999999.0.0", BENIGN_V1)))
    assert "version-jump" in rev.deny_rules


def test_scan_runs_once_per_candidate(gate_env: GateEnv,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gate_env.install("1.0.0", BENIGN_V1)
    calls: list[int] = []
    real = scan.evaluate

    def counting(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(gate_module, "evaluate", counting)
    gate = gate_env.gate()
    rev = gate.fetch(str(gate_env.pkg("1.1.0", BENIGN_V2)))
    assert gate.review().digest == rev.digest
    gate.approve(digest=rev.digest)
    gate.apply()
    assert len(calls) == 1


def test_stored_verdict_is_bound_to_its_inputs(gate_env: GateEnv) -> None:
    """Relaxing the policy after fetch makes the stored verdict stale: the scan runs again
    and the digest changes, so the old approval cannot be applied."""
    gate_env.install("1.0.0", BENIGN_V1)
    gate = gate_env.gate()
    rev = gate.fetch(str(gate_env.pkg("1.1.0", BENIGN_V2)))
    gate.approve(digest=rev.digest)
    gate_env.policy_file.write_text(gate_env.policy_file.read_text() + "\n# relaxed\n")
    assert gate.review().digest != rev.digest
    with pytest.raises(PolicyDenied, match="digest mismatch"):
        gate.apply()
