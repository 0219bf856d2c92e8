"""Private: Registration proof-of-work: the challenge format, pure verification and the solver.

- :mod:`.challenge`: the challenge and solution as values, parsed from hostile JSON;
- :mod:`.verify`: pure verification (the reference Argon2id is argon2-cffi);
- :mod:`.backends`: the three Argon2id bindings and the measured choice between them;
- :mod:`.estimate`: caps, concurrency within the memory budget, expected and p99 time;
- :mod:`.solver`: calibration and the all-core threaded search (``solve`` is the entry);
- :mod:`.documents`: reading challenge/solution files for the ``pow`` commands.
"""
