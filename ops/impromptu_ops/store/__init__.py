"""Secret storage: one typed protocol, two backends (OpenBao/Vault KV v2 and a local
encrypted file). See :mod:`impromptu_ops.store.base` for the contract both honour.

Modules:

- :mod:`.base`: the :class:`~.base.SecretStore` protocol, value types, name checks and the
  pruning-refusal rule (:class:`~.base.VersionPruningRefused`, a ``StoreError``, exit 74);
- :mod:`.factory`: ``open_store(settings, backend=None)``, the one way to get a store;
- :mod:`.local` (+ :mod:`.sealed` file envelope, :mod:`.model` pure KV v2 core);
- :mod:`.vault` (+ :mod:`.vault_auth` token/AppRole/TTL, :mod:`.vault_errors` mapping);
- :mod:`.manage` (put/history/rollback/import workflows), :mod:`.childenv` (``exec``),
  :mod:`.policies` (Vault ACL templates rendered per agent).
"""
