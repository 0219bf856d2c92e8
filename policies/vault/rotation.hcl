# impromptu-ops: key rotation for agent "${agent}".
#
# Read and write this agent's keys (create new versions under check-and-set, read them
# back, keep the rotation record in custom metadata, soft-delete and undelete for
# rollback), list them, and read the mount's max_versions for the pruning guard.
# Nothing outside ${prefix}/${agent}/: another agent's path is denied by omission.
# No destroy, no metadata delete: rotation never loses history.

path "${mount}/data/${prefix}/${agent}/*" {
  capabilities = ["create", "read", "update"]
}

path "${mount}/metadata/${prefix}/${agent}/*" {
  capabilities = ["read", "list", "update"]
}

path "${mount}/metadata/${prefix}/${agent}" {
  capabilities = ["list"]
}

path "${mount}/delete/${prefix}/${agent}/*" {
  capabilities = ["update"]
}

path "${mount}/undelete/${prefix}/${agent}/*" {
  capabilities = ["update"]
}

path "${mount}/config" {
  capabilities = ["read"]
}
