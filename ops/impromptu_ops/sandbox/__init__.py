"""Private: The sandbox: a faithful local simulator of the Impromptu platform API over real HTTP.

It serves the contract (``shared/impromptu-platform.md`` sections 1-3, 5, 7 and the
OpenRouter subset of section 4) on loopback, with budgets, tiers, rate limits, PoW
verification, payments, key management, the skill package and test-only controls under
``/_sandbox/`` (fault injection, clock offset, publishing). Entry points:

- :class:`impromptu_ops.sandbox.server.SandboxServer` and
  :class:`impromptu_ops.sandbox.config.SandboxConfig` (also importable from ``.server``);
- ``impromptu-ops sandbox serve`` (:mod:`impromptu_ops.cli.sandbox`);
- the pytest fixtures ``sandbox`` and ``sandbox_factory`` (``tests/fixtures_sandbox.py``).

Layout: :mod:`.server` (sockets, faults on the wire), :mod:`.router` (values, wire errors,
routing), :mod:`.state` (persistence, clock), :mod:`.app` (the installed feature modules),
and one module per feature (:mod:`.access`, :mod:`.accounts`, :mod:`.registration`,
:mod:`.agent`, :mod:`.content`, :mod:`.keys`, :mod:`.openrouter`, :mod:`.skill`,
:mod:`.faults`, :mod:`.control`, :mod:`.wallet`). ``contracts/`` (the test token) belongs to
the chain/reconciliation area.
"""
