"""A rotation test bench over real servers: the sandbox (platform + OpenRouter subset) and
a secret store (the local encrypted file, or OpenBao), driven through the real CLI in
child processes so that a crash is a real SIGKILL.

:class:`Watcher` runs in a thread during a rotation and checks, again and again, that the
key currently in the store works against the sandbox. A failure counts only when the
store still held that same value after the check: an agent that read the key a moment
before the cut-over is not "without a working key", one whose store holds a dead key is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from impromptu_ops.errors import OpsError
from impromptu_ops.rotation.crash import CRASH_ENV, STEP_DIR_ENV
from impromptu_ops.rotation.record import RecordStore, RotationRecord
from impromptu_ops.sandbox.server import SandboxServer
from impromptu_ops.secret import Secret
from impromptu_ops.settings import Settings, load_settings
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.factory import open_store

if TYPE_CHECKING:
    from tests.fixtures_vault import BaoServer

OPENROUTER = "openrouter-api-key"
IMPROMPTU = "impromptu-api-key"
PROVISIONING = "openrouter-provisioning-key"


_LOCAL = threading.local()


def _http() -> httpx.Client:
    """One HTTP client per thread (building one per call costs tens of ms: an SSL
    context), closed when the thread ends; the sandbox and OpenBao are plain HTTP."""
    client: httpx.Client | None = getattr(_LOCAL, "client", None)
    if client is None:
        client = _LOCAL.client = httpx.Client(timeout=10)
        weakref.finalize(threading.current_thread(), client.close)
    return client


def _verdict(resp: httpx.Response) -> bool | None:
    if resp.status_code == 200:
        return True
    return False if resp.status_code in (401, 403) else None


@dataclass
class Bench:
    sandbox: SandboxServer
    env: dict[str, str]
    agent_id: str = ""
    provisioning: str = ""
    generation: int = 0
    _store: SecretStore | None = None

    # -- wiring ------------------------------------------------------------------------------
    def settings(self) -> Settings:
        return load_settings(env=self.env, config_file=Path(self.env["HOME"]) / "none.toml")

    @property
    def store(self) -> SecretStore:
        if self._store is None:
            self._store = open_store(self.settings())
        return self._store

    def cli(self, *args: str, crash_at: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(env or {})}
        if crash_at:
            env[CRASH_ENV] = crash_at
        return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args],
                              capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)

    def repoint(self, env: dict[str, str]) -> None:
        """Change the environment (e.g. the Vault address after a failover)."""
        self.env.update(env)
        self._store = None
        self.generation += 1

    # -- the store ---------------------------------------------------------------------------
    def put(self, name: str, value: str) -> None:
        try:
            cas = self.store.metadata(name).current_version
        except OpsError:
            cas = 0
        self.store.write(name, {"value": Secret(value, name)}, cas=cas)

    def current(self, name: str) -> str:
        return self.store.read(name).value("value").reveal()

    def record(self, provider: str) -> RotationRecord | None:
        return RecordStore(self.store).load(provider)[0]

    # -- the sandbox -------------------------------------------------------------------------
    def openrouter_works(self, key: str) -> bool | None:
        """True (200), False (401: refused), None (anything else: an injected fault)."""
        return _verdict(_http().get(f"{self.sandbox.openrouter_url}/key",
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10))

    def openrouter_works_aside(self, key: str) -> bool | None:
        """Like :meth:`openrouter_works`, through ``/auth/key`` (another path, same check)."""
        return _verdict(_http().get(f"{self.sandbox.openrouter_url}/auth/key",
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10))

    def byok_problem(self) -> str | None:
        """The platform's active OpenRouter credential must be a live, enabled key
        (one atomic snapshot of the sandbox's state)."""
        state = self.sandbox.control("GET", "state")
        creds = state["credentials"].get(self.agent_id, [])
        by_sha = {k["sha256"]: k for k in state["openrouter"]["keys"].values()}
        for cred in creds:
            if cred["provider"] == "openrouter" and cred["isActive"]:
                key = by_sha.get(cred["sha256"])
                if key is None or key["disabled"]:
                    return "the platform's BYOK copy of the OpenRouter key does not work"
        return None

    def impromptu_live(self, key: str) -> bool | None:
        """The sandbox's own key table says ``key`` is live (for heartbeat-fault tests)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        for record in self.sandbox.control("GET", "state")["keys"].values():
            if record["sha256"] == digest:
                return record["revokedAt"] is None
        return False

    def impromptu_works(self, key: str) -> bool | None:
        return _verdict(_http().get(f"{self.sandbox.base_url}/v1/agent/heartbeat",
                                  headers={"Authorization": f"Bearer {key}"}, timeout=10))

    def openrouter_keys(self) -> list[dict[str, Any]]:
        """Every key of the account, disabled ones included (all pages of GET /keys)."""
        keys: list[dict[str, Any]] = []
        while True:
            resp = _http().get(f"{self.sandbox.openrouter_url}/keys",
                               params={"include_disabled": "true", "offset": len(keys)},
                               headers={"Authorization": f"Bearer {self.provisioning}"},
                               timeout=10)
            resp.raise_for_status()
            page: list[dict[str, Any]] = resp.json()["data"]
            if not page:
                return keys
            keys += page

    def openrouter_hash(self, key: str) -> str:
        """The opaque hash OpenRouter gave ``key`` (from the sandbox's own state; "" if
        the key does not exist): tests never derive it from the value."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        for record in self.sandbox.control("GET", "state")["openrouter"]["keys"].values():
            if record["sha256"] == digest:
                found: str = record["hash"]
                return found
        return ""

    def mint_openrouter(self, name: str) -> str:
        resp = _http().post(f"{self.sandbox.openrouter_url}/keys", json={"name": name},
                          headers={"Authorization": f"Bearer {self.provisioning}"}, timeout=10)
        resp.raise_for_status()
        key: str = resp.json()["key"]
        return key

    def impromptu_keys(self) -> list[dict[str, Any]]:
        state = self.sandbox.control("GET", "state")
        return [k for k in state["keys"].values() if k["agentId"] == self.agent_id]

    def byok_active_sha(self) -> list[str]:
        creds = self.sandbox.control("GET", "state")["credentials"].get(self.agent_id, [])
        return [c["sha256"] for c in creds if c["provider"] == "openrouter" and c["isActive"]]

    def fault(self, **rule: Any) -> dict[str, Any]:
        added: dict[str, Any] = self.sandbox.control("POST", "faults", rule)
        return added

    def fired(self, rule: dict[str, Any]) -> bool:
        """Did the sandbox apply ``rule`` at least once (a use consumed, or all of them)?"""
        for left in self.sandbox.control("GET", "faults")["faults"]:
            if left["id"] == rule["id"]:
                return left["remaining"] is not None and left["remaining"] < rule["remaining"]
        return True

    def clear_faults(self) -> None:
        self.sandbox.control("DELETE", "faults")


def make_bench(sandbox: SandboxServer, home: Path, store_env: dict[str, str] | None = None
               ) -> Bench:
    """An agent with a platform key, a provisioning key and one OpenRouter key, all stored."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMPROMPTU_", "VAULT_", "BAO_", "OPENROUTER_"))}
    env.update({
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"), "XDG_STATE_HOME": str(home / "state"),
        "IMPROMPTU_API_URL": sandbox.base_url,
        "IMPROMPTU_OPENROUTER_URL": sandbox.openrouter_url,
        "IMPROMPTU_PLATFORM_DEADLINE": "20", "IMPROMPTU_PLATFORM_READ_TIMEOUT": "3",
        "IMPROMPTU_PLATFORM_BACKOFF_BASE": "0.05", "IMPROMPTU_PLATFORM_BACKOFF_CAP": "0.2",
        "IMPROMPTU_PLATFORM_MAX_RETRIES": "3",
    })
    env.update(store_env or {"IMPROMPTU_STORE_BACKEND": "local",
                             "IMPROMPTU_STORE_LOCAL_PATH": str(home / "store" / "s.store"),
                             "IMPROMPTU_STORE_LOCAL_KEY_FILE": str(home / "store" / "s.key")})
    bench = Bench(sandbox, env)
    agent = sandbox.control("POST", "agents", {"name": "rot-" + home.name[-8:]})
    bench.agent_id = agent["agentId"]
    bench.provisioning = sandbox.control("POST", "openrouter/provisioning-key")["key"]
    Secret(bench.provisioning)
    Secret(agent["apiKey"])
    bench.put(IMPROMPTU, agent["apiKey"])
    bench.put(PROVISIONING, bench.provisioning)
    bench.put(OPENROUTER, bench.mint_openrouter("initial-by-hand"))
    return bench



# -- the no-instant-without-a-working-key watcher -------------------------------------------
Verdict = Callable[[str], "bool | None"]


class Watched(Protocol):
    generation: int
    env: dict[str, str]

    def settings(self) -> Settings: ...


@dataclass
class Watcher:
    """Checks "does the store's current key work?" in a thread, two ways at once.

    - Continuously: it polls the store and the provider every ~20 ms during the run.
    - At every step boundary: with :meth:`env` passed to the job, the job pauses at each
      boundary (``IMPROMPTU_TEST_STEP_DIR``) until this watcher has checked the world and
      released it; nothing moves meanwhile, so each boundary check is decisive.

    ``works`` judges a key value (True / False: refused / None: undecided, e.g. a fault);
    ``extra`` checks other copies the agent relies on (the platform's BYOK copy, the
    secret_id file) and returns a violation text or None.
    """

    bench: Watched
    name: str
    works: Verdict
    extra: Callable[[], str | None] | None = None
    folder: Path | None = None
    interval: float = 0.02
    on_boundary: Callable[[str], None] | None = None  # runs while the job is paused
    violations: list[str] = field(default_factory=list)
    undecided: list[str] = field(default_factory=list)
    boundaries: list[str] = field(default_factory=list)
    checks: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def env(self) -> dict[str, str]:
        """The environment that makes a job pause at every boundary for this watcher."""
        if self.folder is None:
            home = Path(self.bench.env["HOME"])  # a pytest temp dir: removed with it
            home.mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="rot-steps-", dir=home))
        return {STEP_DIR_ENV: str(self.folder)}

    def _check(self, store: SecretStore, where: str, decisive: bool) -> None:
        for _ in range(5 if decisive else 1):
            try:
                before = store.read(self.name).value("value").reveal()
                ok = self.works(before)
                after = store.read(self.name).value("value").reveal()
            except (OpsError, httpx.HTTPError) as exc:  # a torn read is not a verdict
                if "not found" in str(exc).lower():
                    self.violations.append(f"{self.name} missing from the store ({where})")
                    return
                ok, before, after = None, "", "-"
            if ok is not None:
                break
            if decisive:
                time.sleep(0.05)
        self.checks += 1
        if ok is False and before == after:
            self.violations.append(f"the store's current {self.name} did not work ({where})")
        elif ok is None and decisive:
            self.undecided.append(where)
        if self.extra is not None and (decisive or self.checks % 5 == 0):
            problem = self.extra()
            if problem:
                self.violations.append(f"{problem} ({where})")

    def run(self) -> None:
        store = open_store(self.bench.settings())  # its own instance: no shared state
        generation = self.bench.generation
        while not self._stop.is_set():
            if generation != self.bench.generation:  # the bench was repointed
                store, generation = open_store(self.bench.settings()), self.bench.generation
            flags = sorted(self.folder.glob("*.wait")) if self.folder else []
            if flags:
                boundary = flags[0].stem.split("-", 2)[2]
                self._check(store, f"at boundary {boundary}", decisive=True)
                self.boundaries.append(boundary)
                if self.on_boundary is not None:
                    self.on_boundary(boundary)
                flags[0].unlink()
                continue
            self._check(store, "polling", decisive=False)
            until = time.monotonic() + self.interval
            while time.monotonic() < until and not self._stop.is_set():
                if self.folder and any(self.folder.glob("*.wait")):
                    break  # a job paused at a boundary: check it at once
                time.sleep(0.005)

    def assert_clean(self, *boundaries: str) -> None:
        """No violation; the listed boundaries were each checked while the job paused."""
        assert self.checks > 0, "the watcher never checked anything"
        assert not self.violations, self.violations[:5]
        assert not self.undecided, f"boundaries not checked decisively: {self.undecided}"
        missing = [b for b in boundaries if b not in self.boundaries]
        assert not missing, (missing, self.boundaries)

    @contextmanager
    def watching(self) -> Iterator[Watcher]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=30)


def openrouter_watcher(bench: Bench) -> Watcher:
    """The agent's OpenRouter key in the store works, and so does the platform's BYOK copy.

    It checks with ``GET /auth/key`` (the same handler as ``/key``): fault rules aimed at
    the job's own ``/key`` calls then hit the job, not this watcher."""
    return Watcher(bench, OPENROUTER, bench.openrouter_works_aside, extra=bench.byok_problem)


def impromptu_watcher(bench: Bench, *, by_state: bool = False) -> Watcher:
    """The agent's platform key in the store works: a real heartbeat with it, or, when the
    test faults the heartbeat itself, the sandbox's key table (live and not revoked)."""
    return Watcher(bench, IMPROMPTU,
                   bench.impromptu_live if by_state else bench.impromptu_works)


# -- AppRole secret_id on a real OpenBao ----------------------------------------------------
SECRET_ID = "vault-secret-id"


class AppRoleBench:
    """An AppRole whose secret_id the jobs log in with (a 0600 file) and the store holds."""

    def __init__(self, bao: BaoServer, agent: str, folder: Path) -> None:
        self.bao = bao
        self.generation = 0
        self.role_id, self.file = bao.approle("rotation", agent, folder)
        self.role = self.file.name.removeprefix("secret-id-")
        home = folder / "home"
        env = {**bao.env(), "HOME": str(home), "XDG_STATE_HOME": str(home / "state"),
               "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "d"),
               "IMPROMPTU_STORE_BACKEND": "vault", "IMPROMPTU_STORE_AGENT": agent,
               "IMPROMPTU_ROTATION_APPROLE_ROLE": self.role,
               "IMPROMPTU_STORE_VAULT_SECRET_ID_FILE": str(self.file)}
        self.env = {k: v for k, v in env.items() if not k.startswith("IMPROMPTU_TEST")}
        self.store = open_store(self.settings())
        self.initial = self.file.read_text().strip()
        self.store.write(SECRET_ID, {"value": Secret(self.initial, SECRET_ID)}, cas=0)

    def settings(self) -> Settings:
        return load_settings(env=self.env, config_file=Path(self.env["HOME"]) / "none.toml")

    def cli(self, *args: str, crash_at: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = {**self.env, **(env or {})}
        if crash_at:
            full[CRASH_ENV] = crash_at
        return subprocess.run([sys.executable, "-m", "impromptu_ops.cli", *args],
                              capture_output=True, text=True, env=full, timeout=120,
                              check=False)

    def current(self) -> str:
        return self.store.read(SECRET_ID).value("value").reveal()

    def record(self) -> RotationRecord | None:
        return RecordStore(self.store).load("vault-secret-id")[0]

    def logs_in(self, secret_id: str) -> bool | None:
        resp = _http().post(f"{self.bao.addr}/v1/auth/approle/login",
                          json={"role_id": self.role_id, "secret_id": secret_id}, timeout=10)
        if resp.status_code == 200:
            token = resp.json()["auth"]["client_token"]
            _http().post(f"{self.bao.addr}/v1/auth/token/revoke-self",
                       headers={"X-Vault-Token": token}, timeout=10)
            return True
        return False if resp.status_code in (400, 403) else None

    def file_problem(self) -> str | None:
        """The jobs' secret_id file must log in at every instant."""
        try:
            value = self.file.read_text().strip()
        except OSError as exc:
            return f"secret_id file unreadable: {exc}"
        return None if self.logs_in(value) is not False else "the secret_id file does not log in"

    def accessors(self) -> list[Any]:
        resp = _http().request(
            "LIST", f"{self.bao.addr}/v1/auth/approle/role/{self.role}/secret-id",
            headers={"X-Vault-Token": self.bao.root_token}, timeout=10)
        if resp.status_code == 404:
            return []
        keys: list[Any] = resp.json()["data"]["keys"]
        return keys

    def watcher(self) -> Watcher:
        # Each check is two AppRole logins (tokens made and revoked): poll gently; the
        # decisive checks are the ones at each boundary.
        return Watcher(self, SECRET_ID, self.logs_in, extra=self.file_problem, interval=0.15)

    def assert_rotated(self) -> None:
        current = self.current()
        assert current != self.initial
        assert self.logs_in(current) and not self.logs_in(self.initial)
        assert self.file.read_text().strip() == current
        assert os.stat(self.file).st_mode & 0o077 == 0
        assert len(self.accessors()) == 1


# -- faults in front of OpenBao (the sandbox's fault rules do not reach Vault) --------------
@dataclass
class FaultRule:
    method: str
    path: str  # a regular expression searched in the request path
    kind: str  # "status" (answer `status`), "drop" (close, no answer), "late" (answer after
    #            the call's timeout: the request DID reach Vault)
    status: int = 503
    times: int = 1
    fired: int = 0


class VaultFaultProxy:
    """An HTTP reverse proxy on loopback in front of OpenBao that applies fault rules to
    matching requests and forwards everything else untouched (the KV store's calls too)."""

    def __init__(self, upstream: str) -> None:
        import http.server

        self.upstream = upstream.rstrip("/")
        self.rules: list[FaultRule] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()  # headers and body go out in two writes: no Nagle delay
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_LIST = _any

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.addr = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._client = httpx.Client(timeout=30)

    def add(self, method: str, path: str, kind: str, **extra: Any) -> FaultRule:
        rule = FaultRule(method, path, kind, **extra)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _take(self, method: str, path: str) -> FaultRule | None:
        import re

        with self._lock:
            for rule in self.rules:
                if rule.fired < rule.times and rule.method == method and re.search(
                        rule.path, path):
                    rule.fired += 1
                    return rule
        return None

    def _handle(self, h: Any) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        rule = self._take(h.command, h.path)
        if rule is not None and rule.kind == "drop":
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        if rule is not None and rule.kind == "status":
            payload = json.dumps({"errors": [f"injected fault {rule.status}"]}).encode()
            h.send_response(rule.status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        headers = {k: v for k, v in h.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        resp = self._client.request(h.command, self.upstream + h.path, content=body,
                                    headers=headers)
        if rule is not None and rule.kind == "late":  # it happened; the caller gave up
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.send_response(resp.status_code)
        for key, value in resp.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                   "content-encoding"):
                h.send_header(key, value)
        h.send_header("Content-Length", str(len(resp.content)))
        h.end_headers()
        h.wfile.write(resp.content)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()
