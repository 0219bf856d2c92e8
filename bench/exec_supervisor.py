"""``secrets exec`` costs: masking throughput, the masker alone, and restart latency.

Run: ``.venv/bin/python -m bench.exec_supervisor``. Prints:

- the bytes per second a child's output reaches our stdout through the masking pipe, and
  with ``--no-masking`` (the child writes straight to our stdout), for the same 50 MB;
- :class:`~impromptu_ops.masking.StreamMasker` alone on 64 KiB chunks of ordinary text;
- ``--restart-on-change``: the time from a store write of a new version to the restarted
  child printing its new key's hash (median/p90 of 10, ``exec.poll_seconds`` = 1 s).

Not a test: figures only (a local store in a temp folder; no network).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from impromptu_ops.masking import StreamMasker
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store

MB = 1_000_000
TOTAL = 50 * MB
WRITER = ("import sys; line = b'ordinary output with words and numbers 12345 ' * 2 + b'\\n';"
          f"n = {TOTAL} // len(line); out = sys.stdout.buffer\n"
          "for _ in range(n): out.write(line)\n")
HASHER = ("import hashlib, os, time; print(hashlib.sha256(os.environ['IMPROMPTU_API_KEY']"
          ".encode()).hexdigest(), flush=True)\nwhile True: time.sleep(0.05)\n")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMPROMPTU_", "VAULT_"))}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / "c"),
                "XDG_DATA_HOME": str(home / "d"), "XDG_STATE_HOME": str(home / "s"),
                "IMPROMPTU_STORE_BACKEND": "local"})
    return env


def _throughput(env: dict[str, str], *flags: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec",
                           *flags, "--", sys.executable, "-c", WRITER], env=env,
                          stdout=subprocess.PIPE, check=True)
    seconds = time.perf_counter() - start
    assert len(done.stdout) > TOTAL * 0.99
    return len(done.stdout) / seconds / MB


def _masker_alone() -> float:
    masker = StreamMasker([b"impr_sk_" + b"x" * 40, b"sk-or-v1-" + b"y" * 64])
    chunk = (b"ordinary output with words and numbers 12345 0x12 s.t. hv \n" * 1200)[:65536]
    start = time.perf_counter()
    for _ in range(400):
        masker.feed(chunk)
    return 400 * len(chunk) / (time.perf_counter() - start) / MB


def _restart_latency(env: dict[str, str]) -> list[float]:
    store = open_store(load_settings(env=env, config_file=Path(env["HOME"]) / "none.toml"))
    proc = subprocess.Popen([sys.executable, "-m", "impromptu_ops.cli", "secrets", "exec",
                             "--restart-on-change", "--", sys.executable, "-c", HASHER],
                            env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    samples = []
    try:
        proc.stdout.readline()
        for i in range(10):
            key = f"impr_sk_{i:04d}" + "R" * 36
            version = store.metadata("impromptu-api-key").current_version
            start = time.perf_counter()
            store.write("impromptu-api-key", {"value": Secret(key)}, cas=version)
            want = hashlib.sha256(key.encode()).hexdigest()
            while proc.stdout.readline().strip() != want:
                pass
            samples.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(30)
    return samples


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = _env(Path(tmp))
        store = open_store(load_settings(env=env, config_file=Path(tmp) / "none.toml"))
        store.write("impromptu-api-key", {"value": Secret("impr_sk_" + "B" * 40)}, cas=0)
        print(f"masked pipe      {_throughput(env):8.1f} MB/s")
        print(f"--no-masking     {_throughput(env, '--no-masking'):8.1f} MB/s")
        print(f"StreamMasker     {_masker_alone():8.1f} MB/s (64 KiB chunks)")
        samples = sorted(_restart_latency(env))
        print(f"restart latency  median {statistics.median(samples):.2f} s  "
              f"p90 {samples[int(len(samples) * 0.9) - 1]:.2f} s (poll every 1 s)")


if __name__ == "__main__":
    main()
