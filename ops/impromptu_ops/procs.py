"""Private: Stopping a child process we started (a test server, a local chain): politely, then
firmly.

Owns only the terminate-wait-kill sequence; starting processes stays with their owners
(:mod:`impromptu_ops.chain.anvil`, the test fixtures).
"""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process, wait up to ``grace`` seconds, then SIGKILL and reap it.

    A process that already exited is only reaped. Its stderr pipe, if any, is closed.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
    if proc.stderr is not None:
        proc.stderr.close()
