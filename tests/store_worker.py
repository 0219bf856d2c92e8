"""A child process for the concurrent-writer tests: N read-modify-write increments.

Usage: ``python tests/store_worker.py NAME N``. The store comes from the environment
exactly as for the real CLI (``open_store(load_settings())``). Each increment reads the
counter and writes ``value + 1`` under check-and-set, retrying on :class:`CasConflict`.
Prints ``conflicts=<count>`` on success.
"""

from __future__ import annotations

import sys

from impromptu_ops.errors import CasConflict, LockBusy, SecretNotFound
from impromptu_ops.secret import Secret
from impromptu_ops.settings import load_settings
from impromptu_ops.store.factory import open_store


def main() -> int:
    name, count = sys.argv[1], int(sys.argv[2])
    store = open_store(load_settings())
    conflicts = 0
    done = 0
    while done < count:
        try:
            current = store.read(name)
            value, version = int(current.value().reveal()), current.version
        except SecretNotFound:
            value, version = 0, 0
        try:
            store.write(name, {"value": Secret(str(value + 1))}, cas=version)
            done += 1
        except (CasConflict, LockBusy):
            conflicts += 1
    print(f"conflicts={conflicts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
