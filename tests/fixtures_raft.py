"""A three-node OpenBao cluster with integrated (Raft) storage, on loopback only.

``raft_cluster`` (function scope): three ``bao server`` processes, each with its own
config file and data folder in the test's temp dir, ``storage "raft"`` with
``performance_multiplier = 1`` (fast elections), listeners and cluster ports on
127.0.0.1. Bootstrapping uses the HTTP API only, so no key or token is ever in argv:

1. ``PUT sys/init`` on node 1 (one key share), ``PUT sys/unseal``;
2. autopilot's stabilisation time cut to 1 s (joined nodes become voters quickly);
   nodes 2 and 3: ``POST sys/storage/raft/join`` to node 1, then ``PUT sys/unseal``;
3. KV v2 mounted at ``secret/`` (what the store expects).

:class:`RaftCluster` gives ``.nodes``, ``.root_token``, ``.leader()`` (by
``sys/leader``), ``.kill(node)`` (SIGKILL) and ``.wait_for_leader(exclude)``. Every process
is stopped at teardown. The binary comes from ``$IMPROMPTU_TEST_BAO`` or ``.venv/bin/bao``
(missing is a failure, see :func:`tests.fixtures_vault.bao_binary`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from impromptu_ops.procs import stop_process
from impromptu_ops.secret import Secret

CONFIG = """\
storage "raft" {{
  path = "{data}"
  node_id = "{name}"
  performance_multiplier = 1
}}
listener "tcp" {{
  address = "127.0.0.1:{api}"
  cluster_address = "127.0.0.1:{cluster}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{api}"
cluster_addr = "http://127.0.0.1:{cluster}"
disable_mlock = true
ui = false
log_level = "warn"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RaftNode:
    name: str
    addr: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass
class RaftCluster:
    nodes: list[RaftNode]
    root_token: str = ""
    unseal_key: str = ""
    proxies: list[LeaderProxy] = field(default_factory=list)
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, node: RaftNode, method: str, path: str, body: Any = None,
             token: bool = True) -> httpx.Response:
        headers = {"X-Vault-Token": self.root_token} if token and self.root_token else {}
        with self._lock:  # the proxy's threads ask too
            return self._http.request(method, f"{node.addr}/v1/{path}", json=body,
                                      headers=headers)

    def leader(self) -> RaftNode | None:
        """The active node, as the live nodes report it (``None`` during an election)."""
        for node in self.nodes:
            if not node.alive:
                continue
            try:
                doc = self.call(node, "GET", "sys/leader", token=False).json()
            except (httpx.HTTPError, ValueError):
                continue
            address = doc.get("leader_address", "")
            match = [n for n in self.nodes if n.addr == address and n.alive]
            if match and doc.get("ha_enabled"):
                return match[0]
        return None

    def wait_for_leader(self, exclude: RaftNode | None = None, timeout: float = 40) -> RaftNode:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.leader()
            if node is not None and node is not exclude:
                try:
                    if self.call(node, "GET", "sys/health", token=False).status_code == 200:
                        return node
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise AssertionError("no Raft leader elected in time:\n" + self.logs())

    def kill(self, node: RaftNode) -> None:
        """SIGKILL: no graceful step-down, no leadership transfer."""
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)
        for proxy in self.proxies:
            proxy.cut()

    def proxy(self) -> LeaderProxy:
        """A load balancer in front of the cluster (closed at teardown)."""
        proxy = LeaderProxy(self)
        self.proxies.append(proxy)
        return proxy

    def followers(self) -> list[RaftNode]:
        leader = self.leader()
        return [n for n in self.nodes if n.alive and n is not leader]

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.log_path.read_text(errors='replace')[-1500:]}"
                         for n in self.nodes)

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.close()
        for node in self.nodes:
            node.stop()
        self._http.close()


class LeaderProxy:
    """The cluster's load balancer, as production has one: a TCP forwarder on loopback
    whose every NEW connection goes to the node that is active at that moment (found with
    ``sys/leader``). A connection to a node that dies is cut; during an election a new
    connection is refused by closing it. Jobs then keep ONE address (``.addr``) across a
    failover, as they would behind a real load balancer."""

    def __init__(self, cluster: RaftCluster) -> None:
        self.cluster = cluster
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.addr = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        node = self.cluster.leader()
        if node is None:
            client.close()  # an election: nobody to talk to yet
            return
        host, _, port = node.addr.removeprefix("http://").rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=2)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):  # forward each chunk at once (no Nagle delay)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            src.settimeout(None)
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Cut every open connection (what a balancer does when its backend dies)."""
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)
        self.cut()


def _start_node(binary: Path, folder: Path, name: str) -> RaftNode:
    api, cluster = _free_port(), _free_port()
    data = folder / name / "data"
    data.mkdir(parents=True, mode=0o700)
    config = folder / name / "config.hcl"
    config.write_text(CONFIG.format(data=data, name=name, api=api, cluster=cluster))
    log_path = folder / name / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(folder / name)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(binary), "server", f"-config={config}"], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=folder / name)
    return RaftNode(name, f"http://127.0.0.1:{api}", proc, log_path)


def _wait_listening(cluster: RaftCluster, node: RaftNode, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not node.alive:
            raise AssertionError(f"{node.name} exited:\n{cluster.logs()}")
        try:
            cluster.call(node, "GET", "sys/seal-status", token=False)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{node.name} did not listen:\n{cluster.logs()}")


def _ok(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code >= 400:
        raise AssertionError(f"{what}: HTTP {resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


def start_raft_cluster(folder: Path, size: int = 3) -> RaftCluster:
    # imported here: importing a sibling plugin at module level defeats pytest's rewriting
    from tests.fixtures_vault import bao_binary

    binary = bao_binary()
    cluster = RaftCluster([])
    try:
        for i in range(1, size + 1):
            cluster.nodes.append(_start_node(binary, folder, f"n{i}"))
        first = cluster.nodes[0]
        for node in cluster.nodes:
            _wait_listening(cluster, node)
        init = _ok(cluster.call(first, "PUT", "sys/init",
                                {"secret_shares": 1, "secret_threshold": 1}, token=False), "init")
        cluster.unseal_key = str((init.get("keys_base64") or init["keys"])[0])
        cluster.root_token = str(init["root_token"])
        Secret(cluster.unseal_key, "raft-unseal-key")
        Secret(cluster.root_token, "raft-root-token")
        _ok(cluster.call(first, "PUT", "sys/unseal", {"key": cluster.unseal_key}, token=False),
            "unseal n1")
        leader = cluster.wait_for_leader()
        # Autopilot promotes a joined node to voter only after it has been stable this long
        # (default 10 s); a test cluster need not wait.
        _ok(cluster.call(leader, "POST", "sys/storage/raft/autopilot/configuration",
                         {"server_stabilization_time": "1s"}), "autopilot")
        for node in cluster.nodes[1:]:
            _ok(cluster.call(node, "POST", "sys/storage/raft/join",
                             {"leader_api_addr": first.addr}, token=False), f"join {node.name}")
            _ok(cluster.call(node, "PUT", "sys/unseal", {"key": cluster.unseal_key},
                             token=False), f"unseal {node.name}")
        deadline = time.monotonic() + 40
        while True:
            leader = cluster.wait_for_leader()
            conf = _ok(cluster.call(leader, "GET", "sys/storage/raft/configuration"), "peers")
            servers = conf.get("data", {}).get("config", {}).get("servers", [])
            voters = [s for s in servers if s.get("voter")]
            sealed = [n.name for n in cluster.nodes
                      if cluster.call(n, "GET", "sys/seal-status", token=False).json()["sealed"]]
            if len(voters) == size and not sealed:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster did not form: {servers} sealed={sealed}\n"
                                     + cluster.logs())
            time.sleep(0.3)
        _ok(cluster.call(leader, "POST", "sys/mounts/secret",
                         {"type": "kv", "options": {"version": "2"}}), "mount kv")
        # A new KV v2 mount "upgrades" briefly and answers 400 meanwhile: wait until every
        # node serves a read of a probe written through the leader.
        deadline = time.monotonic() + 30
        pending = list(cluster.nodes)
        while pending:
            node = pending[0]
            if node is leader:
                ok = cluster.call(node, "POST", "secret/data/fixture-ready",
                                  {"data": {"ok": "1"}}).status_code == 200
            else:
                ok = cluster.call(node, "GET", "secret/data/fixture-ready").status_code == 200
            if ok:
                pending.pop(0)
            elif time.monotonic() > deadline:
                raise AssertionError(f"KV v2 not ready on {node.name}\n" + cluster.logs())
            else:
                time.sleep(0.1)
        return cluster
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture
def raft_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RaftCluster]:
    cluster = start_raft_cluster(tmp_path_factory.mktemp("raft"))
    try:
        yield cluster
    finally:
        cluster.stop()
