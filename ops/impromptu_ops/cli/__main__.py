"""``python -m impromptu_ops.cli``: the same entry point as the console script."""

from impromptu_ops.cli.main import main

main()
