"""The sandbox's own limits and behaviour switches, as one frozen value.

:class:`SandboxConfig` decides how the simulated platform behaves (PoW parameters, payment
mode, key lifetime, body cap...). It is not part of :mod:`impromptu_ops.settings`: the
sandbox plays the *remote* side, so its knobs are the platform's, not the operator's.
``impromptu-ops sandbox serve`` builds one from its flags; the pytest fixture builds one
with tiny PoW parameters so tests stay fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from impromptu_ops import contract
from impromptu_ops.errors import ConfigError

# The sandbox's default fee recipient: an address that belongs to nobody in particular.
DEFAULT_FEE_RECIPIENT = "0x000000000000000000000000000000000000fEe0"


@dataclass(frozen=True)
class SandboxConfig:
    """How the simulated platform behaves.

    Attributes:
        pow_required: answer POW_REQUIRED until a valid proof comes with the registration.
        pow_memory_kib, pow_iterations, pow_difficulty, pow_rounds: the Argon2id challenge
            handed out (and verified with the same values).
        payment_mode: ``none`` | ``withheld`` | ``upfront`` (contract §3.3).
        registration_fee: the fee in base units of ``payment_token``.
        payment_chain_id, payment_token, payment_recipient: what PAYMENT_REQUIRED asks for.
        chain_rpc: a JSON-RPC URL; when set, upfront payments are checked on that chain,
            otherwise against tx hashes registered through ``POST /_sandbox/payments``.
        return_wallet_key: include ``walletPrivateKey`` in the registration answer.
        quick_start: include a ``quickStart`` object in the registration answer.
        key_management: serve ``/v1/agent/keys`` (False: answer 404, a platform without
            rotation).
        key_lifetime_days: expiry of new API keys.
        key_expiry_warning_days: security-status warns KEY_EXPIRY at or below this.
        budget_low_fraction: security-status warns BUDGET_LOW below this share of the max.
        max_body_bytes: larger request bodies are refused.
        max_skill_bytes: cap on one published skill file.
        max_bulk_agents: the most agents one ``/_sandbox/agents/bulk`` request creates.
        burst_window_seconds: the window of the per-key burst limit.
        idle_timeout_seconds: a connection silent this long (between or inside requests)
            is closed.
    """

    pow_required: bool = True
    pow_memory_kib: int = 64 * 1024
    pow_iterations: int = 1
    pow_difficulty: int = 2
    pow_rounds: int = contract.POW_ROUNDS
    payment_mode: str = "none"
    registration_fee: int = 10 * 10**contract.DEFAULT_DECIMALS
    payment_chain_id: int = contract.BASE_CHAIN_ID
    payment_token: str = contract.IMPRMPT_TOKEN
    payment_recipient: str = DEFAULT_FEE_RECIPIENT
    chain_rpc: str = ""
    chain_rpc_timeout: float = 10.0
    return_wallet_key: bool = False
    quick_start: bool = True
    key_management: bool = True
    key_lifetime_days: int = 90
    key_expiry_warning_days: int = 14
    budget_low_fraction: float = 0.2
    max_body_bytes: int = 1024 * 1024
    max_skill_bytes: int = 4 * 1024 * 1024
    max_bulk_agents: int = 10_000
    burst_window_seconds: float = 1.0
    idle_timeout_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.payment_mode not in contract.PAYMENT_MODES:
            raise ConfigError(f"sandbox payment mode {self.payment_mode!r} is not one of "
                              + ", ".join(contract.PAYMENT_MODES))
        if self.pow_memory_kib < 8 or self.pow_iterations < 1 or self.pow_rounds < 1:
            raise ConfigError("sandbox PoW needs memory >= 8 KiB, iterations >= 1, rounds >= 1")
        if not 1 <= self.pow_difficulty <= 64:
            raise ConfigError("sandbox PoW difficulty must be 1..64 bits")
        if self.registration_fee < 0 or self.max_body_bytes < 1 or self.max_bulk_agents < 1:
            raise ConfigError("sandbox fee and body cap must not be negative")
        if self.chain_rpc and not self.chain_rpc.startswith(("http://", "https://")):
            raise ConfigError(f"sandbox chain RPC {self.chain_rpc!r} is not an http(s) URL")

    @classmethod
    def build(cls, **values: Any) -> SandboxConfig:
        """Like the constructor, but an unknown name is a :class:`ConfigError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError("unknown sandbox setting(s): " + ", ".join(unknown))
        return cls(**values)
