"""Shared test fixtures.

Every test runs with HOME and the XDG folders in a temporary directory and with no
IMPROMPTU_* / VAULT_* variables from the developer's shell, so no test can read or write
a real config, store or key. Area-specific fixtures live in ``tests/fixtures_*.py`` plugins
listed below (one per area, each owned by that area's tests).

The fast tier (``scripts/test --fast``, i.e. ``-m "not server"``): a test is marked
``server`` automatically when it uses a server fixture (:data:`SERVER_FIXTURES`, directly or
through another fixture), or when it starts servers or subprocesses itself: its module is
in :data:`SERVER_MODULES` (or the test in :data:`SERVER_TESTS`), or the module says
``pytestmark = pytest.mark.server``. With ``IMPROMPTU_TEST_FAST=1`` (set by
``scripts/test --fast``) a test NOT marked ``server`` that starts a subprocess fails at
once and says to mark its module: the tier cannot silently grow slow. Hypothesis runs its
``fast`` profile there (fewer examples; see below).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# Fixtures that start a real server (sandbox, OpenBao, anvil, a Raft cluster) or need one.
SERVER_FIXTURES = frozenset({
    "sandbox", "sandbox_factory", "agent", "anvil", "chain", "ledger_sandbox", "bao_server",
    "fresh_bao_server", "uninitialised_bao", "vault_token_for", "raft_cluster",
})
FAST_ENV = "IMPROMPTU_TEST_FAST"
# Modules (or single tests) that start servers or subprocesses themselves, found by the
# fast-tier guard below (a sandbox started in-process, as test_sandbox_hostile does, is
# listed by hand). A new subprocess fails the fast tier with the fix in its message.
SERVER_MODULES = frozenset({
    "test_chain_token", "test_foundation_cli", "test_health_dropin", "test_heartbeat_dropin",
    "test_heartbeat_sandbox", "test_install_cli", "test_install_dropin", "test_install_run_as",
    "test_kubernetes_bundle", "test_quickstart", "test_rotation_kill_bench",
    "test_sandbox_cli", "test_sandbox_hostile", "test_sandbox_serve", "test_schedule_jobs",
    "test_secrets_exec", "test_startup_imports", "test_store_contract", "test_store_vault",
})
SERVER_TESTS: dict[str, frozenset[str]] = {
    "test_api": frozenset({"test_importing_the_api_imports_no_use_case"}),
    "test_fleet_shards": frozenset({
        "test_the_sharded_bundle_is_an_indexed_job_and_validates",
        "test_a_sharded_fleet_without_vault_is_refused",
    }),
    "test_layers": frozenset({
        "test_the_import_layers_hold",
        "test_an_import_that_runs_back_up_breaks_the_contract",
    }),
    "test_foundation_files": frozenset({
        "test_lock_is_exclusive_across_processes",
    }),
    "test_help_examples": frozenset({
        "test_the_errors_users_hit_most_say_what_to_do",
    }),
    "test_hostile_fuzz": frozenset({
        "test_hostile_input_in_a_real_process",
    }),
    "test_hostile_inputs": frozenset({
        "test_a_fifo_config_is_refused_without_blocking",
        "test_a_store_that_is_not_a_file_is_refused",
        "test_screen_refuses_a_fifo_without_blocking",
        "test_secrets_put_on_a_full_disk_is_74_and_keeps_the_old_store",
        "test_secrets_put_refuses_bad_stdin_and_stores_nothing",
        "test_the_cli_says_which_flag",
    }),
    "test_hostile_leaks": frozenset({
        "test_a_key_cut_by_someone_else_is_still_masked",
        "test_a_platform_error_message_is_redacted_before_it_is_cut",
        "test_encoded_keys_are_masked",
    }),
    "test_install_schedule": frozenset({
        "test_systemd_analyze_catches_what_we_get_wrong",
        "test_systemd_units_are_hardened_and_verified",
        "test_the_metrics_folder_stays_writable_under_protect_system",
    }),
    "test_job_pings": frozenset({
        "test_a_failed_run_pings_fail_with_its_output",
        "test_every_job_command_can_ping",
    }),
    "test_platform_pure": frozenset({
        "test_a_member_sent_under_a_declared_alias_is_read",
    }),
    "test_pow_cli": frozenset({
        "test_a_signal_stops_every_worker_at_once",
        "test_progress_bar_on_a_terminal",
    }),
    "test_rotation_hook": frozenset({
        "test_run_hook_reports_each_failure_kind",
    }),
    "test_secrets_cli": frozenset({
        "test_exec_files_mode_cleans_up_and_propagates_exit_code",
        "test_exec_files_mode_cleans_up_on_signal",
        "test_exec_files_mode_cleans_up_when_the_command_cannot_start",
        "test_exec_puts_secrets_in_the_child_environment_only",
        "test_local_backend_never_imports_hvac",
        "test_put_on_a_terminal_asks_twice_and_never_echoes",
    }),
    "test_store_local": frozenset({
        "test_kill_9_mid_write_leaves_the_old_or_the_new_store",
    }),
}


# The fast tier is an edit loop: Hypothesis tries 25 examples per property there instead of
# its default 100 (a test that sets max_examples itself keeps its own); the full suite,
# which CI runs, keeps the default.
hypothesis_settings.register_profile("fast", max_examples=25, deadline=None)
if os.environ.get(FAST_ENV) == "1":
    hypothesis_settings.load_profile("fast")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: needs a server or a subprocess (not in the "
                            "fast tier; marked automatically by server fixture)")
    config.stash[_FAST] = os.environ.get(FAST_ENV) == "1"


_FAST = pytest.StashKey[bool]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        name = getattr(item, "originalname", item.name)
        if (SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
                or module in SERVER_MODULES or name in SERVER_TESTS.get(module, ())):
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def _fast_tier_guard(request: pytest.FixtureRequest,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    """In the fast tier, an unmarked test that starts a process is a mislabelled test."""
    if not request.config.stash.get(_FAST, False):
        return
    if request.node.get_closest_marker("server") is not None:
        return
    where = request.node.nodeid

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError(f"{where} starts a subprocess but is not marked server: add "
                             "it to SERVER_TESTS in tests/conftest.py (or "
                             "`pytestmark = pytest.mark.server` to its module)")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


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
