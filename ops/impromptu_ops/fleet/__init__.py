"""Serving many agents from one operator: the roster, and fleet-wide health, heartbeat and
rotation.

- :mod:`.roster`: which agents exist (``default`` and each ``[agents.NAME]`` table), the
  settings of one agent (its own store file, state folder, Vault path, wallet), and the
  stable-hash shard an agent belongs to. Pure: no I/O.
- :mod:`.run`: runs one job per agent on a bounded thread pool, each agent with its own
  deadline, and collects per-agent outcomes (``fleet health/heartbeat/rotate``).
- :mod:`.render`: fleet reports as text, Nagios, JSON and Prometheus (every metric labelled
  ``agent``).
"""
