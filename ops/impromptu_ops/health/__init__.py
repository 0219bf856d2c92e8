"""Health checks for monitors (Nagios/Icinga, Prometheus, people).

- thresholds, ranges and their evaluation live one layer down, in :mod:`impromptu_ops.policy`.
- :mod:`.model`: statuses, perfdata, results, the report (values).
- :mod:`.render`: text, nagios, json, prometheus and legacy output (pure).
- :mod:`.checks`: the checks themselves (I/O; each imports only what it uses).
- :mod:`.runner`: runs checks concurrently, each under its own timeout.

Importing this package imports nothing heavy: start-up time of ``health --format nagios``
is a measured target.
"""
