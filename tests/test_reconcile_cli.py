"""``impromptu-ops earnings reconcile`` end to end: exit codes 0/1/3, formats, files, secrets."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_chain import Anvil, free_port
from tests.ptys import drain


@pytest.fixture
def configured(ledger_sandbox: SandboxServer, anvil: Anvil,
               monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh agent whose key is in the (local) store and whose chain settings are in env."""
    made = ledger_sandbox.control("POST", "agents", {})
    token = ledger_sandbox.control("POST", "ledger/token", {})
    for name, value in {"IMPROMPTU_API_URL": ledger_sandbox.base_url,
                        "IMPROMPTU_CHAIN_RPC": anvil.url,
                        "IMPROMPTU_CHAIN_WALLET_ADDRESS": made["walletAddress"],
                        "IMPROMPTU_CHAIN_TOKEN_ADDRESS": token["address"],
                        "IMPROMPTU_CHAIN_PAYOUT_SENDERS": token["treasury"]}.items():
        monkeypatch.setenv(name, value)
    open_store(load_settings()).write("impromptu-api-key", {"value": Secret(made["apiKey"])},
                                      cas=None)
    return {**made, "token": token, "sandbox": ledger_sandbox}


def scenario(configured: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = configured["sandbox"].control(
        "POST", "ledger/scenario", {"agentId": configured["agentId"], "name": name})
    return result


def test_clean_exits_0_with_a_table(configured: dict[str, Any],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    scenario(configured, "clean")
    assert run(["earnings", "reconcile"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("RECONCILED")
    assert "= pending (vested, not yet paid)" in captured.out
    assert configured["apiKey"] not in captured.out + captured.err


def test_discrepancies_exit_1_and_json_keeps_full_tx_hashes(
        configured: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    scenario(configured, "amount_mismatch")
    assert run(["earnings", "reconcile", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (d,) = doc["discrepancies"]
    assert d["kind"] == "amount_mismatch"
    assert (d["expected"], d["actual"]) == (str(10**18 + 1), str(10**18))
    assert len(d["txHash"]) == 66 and "*" not in d["txHash"]
    assert doc["reconciled"] is False


def test_files_csv_and_html(configured: dict[str, Any], tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    out = scenario(configured, "unrecorded_transfer")
    csv_file, html_file = tmp_path / "r.csv", tmp_path / "r.html"
    assert run(["earnings", "reconcile", "--format", "csv", "--output", str(csv_file)]) == 1
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    unrecorded = [r for r in rows if "(unrecorded_transfer)" in r["status"]]
    assert [r["type"] for r in unrecorded] == ["transfer in"]
    matched = [r for r in rows if r["type"] == "payout" and r["status"].startswith("received")]
    assert matched[0]["tx_hash"] == out["cleanPayout"]["txHash"]
    assert run(["earnings", "reconcile", "--format", "html", "--output", str(html_file)]) == 1
    page = html_file.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and "<polyline" in page
    assert "<script" not in page and "src=" not in page
    # links only to the chain's explorer (anvil runs as Base here: basescan.org)
    assert re.findall(r'href="([^"/]*//[^/"]*)', page) and all(
        h == "https://basescan.org" for h in re.findall(r'href="([^"/]*//[^/"]*)', page))
    assert "Transfer received but not in the ledger" in page and "unrecorded_transfer" in page
    assert "report written to" in capsys.readouterr().err


def test_could_not_check_exits_3(configured: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("IMPROMPTU_CHAIN_RPC", f"http://127.0.0.1:{free_port()}")
    assert run(["earnings", "reconcile"]) == 3
    err = capsys.readouterr().err
    assert "UNKNOWN" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("IMPROMPTU_CHAIN_CHAIN_ID", "1")
    monkeypatch.delenv("IMPROMPTU_CHAIN_RPC")
    monkeypatch.setenv("IMPROMPTU_CHAIN_RPC", str(configured["sandbox"].root_url))
    assert run(["earnings", "reconcile"]) == 3
    assert run(["earnings", "reconcile", "--since", "yesterday"]) == 3
    assert run(["earnings", "reconcile", "--from-block", "1", "--since", "2026-01-01"]) == 3
    assert run(["earnings", "reconcile", "--bogus"]) == 3


def _reconcile_process(*, tty: bool, extra: tuple[str, ...] = ()) -> tuple[int, str, str]:
    """Run the command as a new operator would: a separate process, stderr on a pty or not."""
    import os
    import pty
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "impromptu_ops.cli", "earnings", "reconcile", *extra]
    if not tty:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ))
        return proc.returncode, proc.stdout, proc.stderr
    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=follower,
                              env={**os.environ, "COLUMNS": "100"}) as child:
            os.close(follower)
            terminal = drain(leader)
            stdout = child.stdout.read().decode() if child.stdout is not None else ""
            code = child.wait(60)
    finally:
        os.close(leader)
    return code, stdout, terminal.decode(errors="replace")


def test_progress_bar_on_a_tty_only(configured: dict[str, Any], anvil: Anvil) -> None:
    scenario(configured, "clean")
    from impromptu_ops.chain.rpc import JsonRpcClient
    with JsonRpcClient(anvil.url) as rpc:
        rpc.request("anvil_mine", ["0x40"])  # some blocks to scan
    code, out, err = _reconcile_process(tty=True, extra=("--format", "json"))
    assert code == 0, err
    assert "scanning blocks" in err  # the bar, on the terminal (stderr)
    assert "scanning blocks" not in out and json.loads(out)["reconciled"] is True
    code, out, err = _reconcile_process(tty=False, extra=("--format", "json"))
    assert code == 0 and err == ""  # a pipe or a log file gets no bar
    assert json.loads(out)["reconciled"] is True


def test_bad_output_paths_fail_in_one_line(configured: dict[str, Any], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    scenario(configured, "clean")
    missing = tmp_path / "no" / "such" / "r.json"
    assert run(["earnings", "reconcile", "--output", str(missing)]) == 3
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()  # a typo creates no folder
    from types import SimpleNamespace

    from impromptu_ops.reconcile import render

    def refuse(path: Path, text: str, mode: int = 0o600) -> None:
        raise PermissionError(13, "Permission denied")
    # as a read-only folder would (the tests may run as root, who writes anywhere); only the
    # report writer's view of atomic is replaced, the sandbox in this process keeps its own
    monkeypatch.setattr(render, "atomic", SimpleNamespace(write_text=refuse))
    assert run(["earnings", "reconcile", "--output", str(tmp_path / "r.json")]) == 3
    err = capsys.readouterr().err
    assert "cannot write" in err and "Permission denied" in err
    assert len(err.strip().splitlines()) == 1


def test_a_bug_of_ours_is_could_not_check_not_70(configured: dict[str, Any],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from impromptu_ops.reconcile import service

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("boom")
    monkeypatch.setattr(service, "run_reconciliation", broken)
    assert run(["earnings", "reconcile"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("impromptu-ops: UNKNOWN: could not reconcile: internal error")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("name", "value", "needle"), [
    ("IMPROMPTU_CHAIN_DECIMALS", "-1", "chain.decimals"),
    ("IMPROMPTU_CHAIN_DECIMALS", "256", "chain.decimals"),
    ("IMPROMPTU_CHAIN_CONFIRMATIONS", "-5", "chain.confirmations"),
    ("IMPROMPTU_CHAIN_MAX_BLOCK_RANGE", "0", "chain.max_block_range"),
    ("IMPROMPTU_CHAIN_START_BLOCK", "-1", "chain.start_block"),
    ("IMPROMPTU_CHAIN_PAYOUT_SENDERS", "0xbad", "not an address"),
    ("IMPROMPTU_CHAIN_WALLET_ADDRESS", "", "no agent wallet"),
    ("IMPROMPTU_CHAIN_DISPLAY_DECIMALS", "31", "chain.display_decimals"),
    ("IMPROMPTU_CHAIN_EXPLORER_URL", "javascript:alert(1)", "chain.explorer_url"),
])
def test_bad_chain_settings_are_named_before_any_io(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str,
        value: str, needle: str) -> None:
    # no key in the store and no node at the RPC URL: the setting is what gets reported
    monkeypatch.setenv("IMPROMPTU_CHAIN_RPC", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("IMPROMPTU_CHAIN_WALLET_ADDRESS", "0x" + "ab" * 20)
    monkeypatch.setenv(name, value)
    assert run(["earnings", "reconcile"]) == 3
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_until_prices_and_koinly(configured: dict[str, Any], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    scenario(configured, "clean")
    today = datetime.now(UTC).date()
    prices = tmp_path / "prices.csv"
    prices.write_text(f"date,EUR\n{today.isoformat()},0.25\n")
    out_file = tmp_path / "k.csv"
    assert run(["earnings", "reconcile", "--since", "2020-01-01", "--until", today.isoformat(),
                "--format", "koinly", "--prices", str(prices), "--output", str(out_file)]) == 0
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    (payout,) = rows
    assert payout["Received Amount"] == "50" and payout["Received Currency"] == "tIMPRMPT"
    assert payout["Net Worth Amount"] == "12.50" and payout["Net Worth Currency"] == "EUR"
    assert payout["Date"].startswith(today.isoformat()) and payout["Label"] == "income"
    # a period that ended before anything happened holds nothing
    assert run(["earnings", "reconcile", "--since", "2020-01-01", "--until", "2020-12-31",
                "--format", "csv", "--prices", str(prices)]) == 0
    assert capsys.readouterr().out.strip().count("\n") == 0  # the header only


@pytest.mark.parametrize(("args", "needle"), [
    (["--until", "2026-02-30"], "--until"),
    (["--until", "2026-01-01", "--to-block", "5"], "not both"),
    (["--prices", "/no/such/prices.csv"], "--prices"),
    (["--prices", "{bad}"], "not a price"),
    (["--format", "pdf"], "pdf"),
    (["--since", "2026-02-01", "--until", "2026-01-31"], "before --since"),
])
def test_bad_report_options_fail_in_one_line(
        configured: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], needle: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,price,currency\n2026-01-01,=1+1,EUR\n")
    args = [a.replace("{bad}", str(bad)) for a in args]
    assert run(["earnings", "reconcile", *args]) == 3
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2, err  # click's usage line + the error
