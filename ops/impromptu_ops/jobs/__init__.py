"""Scheduled jobs (the heartbeat, pings, the skill check).

The heartbeat's state file lives one layer down (:mod:`impromptu_ops.heartbeat_state`),
because the health checks read it too.
"""
