"""The sandbox's test token: Solidity source, compiled artifact, build command, deploy/pay.

``TestToken.sol`` and ``TestToken.json`` are committed together; ``build.py`` reproduces the
artifact offline with the pinned npm ``solc``. :mod:`.token` deploys it and makes payouts on
a dev chain (anvil) through unlocked or impersonated accounts: no private key in the code.
"""
