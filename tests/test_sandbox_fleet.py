"""The sandbox serves a fleet: ``POST /_sandbox/agents/bulk`` and state saving with 1,000
agents (only the records a request touched are re-serialised; one write per request)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.sandbox import state as state_module
from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer


def _writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    from impromptu_ops.atomic import write_text as real

    def counting(path: Path, text: str, mode: int = 0o600) -> None:
        seen.append(path)
        real(path, text, mode)

    monkeypatch.setattr(state_module, "write_text", counting)
    return seen


def _budget(sb: SandboxServer, key: str) -> httpx.Response:
    return httpx.get(sb.base_url + "/v1/agent/budget",
                     headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _saved(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "state.json").read_text())
    return data


def test_a_thousand_agents_in_one_request_and_one_write(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "state"
    writes = _writes(monkeypatch)
    with SandboxServer(SandboxConfig(burst_window_seconds=0.001), folder) as sb:
        before = len(writes)
        made = sb.control("POST", "agents/bulk", {"count": 1000, "namePrefix": "fleet",
                                                  "tier": "PARTNER"})["agents"]
        assert len(writes) == before + 1  # one state write for the whole fleet
        assert len(made) == 1000 and made[0]["name"] == "fleet-0001"
        assert len({a["apiKey"] for a in made}) == 1000
        assert len({a["walletAddress"].lower() for a in made}) == 1000
        saved = _saved(folder)
        assert len(saved["agents"]) == 1000 and len(saved["keys"]) == 1000
        assert all(a["apiKey"] not in json.dumps(saved) for a in made[:20])  # hashes only

        # A counted request changes one agent's record and one key: the saved file shows
        # exactly that change, and the other 999 agents are saved unchanged.
        target = made[499]
        assert _budget(sb, target["apiKey"]).status_code == 200
        after = _saved(folder)
        key_id = next(k for k, v in after["keys"].items() if v["agentId"] == target["agentId"])
        assert saved["keys"][key_id]["lastUsedAt"] is None
        assert after["keys"][key_id]["lastUsedAt"] is not None
        others = {k: v for k, v in after["keys"].items() if k != key_id}
        assert others == {k: v for k, v in saved["keys"].items() if k != key_id}
        sb.control("PATCH", f"agents/{made[7]['agentId']}", {"status": "SUSPENDED"})
        assert _saved(folder)["agents"][made[7]["agentId"]]["status"] == "SUSPENDED"
        count = len(writes)
        assert httpx.get(sb.base_url + "/health", timeout=30).status_code == 200
        assert len(writes) == count  # nothing changed: nothing written

    # Restarted on the same folder, the fleet is still there and its keys still work.
    with SandboxServer(SandboxConfig(), folder) as sb:
        assert _budget(sb, made[999]["apiKey"]).status_code == 200
        answer = _budget(sb, made[7]["apiKey"])
        assert answer.status_code == 403 and "SUSPENDED" in answer.text


@pytest.mark.parametrize("body", [
    {}, {"count": 0}, {"count": 11}, {"count": "5"}, {"count": True},
    {"count": 2, "namePrefix": "../x"}, {"count": 2, "namePrefix": ""},
    {"count": 2, "walletAddress": "0x" + "1" * 40}, {"count": 2, "tier": "GOD"},
])
def test_bad_bulk_requests_are_refused_and_create_nothing(tmp_path: Path,
                                                          body: dict[str, Any]) -> None:
    with SandboxServer(SandboxConfig(max_bulk_agents=10), tmp_path / "state") as sb:
        answer = httpx.post(sb.root_url + "/_sandbox/agents/bulk", json=body, timeout=30)
        assert answer.status_code == 400, answer.text
        assert sb.control("GET", "state")["agents"] == {}


def test_concurrent_requests_share_writes_and_every_answer_is_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Group commit: 8 clients x 10 counted requests need fewer writes than requests, and
    each answered change (the key's lastUsedAt, the daily counter) is in the file."""
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "state"
    writes = _writes(monkeypatch)
    with SandboxServer(SandboxConfig(burst_window_seconds=0.001), folder) as sb:
        made = sb.control("POST", "agents/bulk", {"count": 8, "tier": "PARTNER"})["agents"]
        before = len(writes)

        def ten(agent: dict[str, Any]) -> list[int]:
            with httpx.Client(timeout=30) as client:
                return [client.get(sb.base_url + "/v1/agent/budget", headers={
                    "Authorization": f"Bearer {agent['apiKey']}"}).status_code
                    for _ in range(10)]

        with ThreadPoolExecutor(8) as pool:
            codes = [c for batch in pool.map(ten, made) for c in batch]
        assert codes == [200] * 80
        assert len(writes) - before < 80
        saved = _saved(folder)
        assert all(k["lastUsedAt"] is not None for k in saved["keys"].values())
        assert all(a["daily"]["used"] >= 10 for a in saved["agents"].values())
