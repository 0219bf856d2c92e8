"""A fleet sharded over several workers (issue 17, Build 6), on OpenBao and the sandbox.

Kubernetes runs an Indexed Job's pod i with ``JOB_COMPLETION_INDEX=i``
(kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode); the bundle sets
``IMPROMPTU_FLEET_SHARDS`` to the Job's ``completions``. Here N real processes get those two
variables, share one OpenBao (every agent's keys at ``secret/impromptu/<agent>/``) and one
sandbox, and together serve every agent exactly once. The bundle itself must pass the
strict schema validation of ``kubernetes-validate`` as the single-agent bundle does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from impromptu_ops.fleet.roster import select_shard
from impromptu_ops.sandbox.server import SandboxServer
from tests.fixtures_fleet import make_fleet
from tests.fixtures_jobs import ops
from tests.fixtures_vault import BaoServer

VERSIONS = ("1.31.0", "1.33.0", kubernetes_validate.latest_version())
SHARDS = 3


def test_n_shard_processes_serve_every_agent_exactly_once(
        sandbox: SandboxServer, bao_server: BaoServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in bao_server.env().items():
        if key.startswith(("VAULT_", "BAO_")):
            monkeypatch.setenv(key, value)
    tag = uuid.uuid4().hex[:6]
    names = [f"s{tag}-{i}" for i in range(8)]
    fleet = make_fleet(sandbox, monkeypatch, names)
    assert all(fleet.settings(n).store_backend == "vault" for n in names)
    procs = [subprocess.Popen(
        [sys.executable, "-m", "impromptu_ops.cli", "fleet", "heartbeat", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "JOB_COMPLETION_INDEX": str(i),
             "IMPROMPTU_FLEET_SHARDS": str(SHARDS)}) for i in range(SHARDS)]
    served: list[list[str]] = []
    for i, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stdout + stderr
        runs = json.loads(stdout)["agents"]
        assert all(r["exitCode"] == 0 for r in runs), runs  # keys read from OpenBao
        served.append([r["localAgent"] for r in runs])
        assert served[-1] == select_shard(names, i, SHARDS)
    flat = [n for shard in served for n in shard]
    assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
    bad = ops("fleet", "heartbeat", env={"JOB_COMPLETION_INDEX": "3",
                                         "IMPROMPTU_FLEET_SHARDS": str(SHARDS)})
    assert bad.returncode == 78 and bad.stderr.count("\n") == 1


def _bundle(tmp_path: Path, *args: str, env: dict[str, str] | None = None
            ) -> dict[str, dict[str, Any]]:
    out = tmp_path / "bundle"
    proc = ops("install", "--scheduler", "kubernetes", "--output", str(out), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.iterdir())}


def test_the_sharded_bundle_is_an_indexed_job_and_validates(tmp_path: Path) -> None:
    sid = tmp_path / "secret-id"
    sid.write_text("s" * 36)
    sid.chmod(0o600)
    env = {"VAULT_ADDR": "https://vault.example:8200", "IMPROMPTU_STORE_VAULT_ROLE_ID": "r",
           "IMPROMPTU_STORE_VAULT_SECRET_ID_FILE": str(sid)}
    docs = _bundle(tmp_path, "--fleet-shards", "4", env=env)
    crons = {n: d for n, d in docs.items() if d["kind"] == "CronJob"}
    assert sorted(crons) == ["30-cronjob-fleet-health.yaml", "30-cronjob-fleet-heartbeat.yaml",
                             "30-cronjob-fleet-rotate.yaml", "30-cronjob-reconcile.yaml"]
    for name in ("fleet-heartbeat", "fleet-rotate", "fleet-health"):
        job = crons[f"30-cronjob-{name}.yaml"]["spec"]["jobTemplate"]["spec"]
        assert (job["completionMode"], job["completions"], job["parallelism"]) == \
            ("Indexed", 4, 4)
        container = job["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["fleet", name.split("-")[1]]
        assert {"name": "IMPROMPTU_FLEET_SHARDS", "value": "4"} in container["env"]
    assert "completionMode" not in crons["30-cronjob-reconcile.yaml"]["spec"]["jobTemplate"][
        "spec"]
    assert docs["20-state-pvc.yaml"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for doc in docs.values():
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_sharded_fleet_without_vault_is_refused(tmp_path: Path) -> None:
    proc = ops("install", "--scheduler", "kubernetes", "--output", str(tmp_path / "b"),
               "--fleet-shards", "2")
    assert proc.returncode == 78 and proc.stderr.count("\n") == 1
    assert "shared store" in proc.stderr and not (tmp_path / "b").exists()
    one = _bundle(tmp_path, "--fleet-shards", "1")  # one pod: the local store is fine
    job = one["30-cronjob-fleet-heartbeat.yaml"]["spec"]["jobTemplate"]["spec"]
    assert job["completions"] == 1
