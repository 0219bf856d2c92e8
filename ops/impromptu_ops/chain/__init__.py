"""Private: Talking to an EVM chain: JSON-RPC (:mod:`.rpc`), ERC-20 bytes (:mod:`.erc20`), adaptive
log scanning (:mod:`.scan`) and finality/reorg checks (:mod:`.finality`).

The package knows nothing of the platform's ledger: :mod:`impromptu_ops.reconcile` does.
"""
