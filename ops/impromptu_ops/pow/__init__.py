"""Registration proof-of-work: the challenge format, pure verification and the solver."""
