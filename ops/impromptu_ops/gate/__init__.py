"""The update gate: no remote skill update lands unless a person approved exactly that diff.

The package is a pure core with one I/O shell, after python-tuf's ``ngclient``:

- :mod:`.manifest`  parse and validate ``impromptu.skill.json`` and every path in it;
  compare versions (pure).
- :mod:`.tree`      a skill tree as a value (path -> bytes + mode), verification of fetched
  blobs against the manifest (pure), and strict reading of a tree from disk.
- :mod:`.sources`   where candidates come from: the platform over HTTP (streamed, capped),
  a local folder, a tarball (strict member checks). Only reads; never runs anything.
- :mod:`.policy`    the rules of ``policies/update-gate.toml`` (data): parsed, checked (pure).
- :mod:`.scan`      their evaluation over (installed tree, candidate tree, manifest) ->
  findings, linear in the candidate's size (pure but for one forked reader per code file).
- :mod:`.shell`, :mod:`.python_code`  shell (tree-sitter-bash) and Python (``ast``) read as
  code: words normalised, variable flows followed, commands handed to
- :mod:`.capabilities`  the judge of what a command can do (egress, key use, environment
  dumps, fetch+exec, persistence, destruction, code fetching) against the policy's lists.
- :mod:`.text`      prompt text normalised (NFKC, invisibles, look-alikes, joined lines).
- :mod:`.linediff`  a near-linear line diff with a hard work budget (pure).
- :mod:`.diff`      the unified diff and its summary (pure).
- :mod:`.digest`    the review digest over installed tree, candidate tree, rendered diff,
  policy files and gate version (pure).
- :mod:`.gate`      :class:`~.gate.UpdateGate`, the one class that touches the skill folder:
  quarantine, approvals, atomic apply, rollback, the hash-chained audit log.

Nothing in this package ever executes a file from an update: no hooks, no scripts, at any
step (the code reader parses files as text, in a forked child that never execs). Files in
quarantine are written 0600; only ``apply`` gives them their manifest mode.
"""

GATE_VERSION = "impromptu-ops-gate/2"
