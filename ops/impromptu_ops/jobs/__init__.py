"""Scheduled jobs (the heartbeat) and their local state."""
