"""The typed client side of the platform contract (``shared/impromptu-platform.md``).

Layout, pure core first, I/O at the edge:

- :mod:`.retry`, :mod:`.ratelimit`, :mod:`.errorbody`: pure functions over values (backoff
  delays, ``Retry-After`` and rate-limit headers, error bodies -> typed errors). No I/O.
- :mod:`.results`: tolerant parsers from JSON to frozen result values. No I/O.
- :mod:`.http`: the one transport core (httpx): timeouts, size cap, retries under a
  deadline. Shared by both clients.
- :mod:`.client`: :class:`~.client.PlatformClient`, one typed method per endpoint.
- :mod:`.openrouter`: :class:`~.openrouter.OpenRouterClient` (key check and provisioning).
- :mod:`.status`: ``api status`` (health plus the free heartbeat), failures kept as values.

This package does not own secrets storage, registration policy (the PoW loop) or jobs: it
answers what the server said, typed, and lets the callers decide.
"""
