"""A 5-iteration smoke of ``bench/rotation_kill.py`` (the full loop is 50+ iterations).

It runs the real loop: a ``sandbox serve`` process, ``rotate`` runs SIGKILLed at random
instants under latency on every provider call, then ``resume`` or ``rollback``; after each
iteration the stored key must work and exactly one provider key may be live.
"""

from __future__ import annotations

import pytest
from bench.rotation_kill import main


def test_kill_loop_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--iterations", "5", "--seed", "5", "--max-delay", "0.1"])
    out = capsys.readouterr().out
    assert "iterations 5" in out and "kills per phase:" in out, out
    assert "failures 0" in out, out
    assert code == 0
