"""The quickstart's earnings: the next step works as printed, the statement is left in the
workspace, and a real browser renders it.

The rehearsal's register and earnings stages run in-process against one sandbox and anvil;
then the next-steps command is taken from the text the quickstart prints, with anvil's URL
in place of Base's public RPC (the only substitution), and run as a child process in the
rehearsal's workspace.

The browser test uses Chromium from Debian's packages (``scripts/test`` installs it with
apt-get when missing and it can): ``--headless --screenshot`` for a PNG and ``--dump-dom``
for the page's text as the browser laid it out.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops import quickstart
from impromptu_ops.quickstart import Rehearsal, Step, Workspace, run_step
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_chain import Anvil


@pytest.fixture(scope="module")
def rehearsed(ledger_sandbox: SandboxServer, anvil: Anvil,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    lines: list[str] = []
    ws = Workspace.create(tmp_path_factory.mktemp("qs"))
    r = Rehearsal(ws, ledger_sandbox, lines.append, anvil.url)
    r.register()
    r.earnings()
    yield {"ws": ws, "rehearsal": r, "lines": lines}


def test_the_rehearsal_leaves_its_statement_in_the_workspace(rehearsed: dict[str, Any]
                                                             ) -> None:
    r: Rehearsal = rehearsed["rehearsal"]
    assert all(x.ok for x in r.results), "\n".join(rehearsed["lines"])
    root: Path = rehearsed["ws"].root
    page = (root / quickstart.REPORT_HTML).read_text()
    rows = (root / quickstart.REPORT_CSV).read_text().splitlines()
    assert "quickstart-agent" in page and "tIMPRMPT" in page
    assert rows[0].startswith("date_utc,block,tx_hash") and len(rows) > 3
    # the wallet came from the config file register wrote, not from the environment
    assert "IMPROMPTU_CHAIN_WALLET_ADDRESS" not in r.env
    config = (root / "config" / "impromptu-ops" / "config.toml").read_text()
    assert str(r.agent["walletAddress"]).lower() in config


def test_the_next_step_works_as_printed(rehearsed: dict[str, Any], anvil: Anvil,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    r: Rehearsal = rehearsed["rehearsal"]
    monkeypatch.chdir(rehearsed["ws"].root)  # its --output is relative: the workspace
    today = datetime.now(UTC).date()
    text = quickstart.next_steps(rehearsed["ws"].root, today)
    commands = [line.strip() for line in text.splitlines()
                if "earnings reconcile" in line]
    assert commands and all(f"--since {today.isoformat()}" in c for c in commands)
    env = {k: v for k, v in r.env.items() if k != "IMPROMPTU_CHAIN_RPC"}
    for printed in commands:
        words = shlex.split(printed.replace(quickstart.BASE_RPC, anvil.url))
        assigned = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
        args = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
        assert args[0] == "impromptu-ops" and assigned == {"IMPROMPTU_CHAIN_RPC": anvil.url}
        result = run_step(Step("next step", tuple(args[1:]), (0, 1)), {**env, **assigned},
                          lambda _: None)
        # 1: the rehearsal's ledger claims a payout the chain never saw (it says so)
        assert result.code == 1, printed
    assert (rehearsed["ws"].root / "earnings.html").read_text().startswith("<!doctype html>")
    assert "no agent wallet address configured" not in "\n".join(rehearsed["lines"])


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed and could not be installed here (scripts/test "
                "installs Debian's chromium with apt-get when run as root)")


def test_a_real_browser_renders_the_statement(rehearsed: dict[str, Any],
                                              tmp_path: Path) -> None:
    browser = _chromium()
    report = rehearsed["ws"].root / quickstart.REPORT_HTML
    shot = tmp_path / "earnings-report.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'p'}"]
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2600",
                    report.as_uri()], capture_output=True, timeout=120, check=False)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    r: Rehearsal = rehearsed["rehearsal"]
    assert "Earnings statement: quickstart-agent" in text
    assert str(r.agent["agentId"]) in text and "tIMPRMPT" in text
    assert "Base (chain id 8453)" in text
    today = datetime.now(UTC).date().isoformat()
    assert re.search(re.escape(today) + r" \d\d:\d\d:\d\d UTC", text)  # dated, no µs
    assert not re.search(r"\d\d:\d\d:\d\d\.\d{6}", text)
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")  # a folder to keep the PNG in
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)
