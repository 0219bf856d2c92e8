"""Chain ids as people name them, and where each chain's block explorer lives.

This module owns the table of the chains a report can name (Base, Base Sepolia, Ethereum,
and anvil's default id as "local") and their default explorer. It does no I/O. A chain id
not in the table is shown as ``chain <id>`` with no explorer unless one is configured
(``chain.explorer_url``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Network:
    chain_id: int
    name: str
    explorer: str  # base URL without a trailing slash; "" = no public explorer


NETWORKS: dict[int, Network] = {n.chain_id: n for n in (
    Network(8453, "Base", "https://basescan.org"),
    Network(84532, "Base Sepolia", "https://sepolia.basescan.org"),
    Network(1, "Ethereum", "https://etherscan.io"),
    Network(31337, "local", ""),
)}
NO_EXPLORER = "none"  # chain.explorer_url = "none": no links even for a known chain


def network(chain_id: int) -> Network:
    """The chain's name and default explorer (``chain <id>`` and none when unknown)."""
    return NETWORKS.get(chain_id, Network(chain_id, f"chain {chain_id}", ""))


def explorer_base(chain_id: int, configured: str = "") -> str:
    """The explorer to link to: the configured base (``none`` disables links), else the
    chain's default. Only ``http(s)`` bases are used: the base ends up in ``href``."""
    base = configured.strip() or network(chain_id).explorer
    if base == NO_EXPLORER or not base.startswith(("https://", "http://")):
        return ""
    return base.rstrip("/")


def tx_url(base: str, tx_hash: str) -> str:
    return f"{base}/tx/{tx_hash}" if base else ""


def address_url(base: str, address: str) -> str:
    return f"{base}/address/{address}" if base else ""


def block_url(base: str, number: int) -> str:
    return f"{base}/block/{number}" if base else ""
