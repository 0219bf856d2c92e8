"""``impromptu-ops fleet reconcile`` as a real process: agents from the config's
``[agents.NAME]`` tables, each key from its own store, the sandbox ledger and payouts on
anvil; one report file per agent, a summary naming the agents, exit 0/1/3.

The one-scan filter is the ``eth_getLogs`` topic OR-list (Ethereum JSON-RPC spec,
https://ethereum.org/en/developers/docs/apis/json-rpc/#eth_newfilter: "each topic can also
be an array of DATA with 'or' options").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_chain import Anvil
from tests.fixtures_fleet import make_fleet
from tests.fixtures_jobs import ops


def test_fleet_reconcile_writes_each_agents_report_and_names_them(
        ledger_sandbox: SandboxServer, anvil: Anvil, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    token = ledger_sandbox.control("POST", "ledger/token", {})
    chain = (f'[chain]\nrpc_url = "{anvil.url}"\ntoken_address = "{token["address"]}"\n'
             f'payout_senders = "{token["treasury"]}"\n')
    fleet = make_fleet(ledger_sandbox, monkeypatch, ["alice", "bob", "carol"],
                       extra_config=chain)
    for name, scenario in (("alice", "clean"), ("bob", "amount_mismatch"),
                           ("carol", "unrecorded_transfer")):
        ledger_sandbox.control("POST", "ledger/scenario",
                               {"agentId": fleet.agents[name].agent_id, "name": scenario})
    folder = tmp_path / "reports"
    folder.mkdir()
    proc = ops("fleet", "reconcile", "--format", "json", "--output-dir", str(folder))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["discrepancies"] == ["bob", "carol"] and summary["unknown"] == []
    rows = {r["agent"]: r for r in summary["agents"]}
    assert rows["alice"]["status"] == "reconciled"
    assert rows["bob"]["kinds"] == ["amount_mismatch"]
    assert rows["carol"]["kinds"] == ["unrecorded_transfer"]
    assert sorted(p.name for p in folder.iterdir()) == ["alice.json", "bob.json", "carol.json"]
    bob = json.loads((folder / "bob.json").read_text())
    assert {d["kind"] for d in bob["discrepancies"]} == {"amount_mismatch"}
    carol = json.loads((folder / "carol.json").read_text())
    assert {d["kind"] for d in carol["discrepancies"]} == {"unrecorded_transfer"}

    table = ops("fleet", "reconcile")
    assert table.returncode == 1
    assert "discrepancies: bob, carol" in table.stdout

    missing = ops("fleet", "reconcile", "--output-dir", str(tmp_path / "nope"))
    assert missing.returncode == 3 and missing.stdout == ""
    assert missing.stderr.count("\n") == 1 and "not an existing folder" in missing.stderr
    bogus = ops("fleet", "reconcile", "--bogus")
    assert bogus.returncode == 3 and "Traceback" not in bogus.stderr
