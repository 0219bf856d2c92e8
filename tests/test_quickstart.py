"""The README's main job: `impromptu-ops quickstart` runs the whole lifecycle and passes.

It runs as a new user would run it (a child process, from a fresh folder) with a real anvil
for the earnings step, and small proof-of-work parameters so that it takes seconds. Then
the keys it created are read back from its encrypted store and searched for in everything
it printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_chain import anvil_binary

STEPS = (
    "Register an agent", "The keys are in the store", "Heartbeat", "Health, as Nagios",
    "Rotate the platform key", "Rotate the OpenRouter key", "Approve exactly that digest",
    "Approval is refused", "Reconcile the ledger", "never saw is found and named",
    "Run the agent under secrets exec", "Rotation status", "The drop-in for the original",
)


def test_quickstart_runs_the_whole_lifecycle(tmp_path: Path) -> None:
    env = {**os.environ, "IMPROMPTU_TEST_ANVIL": str(anvil_binary())}
    proc = subprocess.run(
        [sys.executable, "-m", "impromptu_ops.cli", "quickstart", "--workdir",
         str(tmp_path / "qs"), "--pow-memory-mib", "1", "--pow-difficulty", "1"],
        capture_output=True, text=True, env=env, timeout=600, check=False, cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    summary = output[output.index("\nSummary"):]
    assert "UNEXPECTED" not in summary
    for title in STEPS:
        assert re.search(re.escape(title) + r".*\s(0|1)\s+ok\b", summary), title
    assert "Next, against the real platform" in output
    # the agent's careless debug line shows the mask, and it was given only runtime keys
    assert "a careless debug line: <concealed by impromptu-ops>" in output
    assert "keys given: IMPROMPTU_API_KEY, OPENROUTER_API_KEY\n" in output
    assert "pending" in output.split("Rotation status")[1].split("▸")[0].lower()

    match = re.search(r"Everything this rehearsal wrote is in (\S+) ", output)
    assert match is not None
    root = Path(match.group(1))
    assert (root.stat().st_mode & 0o077) == 0
    settings = load_settings(env={
        "XDG_CONFIG_HOME": str(root / "config"), "XDG_DATA_HOME": str(root / "data"),
        "XDG_STATE_HOME": str(root / "state"), "IMPROMPTU_STORE_BACKEND": "local"})
    store = open_store(settings)
    names = set(store.list())
    assert {"impromptu-api-key", "openrouter-api-key", "openrouter-management-key"} <= names, names
    for name in ("impromptu-api-key", "openrouter-api-key", "openrouter-management-key"):
        meta = store.metadata(name)
        for version in range(1, meta.current_version + 1):
            value = store.read(name, version).value().reveal()
            assert value not in output, f"{name} v{version} was printed"
    # Rotation really happened: the platform and OpenRouter keys have a second version.
    assert store.metadata("impromptu-api-key").current_version >= 2
    assert store.metadata("openrouter-api-key").current_version >= 2
