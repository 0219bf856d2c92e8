"""Policy: thresholds, ranges and rotation policy, loaded from ``policies/`` and evaluated.

The layer below the jobs, the health checks and rotation (all three read it, so that "due
for rotation" and "too old" mean one thing everywhere); it imports nothing above it.

- :mod:`.ranges`: the Monitoring Plugins threshold syntax (pure).
- :mod:`.verdict`: the check states (OK, WARNING, CRITICAL, UNKNOWN) and their order.
- :mod:`.health`: thresholds from ``policies/health.toml`` and flags; pure evaluation.
- :mod:`.rotation`: rotation thresholds from ``policies/rotation.toml``, durations, and the
  reload hook's command-line syntax (checked here, run by :mod:`impromptu_ops.rotation.hook`).

Loading reads one file each; everything else here is pure.
"""
