"""A local anvil chain with Base's chain id, for the quickstart rehearsal and the tests.

Owns starting anvil on a free loopback port, waiting until it answers JSON-RPC, and stopping
it. Does not own finding the binary (the callers know where scripts/test installed it) or
talking to the chain beyond the readiness probe (that is :mod:`impromptu_ops.chain.rpc`).
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass

import httpx

from impromptu_ops.contract import BASE_CHAIN_ID
from impromptu_ops.errors import ChainError
from impromptu_ops.procs import stop_process


@dataclass
class AnvilNode:
    """A running anvil: its JSON-RPC URL and its process."""

    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Terminate anvil (kill it if it lingers) and release its pipes."""
        stop_process(self.process, grace=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_anvil(binary: str, *extra: str, chain_id: int = BASE_CHAIN_ID,
                attempts: int = 3, timeout: float = 15.0) -> AnvilNode:
    """Start anvil on 127.0.0.1 and return once it answers ``eth_chainId``.

    Args:
        binary: the anvil executable.
        extra: more anvil arguments (e.g. ``--block-time``).
        chain_id: the chain id to run with (Base's by default).
        attempts: tries with a new port (a free port can be taken before anvil binds it).
        timeout: seconds to wait for each try to answer.

    Raises:
        ChainError: anvil did not answer on any try.
    """
    for _ in range(attempts):
        url = f"http://127.0.0.1:{_free_port()}"
        port = url.rsplit(":", 1)[1]
        proc = subprocess.Popen(
            [binary, "--chain-id", str(chain_id), "--host", "127.0.0.1", "--port", port,
             "--silent", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        node = AnvilNode(url, proc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId",
                                      "params": []}, timeout=1).raise_for_status()
                return node
            except httpx.HTTPError:
                time.sleep(0.05)
        node.stop()
    raise ChainError(f"anvil ({binary}) did not start within {timeout:g} s")
