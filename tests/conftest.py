"""Shared test fixtures.

Every test runs with HOME and the XDG folders in a temporary directory and with no
IMPROMPTU_* / VAULT_* variables from the developer's shell, so no test can read or write
a real config, store or key. Area-specific fixtures live in ``tests/fixtures_*.py`` plugins
listed below (one per area, each owned by that area's tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# No per-example deadline: on a 2-core CI machine running servers beside the tests, one slow
# example is load, not a bug (speed targets live in bench/, not in tests). Tests that need a
# bound on time use their own timeouts.
hypothesis_settings.register_profile("impromptu", deadline=None)
hypothesis_settings.load_profile("impromptu")

pytest_plugins: list[str] = [
    "tests.fixtures_chain",
    "tests.fixtures_gate",
    "tests.fixtures_jobs",
    "tests.fixtures_raft",
    "tests.fixtures_sandbox",
    "tests.fixtures_vault",
]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith(("IMPROMPTU_", "VAULT_", "OPENROUTER_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local/state"))
    yield home
