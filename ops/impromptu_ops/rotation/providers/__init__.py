"""Private: the rotation providers (one module per service whose keys we rotate)."""
