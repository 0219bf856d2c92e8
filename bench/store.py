"""Secret-store latency: local encrypted file vs OpenBao (dev server), plus CLI start-up.

Run: ``.venv/bin/python -m bench.store``. Prints median and p90 per operation (ms):
a CAS write (metadata read + pruning check + write), a read, a metadata read, the
passphrase KDF (scrypt n=2**15, once per process), and ``impromptu-ops secrets get``
end to end (process start, imports, store read). Not a test: figures only.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from impromptu_ops.secret import Secret
from impromptu_ops.store.base import SecretStore
from impromptu_ops.store.local import LocalStore

ROUNDS = 50


def _timed(fn: Callable[[], object], rounds: int = ROUNDS) -> str:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p90 = samples[int(len(samples) * 0.9)]
    return f"median {statistics.median(samples):7.2f} ms  p90 {p90:7.2f} ms"


def _bench(label: str, store: SecretStore) -> None:
    name = "openrouter-api-key"
    version = [0]

    def write() -> None:
        version[0] = store.write(name, {"value": Secret(f"sk-or-v1-{version[0]:064d}")},
                                 cas=version[0])

    print(f"{label:6} write  {_timed(write)}")
    print(f"{label:6} read   {_timed(lambda: store.read(name))}")
    print(f"{label:6} meta   {_timed(lambda: store.metadata(name))}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _bench("local", LocalStore(root / "s" / "secrets.store", root / "s" / "key",
                                   max_versions=1000))
        start = time.perf_counter()
        LocalStore(root / "p" / "secrets.store", root / "p" / "key",
                   passphrase=Secret("bench passphrase")).write(
            "impromptu-api-key", {"value": Secret("impr_sk_" + "b" * 40)}, cas=0)
        print(f"local  scrypt n=2**15 store open+write: "
              f"{(time.perf_counter() - start) * 1000:.1f} ms")

        env = {**os.environ, "HOME": str(root / "h"), "XDG_CONFIG_HOME": str(root / "h/c"),
               "XDG_DATA_HOME": str(root / "h/d"), "IMPROMPTU_STORE_BACKEND": "local"}
        env.pop("VAULT_ADDR", None)
        subprocess.run([sys.executable, "-m", "impromptu_ops.cli", "secrets", "put",
                        "impromptu-api-key"], input="impr_sk_" + "c" * 40, text=True,
                       env=env, check=True, capture_output=True)
        cli = [sys.executable, "-m", "impromptu_ops.cli", "secrets", "get",
               "impromptu-api-key"]
        figure = _timed(lambda: subprocess.run(cli, env=env, check=True, capture_output=True),
                        10)
        print(f"cli    get    {figure}")

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.fixtures_vault import start_bao

        bao = start_bao(root / "bao")
        try:
            from impromptu_ops.store.factory import open_store

            _bench("vault", open_store(bao.settings("bench", max_versions=1000)))
        finally:
            bao.stop()


if __name__ == "__main__":
    main()
