"""Which feature modules make up the sandbox, and the router built from them.

Each module listed in :data:`MODULES` exposes ``install(router, state)`` and registers its
own routes. To add a feature (for example the earnings ledger, ``sandbox/ledger.py``), add
one line here. Order matters only where two patterns overlap: the first match wins.
"""

from __future__ import annotations

import importlib

from impromptu_ops.sandbox.router import Router
from impromptu_ops.sandbox.state import State

MODULES: tuple[str, ...] = (
    "impromptu_ops.sandbox.control",
    "impromptu_ops.sandbox.faults",
    "impromptu_ops.sandbox.registration",
    "impromptu_ops.sandbox.agent",
    "impromptu_ops.sandbox.content",
    "impromptu_ops.sandbox.keys",
    "impromptu_ops.sandbox.openrouter",
    "impromptu_ops.sandbox.skill",
    "impromptu_ops.sandbox.ledger",
)


def build_router(state: State) -> Router:
    """A router with every listed module's routes installed over ``state``."""
    router = Router()
    for name in MODULES:
        importlib.import_module(name).install(router, state)
    return router
