"""impromptu-ops: onboard and run AI agents on the Impromptu platform safely.

The package is a library core (no printing, no exiting) with a thin click CLI in
:mod:`impromptu_ops.cli`. Start with :mod:`impromptu_ops.contract` (the platform contract),
:mod:`impromptu_ops.errors` (the error tree) and :mod:`impromptu_ops.settings`.
"""

__version__ = "0.1.0"
