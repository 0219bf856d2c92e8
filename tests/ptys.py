"""Reading what a child process wrote to a pseudo-terminal (progress bars, hidden prompts)."""

from __future__ import annotations

import time


def drain(fd: int) -> bytes:
    """Everything left on the pty until the child closes it (EOF, or EIO on Linux)."""
    import os

    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 30.0) -> None:
    """Read into ``seen`` until it holds ``marker`` (fails after ``timeout`` seconds)."""
    import os

    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} on the terminal: {bytes(seen)!r}"
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
