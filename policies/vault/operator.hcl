# impromptu-ops: operator (administrator) of agent "${agent}".
#
# Full control of this agent's path: everything rotation can do, plus destroying versions
# and deleting a secret's metadata and whole history. Still nothing outside
# ${prefix}/${agent}/, and no access to Vault's own configuration (sys/, auth/).

path "${mount}/data/${prefix}/${agent}/*" {
  capabilities = ["create", "read", "update", "delete", "patch"]
}

path "${mount}/metadata/${prefix}/${agent}/*" {
  capabilities = ["create", "read", "update", "delete", "list", "patch"]
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

path "${mount}/destroy/${prefix}/${agent}/*" {
  capabilities = ["update"]
}

path "${mount}/config" {
  capabilities = ["read"]
}
