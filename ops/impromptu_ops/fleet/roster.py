"""Private: the roster's old address; it lives in :mod:`impromptu_ops.roster` (a low layer:
the settings, the CLI and the scheduler read it, and the fleet package sits above the API).
Kept so imports written against ``impromptu_ops.fleet.roster`` keep working."""

from impromptu_ops.roster import (
    AGENT_NAME,
    DEFAULT_AGENT,
    SHARD_COUNT_ENV,
    SHARD_INDEX_ENV,
    agent_settings,
    check_name,
    fleet_names,
    keys_location,
    select_shard,
    shard_from_env,
    shard_of,
)

__all__ = ["AGENT_NAME", "DEFAULT_AGENT", "SHARD_COUNT_ENV", "SHARD_INDEX_ENV",
           "agent_settings", "check_name", "fleet_names", "keys_location", "select_shard",
           "shard_from_env", "shard_of"]
