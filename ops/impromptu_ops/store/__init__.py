"""Secret storage: one typed protocol, two backends (OpenBao/Vault KV v2 and a local
encrypted file). See :mod:`impromptu_ops.store.base` for the contract both honour."""
