# impromptu-ops: key rotation for agent "${agent}".
#
# Read and write this agent's keys (create new versions under check-and-set, read them
# back, keep the rotation record in custom metadata, soft-delete and undelete for
# rollback), list them, and read the mount's max_versions for the pruning guard.
# Nothing outside ${prefix}/${agent}/: another agent's path is denied by omission.
# No destroy, no metadata delete: rotation never loses history.
#
# `rotate vault-secret-id` rotates the secret_id of AppRole role "${approle_role}": it reads
# the role (secret_id_num_uses decides how a new secret_id is checked without spending a
# use) and its role_id, mints (optionally response-wrapped), lists and looks up
# secret_ids, destroys the old one by accessor, and checks a wrapping token without
# consuming it. Logging in needs no policy; auth/token/revoke-self is in "default".

path "${mount}/data/${prefix}/${agent}/*" {
  capabilities = ["create", "read", "update"]
}

# The finished rotation soft-deletes its pending copy (undeletable; nothing destroyed).
path "${mount}/data/${prefix}/${agent}/_pending/*" {
  capabilities = ["create", "read", "update", "delete"]
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

path "auth/${approle_mount}/role/${approle_role}" {
  capabilities = ["read"]
}

path "auth/${approle_mount}/role/${approle_role}/role-id" {
  capabilities = ["read"]
}

path "auth/${approle_mount}/role/${approle_role}/secret-id" {
  capabilities = ["update", "list"]
}

path "auth/${approle_mount}/role/${approle_role}/secret-id/lookup" {
  capabilities = ["update"]
}

path "auth/${approle_mount}/role/${approle_role}/secret-id-accessor/lookup" {
  capabilities = ["update"]
}

path "auth/${approle_mount}/role/${approle_role}/secret-id-accessor/destroy" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
