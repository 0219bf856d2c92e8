"""Earnings reconciliation: the platform's ledger against what arrived on chain.

:mod:`.model` (values and ledger parsing), :mod:`.match` (the pure rules), :mod:`.cache`
(incremental scan state), :mod:`.service` (the one run the CLI calls), :mod:`.render`
(table, JSON, CSV, HTML).
"""
