# impromptu-ops: heartbeat and health checks for agent "${agent}".
#
# Least privilege: read the current platform key and nothing else. No list, no metadata,
# no other secret (not the OpenRouter keys, not the wallet key), no write of any kind.
# Token self-lookup and renewal come from Vault's built-in "default" policy.
#
# Rendered by `impromptu-ops secrets policy heartbeat --agent NAME` (fills mount, prefix
# and agent); load with `bao policy write impromptu-heartbeat-NAME FILE`.

path "${mount}/data/${prefix}/${agent}/impromptu-api-key" {
  capabilities = ["read"]
}
