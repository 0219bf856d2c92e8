"""Private: Scheduling the heartbeat: systemd, cron, launchd and Kubernetes.

- :mod:`.spec`: what to schedule (:class:`~.spec.ScheduleSpec`), derived from settings.
- :mod:`.generate`: the four renderers (pure: a spec in, file contents out).
- :mod:`.validate`: structural checks, and ``systemd-analyze verify`` when available.
- :mod:`.install`: the ``impromptu-ops install`` procedure (folders, store check, secrets
  scan, writing the schedule), with a dry run that prints exactly what it would write.
"""
