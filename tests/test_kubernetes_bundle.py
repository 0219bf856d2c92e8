"""The Kubernetes bundle deploys as printed: strict schemas, the Secret's real key names, a
skipped run that ends its pod successfully, and the Dockerfile the bundle's image needs.

Schemas: the ``kubernetes-validate`` package (strict: unknown fields are errors) for the
current Kubernetes versions. Skips: a Job ``podFailurePolicy`` rule ``Ignore`` "is not
counted towards the .backoffLimit and a replacement pod is created"
(https://kubernetes.io/docs/tasks/job/pod-failure-policy/, PodFailurePolicyRule in the
batch/v1 API reference), so exit 75 must not be matched by a rule: the job exits 0.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from impromptu_ops.schedule import generate
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store
from tests.fixtures_jobs import ops

REPO = Path(__file__).resolve().parents[1]
# Kinds that are custom resources (no built-in schema): listed by name, not validated.
NOT_VALIDATED = frozenset({"ExternalSecret", "SecretStore", "ClusterSecretStore"})
VERSIONS = ("1.31.0", "1.33.0", kubernetes_validate.latest_version())


def _bundle(tmp_path: Path, *args: str, env: dict[str, str] | None = None
            ) -> tuple[dict[str, dict[str, Any]], str]:
    out = tmp_path / "bundle"
    proc = ops("install", "--scheduler", "kubernetes", "--output", str(out), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    docs = {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.iterdir())}
    return docs, proc.stdout


def _create_secret_command(stdout: str) -> list[str]:
    line = next(ln for ln in stdout.splitlines() if "create secret generic" in ln)
    return shlex.split(line.removeprefix("next: "))


def test_the_bundle_passes_strict_schema_validation(tmp_path: Path) -> None:
    docs, _ = _bundle(tmp_path)
    kinds = sorted(d["kind"] for d in docs.values())
    assert kinds == ["CronJob"] * 4 + ["Namespace", "PersistentVolumeClaim", "ServiceAccount"]
    for doc in docs.values():
        if doc["kind"] in NOT_VALIDATED:
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)  # raises when invalid
    broken = dict(docs["30-cronjob-heartbeat.yaml"])
    broken["spec"] = {**broken["spec"], "concurencyPolicy": "Forbid"}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_a_skipped_run_ends_its_pod_successfully(tmp_path: Path) -> None:
    docs, _ = _bundle(tmp_path)
    cronjobs = {d["metadata"]["name"]: d for d in docs.values() if d["kind"] == "CronJob"}
    assert sorted(cronjobs) == ["impromptu-health", "impromptu-heartbeat",
                                "impromptu-reconcile", "impromptu-rotate"]
    schedules = {n: c["spec"]["schedule"] for n, c in cronjobs.items()}
    assert re.fullmatch(r"\d+ \d+ \* \* 1", schedules["impromptu-reconcile"])  # weekly
    assert re.fullmatch(r"\d+ \d+ \* \* \*", schedules["impromptu-rotate"])  # daily
    assert schedules["impromptu-health"].count(",") == 11  # every 5 minutes
    for cj in cronjobs.values():
        job = cj["spec"]["jobTemplate"]["spec"]
        assert cj["spec"]["concurrencyPolicy"] == "Forbid" and job["backoffLimit"] == 0
        for rule in job.get("podFailurePolicy", {}).get("rules", []):
            # no rule on exit codes at all: nothing recreates a pod because a run skipped
            assert "onExitCodes" not in rule, rule
        (container,) = job["template"]["spec"]["containers"]
        assert container["args"][-2:] == ["--skipped-exit-code", "0"]
        pod = job["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["automountServiceAccountToken"] is False
        claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert claims[0]["persistentVolumeClaim"]["claimName"] == "impromptu-ops-state"
    rec = cronjobs["impromptu-reconcile"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    args = rec["containers"][0]["args"]
    assert args[args.index("--output") + 1] == "/var/lib/impromptu/earnings-report.json"


def test_the_secret_holds_exactly_what_the_pod_reads(tmp_path: Path) -> None:
    """Do what the printed steps do, on this machine: make the Secret's files from the
    printed ``kubectl create secret`` (its --from-file pairs), run the init container's
    script and then the job's own command with the pod's environment (paths mapped into
    a temporary folder). The job reads the store it was deployed with."""
    store = open_store(load_settings())
    store.write("impromptu-api-key", {"value": Secret("impr_sk_" + "k" * 40)}, cas=0)
    docs, stdout = _bundle(tmp_path)
    cmd = _create_secret_command(stdout)
    assert cmd[:7] == ["kubectl", "-n", "impromptu", "create", "secret", "generic",
                       "impromptu-ops-credentials"]
    pairs = dict(a.removeprefix("--from-file=").split("=", 1) for a in cmd[7:])
    assert set(pairs) == {"impromptu-store-key", "secrets.store"}
    root = tmp_path / "pod"
    secret_dir = root / "var/run/impromptu/secret"
    secret_dir.mkdir(parents=True)
    for key, host_file in pairs.items():
        shutil.copyfile(host_file, secret_dir / key)  # what `kubectl create secret` sends
    (root / "var/run/impromptu/credentials").mkdir(parents=True)
    (root / "var/lib/impromptu").mkdir(parents=True)

    def mapped(text: str) -> str:
        return re.sub(r"(?<![\w/])/var/(run|lib)/impromptu", lambda m: f"{root}{m.group(0)}",
                      text)

    pod = docs["30-cronjob-heartbeat.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    subprocess.run([init["command"][0], init["command"][1], mapped(init["command"][2])],
                   check=True, timeout=30)
    env = {e["name"]: mapped(e["value"]) for e in pod["containers"][0]["env"]}
    for value in env.values():
        if value.startswith(str(root / "var/run/impromptu/credentials")):
            assert Path(value).name in pairs  # every credential the pod reads is a key
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("IMPROMPTU_", "XDG_"))}
    proc = subprocess.run([str(REPO / ".venv/bin/impromptu-ops"), "secrets", "list"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**clean, **env, "HOME": str(tmp_path / "nohome")})
    assert proc.returncode == 0, proc.stderr
    assert "impromptu-api-key" in proc.stdout
    seeded = root / "var/lib/impromptu/data/secrets.store"
    assert seeded.stat().st_mode & 0o077 == 0


def test_vault_bundle_delivers_the_approle_secret_id(tmp_path: Path) -> None:
    sid = tmp_path / "secret-id"
    sid.write_text("s" * 36)
    sid.chmod(0o600)
    docs, stdout = _bundle(tmp_path, env={
        "VAULT_ADDR": "https://vault.example:8200", "IMPROMPTU_STORE_VAULT_ROLE_ID": "role-1",
        "IMPROMPTU_STORE_VAULT_SECRET_ID_FILE": str(sid)})
    pairs = dict(a.removeprefix("--from-file=").split("=", 1)
                 for a in _create_secret_command(stdout)[7:])
    assert pairs == {"vault-secret-id": str(sid)}
    pod = docs["30-cronjob-rotate.yaml"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["IMPROMPTU_STORE_VAULT_SECRET_ID_FILE"] == (
        "/var/run/impromptu/credentials/vault-secret-id")
    assert "secrets.store" not in pod["initContainers"][0]["command"][2]


def test_a_metrics_file_in_a_pod_is_refused_in_one_line(tmp_path: Path) -> None:
    proc = ops("install", "--scheduler", "kubernetes", "--output", str(tmp_path / "b"),
               env={"IMPROMPTU_JOBS_METRICS_FILE": str(tmp_path / "x.prom")})
    assert proc.returncode == 78
    assert proc.stderr.count("\n") == 1 and "read by no one" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_the_dockerfile_builds_a_pinned_non_root_image_from_the_checkout() -> None:
    text = (REPO / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    bases = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert bases, "no FROM"
    for base in bases:  # an exact version tag, or a digest: never "latest" or "3"
        assert "@sha256:" in base or re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", base), base
    final = text[text.rindex("FROM "):]
    (user,) = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    assert user.split(":")[0] == str(generate.K8S_UID) and user.split(":")[0] != "0"
    assert re.search(r'^ENTRYPOINT \["impromptu-ops"\]$', final, re.MULTILINE)
    assert re.search(r"^COPY ops \./ops$", text, re.MULTILINE)  # the checkout's package
    assert re.search(r"pip install /src\b", text)  # installed from it, not from an index
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", ".git", "*.key", "*.store"} <= set(ignored)
