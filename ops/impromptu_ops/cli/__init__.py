"""Private: The thin click CLI: one module per command group, registered lazily in :mod:`.main`.

A command parses, builds its dependencies, calls one library function, renders the result
and maps errors to an exit code. No business logic, HTTP, Vault calls or file writes here.
"""
