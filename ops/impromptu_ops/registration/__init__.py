"""Registering an agent end to end (contract §3), keeping every returned secret.

- :mod:`.flow`: the loop that follows the server's answers (PoW, payment, terms) and the
  accept-terms step; the only entry points the CLI calls.
- :mod:`.api`: the seam to the platform (the two registration endpoints and accept-tos).
- :mod:`.keeping`: secrets into the store first, else into an encrypted emergency file,
  and ``recover`` from that file.
- :mod:`.payment`: the 402 payment request and the on-chain receipt check.
- :mod:`.journal`: the small non-secret "registration in progress" record.

The proof-of-work itself is :mod:`impromptu_ops.pow`.
"""
