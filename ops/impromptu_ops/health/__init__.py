"""Health checks for monitors (Nagios/Icinga, Prometheus, people).

- :mod:`.ranges`: the Monitoring Plugins threshold syntax (pure).
- :mod:`.policy`: thresholds from ``policies/health.toml`` and flags (pure evaluation).
- :mod:`.model`: statuses, perfdata, results, the report (values).
- :mod:`.render`: text, nagios, json, prometheus and legacy output (pure).
- :mod:`.checks`: the checks themselves (I/O; each imports only what it uses).
- :mod:`.runner`: runs checks concurrently, each under its own timeout.

Importing this package imports nothing heavy: start-up time of ``health --format nagios``
is a measured target.
"""
