"""Kill loop: rotations SIGKILLed at random instants under latency, then resume or rollback.

Each iteration picks a provider (``impromptu`` or ``openrouter``), puts a latency fault on
EVERY provider call of the sandbox (a random delay per iteration), starts the real
``impromptu-ops rotate PROVIDER --grace 0`` in a child process, SIGKILLs it at a random
instant, then runs ``rotate resume`` or ``rotate rollback`` (random; more ``resume`` runs
follow while the record is unfinished, e.g. after a refused rollback). Then, the faults
cleared and every request of the killed run landed:

- the stored key works (a real authenticated call: ``GET /v1/agent/heartbeat`` or
  OpenRouter ``GET /key``);
- exactly the expected provider keys exist: ONE active platform key, or ONE OpenRouter
  key listed with ``include_disabled=true`` (the stored one: its id is the one the store
  records);
- no run exited 2 (page someone) while a working key existed, and none printed a
  traceback.

Everything runs against a real ``impromptu-ops sandbox serve`` process over loopback and
a local encrypted store. A killed run's create that is still held by the latency fault
would land after the resume's read-back (OpenRouter has no idempotent create): when the
kill came before the new key was stored, the loop waits for the held requests to land
before it resumes. After a later kill the resume/rollback starts AT ONCE, racing the
killed run's held disable/delete (issue 11, finding 6).

Seeded (``--seed``), so a failure can be replayed. Prints the counts. Run:
``.venv/bin/python bench/rotation_kill.py --iterations 50`` (exit 1 when any iteration
failed). The test suite runs a 5-iteration smoke through :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from impromptu_ops.errors import OpsError
from impromptu_ops.rotation.record import RecordStore, Step, at_least
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.factory import open_store

SECRETS = {"impromptu": "impromptu-api-key", "openrouter": "openrouter-api-key"}
PROVISIONING = "openrouter-provisioning-key"
# Every provider call the rotation makes (platform key management, heartbeat, BYOK
# credentials; OpenRouter's whole API), never the sandbox's own controls.
FAULT_PATHS = {"impromptu": r"^/api/v1/agent/", "openrouter": r"^/openrouter/|/agent/credentials"}
UNFINISHED = frozenset(s.value for s in Step)  # record_step() of an active record


@dataclass
class Tally:
    iterations: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    resumes: int = 0
    rollbacks: int = 0
    refused_rollbacks: int = 0
    extra_resumes: int = 0
    exit_codes: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        phases = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items()))
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.exit_codes.items()))
        return [
            f"iterations {self.iterations}",
            f"kills per phase: {phases}",
            f"resumes {self.resumes}, rollbacks {self.rollbacks} "
            f"(refused past the point of no return {self.refused_rollbacks}), "
            f"follow-up resumes {self.extra_resumes}",
            f"exit codes of resume/rollback runs: {codes}",
            f"failures {len(self.failures)}",
            *[f"  FAIL {f}" for f in self.failures[:20]],
        ]


class Rig:
    """A sandbox process, an agent with its keys in a local store, and the CLI."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "impromptu_ops.cli", "sandbox", "serve", "--no-pow",
             "--state-dir", str(home / "sandbox")],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=self._base_env())
        assert self.proc.stdout is not None
        base = self.proc.stdout.readline().strip()
        if not base.startswith("http://127.0.0.1:"):
            self.close()
            raise RuntimeError(f"sandbox serve did not start (said {base!r})")
        self.base_url = base  # .../api
        self.root = base.removesuffix("/api")
        self.openrouter_url = f"{self.root}/openrouter/api/v1"
        self.http = httpx.Client(timeout=30)
        try:
            self._setup(home)
        except BaseException:
            self.close()
            raise

    def _setup(self, home: Path) -> None:
        self.env = {**self._base_env(), "IMPROMPTU_API_URL": self.base_url,
                    "IMPROMPTU_OPENROUTER_URL": self.openrouter_url,
                    "IMPROMPTU_PLATFORM_DEADLINE": "30",
                    "IMPROMPTU_PLATFORM_READ_TIMEOUT": "5",
                    "IMPROMPTU_PLATFORM_BACKOFF_BASE": "0.05",
                    "IMPROMPTU_PLATFORM_BACKOFF_CAP": "0.2",
                    "IMPROMPTU_STORE_BACKEND": "local",
                    "IMPROMPTU_STORE_LOCAL_PATH": str(home / "store" / "s.store"),
                    "IMPROMPTU_STORE_LOCAL_KEY_FILE": str(home / "store" / "s.key")}
        # PARTNER: a daily quota of 10,000 calls; REGISTERED's 100 would end the loop early
        # (rate limits are not what this loop tests; the rotation retries a 429 anyway).
        agent = self.control("POST", "agents", {"name": "kill-loop", "tier": "PARTNER"})
        self.provisioning = self.control("POST", "openrouter/provisioning-key")["key"]
        Secret(self.provisioning)  # registered with the redactor like any loaded secret
        Secret(agent["apiKey"])
        self.store: SecretStore = open_store(self.settings())
        self.put(SECRETS["impromptu"], agent["apiKey"])
        self.put(PROVISIONING, self.provisioning)
        made = self.http.post(f"{self.openrouter_url}/keys", json={"name": "by-hand"},
                              headers=self.bearer(self.provisioning))
        made.raise_for_status()
        self.put(SECRETS["openrouter"], made.json()["key"])

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("IMPROMPTU_", "VAULT_", "BAO_", "OPENROUTER_"))}
        env.update({"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / "config"),
                    "XDG_DATA_HOME": str(self.home / "data"),
                    "XDG_STATE_HOME": str(self.home / "state")})
        return env

    def settings(self) -> Settings:
        return load_settings(env=self.env, config_file=self.home / "none.toml")

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, f"{self.root}/_sandbox/{path}", json=body, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def put(self, name: str, value: str) -> None:
        try:
            cas = self.store.metadata(name).current_version
        except OpsError:  # absent: the first version
            cas = 0
        self.store.write(name, {"value": Secret(value, name)}, cas=cas)

    def cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "impromptu_ops.cli", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env)

    def run(self, *args: str) -> tuple[int, str]:
        proc = self.cli(*args)
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out + err

    # -- the checks --------------------------------------------------------------------
    def stored(self, provider: str) -> tuple[str, dict[str, str]]:
        value, meta, _v = RecordStore(self.store).read_key(SECRETS[provider])
        return value.reveal(), meta

    def get(self, url: str, key: str, params: dict[str, Any] | None = None
            ) -> httpx.Response:
        """A checking call; a rate limit (429) or a 5xx is waited out, as a client would."""
        for _ in range(20):
            resp = self.http.get(url, headers=self.bearer(key), params=params)
            if resp.status_code != 429 and resp.status_code < 500:
                return resp
            try:
                wait = float(resp.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.2), 5.0))
        return resp

    def works(self, provider: str, key: str) -> bool:
        url = (f"{self.base_url}/v1/agent/heartbeat" if provider == "impromptu"
               else f"{self.openrouter_url}/key")
        return self.get(url, key).status_code == 200

    def provider_keys(self, provider: str, key: str) -> list[dict[str, Any]]:
        """The keys the provider lists (through its API, disabled ones included)."""
        if provider == "impromptu":
            resp = self.get(f"{self.base_url}/v1/agent/keys", key)
            resp.raise_for_status()
            return [k for k in resp.json()["keys"] if k.get("status") == "active"]
        keys: list[dict[str, Any]] = []
        while True:  # pagination (offset) where the service pages
            resp = self.get(f"{self.openrouter_url}/keys", self.provisioning,
                            params={"include_disabled": "true", "offset": len(keys)})
            resp.raise_for_status()
            page = resp.json()["data"]
            keys.extend(page)
            if len(page) < 100:
                return keys

    def record_step(self, provider: str) -> str:
        rec = RecordStore(self.store).load(provider)[0]
        if rec is None:
            return "before-intent"
        return rec.step.value if rec.active else f"settled-{rec.state.value}"

    def close(self) -> None:
        if getattr(self, "http", None) is not None:
            self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def one_iteration(rig: Rig, rng: random.Random, tally: Tally, n: int,
                  max_delay: float) -> None:
    provider = rng.choice(("impromptu", "openrouter"))
    delay = rng.uniform(max_delay / 4, max_delay)
    rig.control("POST", "faults", {"path": FAULT_PATHS[provider], "method": "*",
                                   "kind": "latency", "delay": round(delay, 3),
                                   "times": None})
    where = f"#{n} {provider} delay {delay:.2f}s"
    run = rig.cli("rotate", provider, "--grace", "0")
    # a rotation makes ~10-16 provider calls after ~0.5 s of start-up: kill anywhere in it
    time.sleep(rng.uniform(0.3, 0.5 + 10 * delay))
    if run.poll() is None:
        run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    phase = rig.record_step(provider)
    tally.kills[phase if run.returncode == -signal.SIGKILL else "not-killed"] += 1
    step = Step(phase) if phase in UNFINISHED else None
    if step is None or not at_least(step, Step.STORED):
        time.sleep(delay + 0.3)  # a held create lands before the read-back (see module doc)
    action = rng.choice(("resume", "rollback"))
    code, text = rig.run("rotate", action, provider)
    tally.exit_codes[code] += 1
    if action == "resume":
        tally.resumes += 1
    else:
        tally.rollbacks += 1
        tally.refused_rollbacks += "point of no return" in text
    problems = []
    if code not in (0, 1) or "Traceback" in text:
        problems.append(f"{action} exit {code}: {text.strip()[:300]}")
    for _ in range(3):  # e.g. a refused rollback: the rotation goes forward
        if rig.record_step(provider) not in UNFINISHED:
            break
        tally.extra_resumes += 1
        code, text = rig.run("rotate", "resume", provider)
        tally.exit_codes[code] += 1
        if code not in (0, 1) or "Traceback" in text:
            problems.append(f"follow-up resume exit {code}: {text.strip()[:300]}")
    rig.control("DELETE", "faults")
    time.sleep(delay + 0.2)  # every held request of the killed run has landed
    if rig.record_step(provider) in UNFINISHED:
        problems.append(f"record still unfinished at {rig.record_step(provider)}")
    value, meta = rig.stored(provider)
    if not rig.works(provider, value):
        problems.append("the stored key does not work")
    keys = rig.provider_keys(provider, value)
    ids = [str(k.get("id") or k.get("hash")) for k in keys]
    if len(keys) != 1:
        problems.append(f"{len(keys)} live provider keys, expected 1: {ids}")
    elif meta.get("key_id") and ids[0] != meta["key_id"]:
        problems.append(f"the live key {ids[0]} is not the stored one ({meta['key_id']})")
    tally.iterations += 1
    for problem in problems:
        tally.failures.append(f"{where} killed at {phase}, then {action}: {problem}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-delay", type=float, default=0.25,
                        help="Upper bound of the per-call latency (seconds).")
    args = parser.parse_args(argv)
    if args.iterations < 1 or not 0 < args.max_delay <= 5:
        parser.error("--iterations must be >= 1 and --max-delay in (0, 5]")
    rng = random.Random(args.seed)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rotation-kill-") as tmp:
        rig = Rig(Path(tmp))
        try:
            for n in range(1, args.iterations + 1):
                one_iteration(rig, rng, tally, n, args.max_delay)
        finally:
            rig.close()
    print(f"rotation kill loop: seed {args.seed}, max delay {args.max_delay:g}s, "
          f"{time.monotonic() - started:.0f}s")
    for line in tally.lines():
        print(line)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
