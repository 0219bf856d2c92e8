"""Private: Recording the registered agent's wallet in the user's config file.

Registration returns the agent's wallet address; ``earnings reconcile`` needs it as
``chain.wallet_address``. This module owns writing that one key into the TOML config file
(:func:`impromptu_ops.settings.config_path`) with ``tomlkit``, so the user's comments, key
order and layout survive; the write is atomic (temp file, fsync, rename) and the file stays
0600. The key is the default agent's ``[chain] wallet_address``, and agent NAME's
``[agents.NAME.chain] wallet_address`` (the table that gives that agent its own settings).

A different address already there is not lost: it is kept as a comment above the new one
(the operator may have registered a second agent on purpose, or by mistake). Nothing here
is a secret: the address is public.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Table

from impromptu_ops import atomic
from impromptu_ops.chain import erc20
from impromptu_ops.errors import ConfigError, InputError

MAX_CONFIG_BYTES = 1 << 20  # a config file larger than this is not one we edit


def _chain_table(doc: tomlkit.TOMLDocument, path: Path, agent: str) -> Table:
    """``[chain]`` (agent ``default``) or ``[agents.AGENT.chain]``, created when missing."""
    parent: Table | tomlkit.TOMLDocument = doc
    where = "chain"
    if agent != "default":
        for key in ("agents", agent):
            child = parent.get(key)
            if child is None:
                child = tomlkit.table(is_super_table=True)
                parent.append(key, child)
            if not isinstance(child, Table):
                raise ConfigError(f"config file {path}: [{where if key != 'agents' else key}] "
                                  "is not a table")
            parent = child
        where = f"agents.{agent}.chain"
    chain = parent.get("chain")
    if chain is None:
        chain = tomlkit.table()
        parent.append("chain", chain)
    if not isinstance(chain, Table):
        raise ConfigError(f"config file {path}: [{where}] is not a table")
    return chain


def record_wallet(path: Path, wallet: str, *, agent_name: str = "", agent: str = "default",
                  now: datetime | None = None) -> bool:
    """Set the agent's ``wallet_address`` in the config file at ``path``.

    Args:
        path: the config file (created, with its folder, when missing).
        wallet: the agent's wallet address.
        agent_name: written in the comment beside the key.
        agent: the local agent: ``default`` writes ``[chain]``, NAME writes
            ``[agents.NAME.chain]``.
        now: the time written in comments (tests pin it).

    Returns:
        False when the file already held this address (nothing written), else True.

    Raises:
        ConfigError: the file cannot be read, parsed or written, or ``[chain]`` is not a
            table; the address is malformed.
    """
    try:
        address = erc20.normalize_address(wallet)
    except InputError as exc:
        raise ConfigError(f"the platform returned a malformed wallet: {exc.message}") from None
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc})") from None
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from None
    chain = _chain_table(doc, path, agent)
    old = chain.get("wallet_address")
    if isinstance(old, str) and old.strip().lower() == address:
        return False
    who = f" of agent {agent_name}" if agent_name else ""
    if isinstance(old, str) and old.strip():
        chain.add(tomlkit.comment(f"wallet_address = \"{old}\"  (replaced {stamp} by "
                                  "impromptu-ops register)"))
        del chain["wallet_address"]
    chain.add("wallet_address", address)
    chain["wallet_address"].comment(f"wallet{who}, recorded by impromptu-ops register "
                                    f"{stamp}")
    try:
        atomic.private_dir(path.parent)
        atomic.write_text(path, tomlkit.dumps(doc))
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot write it "
                          f"({exc.strerror or type(exc).__name__})") from None
    return True
