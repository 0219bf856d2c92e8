"""``impromptu-ops sandbox serve`` as an operator runs it: no secret on any output or file.

The CLI-wide leak test (``tests/test_cli_no_secret_leaks.py``) can only check the refusal of
``sandbox serve`` (a server runs until signalled); this is the rest of it. A real ``serve``
process runs with ``--debug --log-format json -vv`` and known secrets in its environment,
answers traffic that carries secrets both ways (bearer keys, registration answers with a key
and a wallet private key, BYOK credentials, OpenRouter keys, a handler given hostile input),
and is stopped; neither its stdout, its stderr nor any file in the home or the state folder
may hold any of those values. ``api status`` is then run against it with the same secrets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.fixtures_sandbox import solve

ENV_SECRETS = {
    "IMPROMPTU_API_KEY": "impr_sk_" + "EnvLeakCheck0123456789" + "x" * 18,
    "OPENROUTER_API_KEY": "sk-or-v1-" + "6f" * 32,
    "OPENROUTER_PROVISIONING_KEY": "sk-or-v1-" + "7a" * 32,
    "VAULT_TOKEN": "hvs." + "SandboxLeakCheckToken" * 2,
    "IMPROMPTU_WALLET_PRIVATE_KEY": "0x" + "3d" * 32,
}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "impromptu_ops.cli", "--debug", "--log-format", "json",
            "-vv", *args]


def files_under(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def test_sandbox_serve_and_api_status_show_no_secret(isolated_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMPROMPTU_", "VAULT_"))}
    env.update(ENV_SECRETS)
    state_dir = isolated_home / "sandbox-state"
    proc = subprocess.Popen(
        cli("sandbox", "serve", "--state-dir", str(state_dir), "--pow-memory-kib", "64",
            "--pow-difficulty", "1", "--return-wallet-key"),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = list(ENV_SECRETS.values())
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        root = url.removesuffix("/api")
        with httpx.Client(base_url=url, timeout=30) as http:
            chal = http.post("/v1/agents/register/challenge").json()
            reg = http.post("/v1/agents/register", json={
                "name": "LeakCheck", "acceptTos": True,
                "pow": {"chainId": chal["chainId"], "nonces": solve(chal)}}).json()
            seen += [reg["apiKey"], reg["walletPrivateKey"]]
            auth = {"Authorization": f"Bearer {reg['apiKey']}"}
            assert http.get("/v1/agent/heartbeat", headers=auth).status_code == 200
            byok = "sk-or-v1-" + "b1" * 32
            seen.append(byok)
            assert http.put("/v1/agent/credentials", headers=auth,
                            json={"provider": "openrouter", "apiKey": byok}).status_code == 201
            new = http.post("/v1/agent/keys", headers=auth).json()
            seen.append(new["apiKey"])
            wrong = {"Authorization": f"Bearer {ENV_SECRETS['IMPROMPTU_API_KEY']}"}
            assert http.get("/v1/agent/budget", headers=wrong).status_code == 401
            prov = http.post(f"{root}/_sandbox/openrouter/provisioning-key").json()["key"]
            made = http.post(f"{root}/openrouter/api/v1/keys", json={"name": "k"},
                             headers={"Authorization": f"Bearer {prov}"}).json()
            seen += [prov, made["key"]]
            hostile = http.post("/v1/agent/prompt", headers=auth,
                                content=b'{"content": "' + reg["apiKey"].encode() + b'"')
            assert hostile.status_code == 400
            assert reg["apiKey"] not in hostile.text
        status_env = {**env, "IMPROMPTU_API_URL": url, "IMPROMPTU_STORE_BACKEND": "local"}
        status = subprocess.run(cli("api", "status"), env=status_env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert url.startswith("http://127.0.0.1:")
    # the JSON log lines (each request, at -vv) were there to be searched
    assert '"sandbox: ' in err and "/v1/agent/credentials" in err
    shown = {"serve stdout": url + out, "serve stderr": err, "status stdout": status.stdout,
             "status stderr": status.stderr}
    for path in files_under(isolated_home):
        shown[str(path)] = path.read_text(errors="replace")
    leaks = [f"{name} in {where}" for where, text in shown.items()
             for name, value in zip(range(len(seen)), seen, strict=True) if value in text]
    assert not leaks, leaks
