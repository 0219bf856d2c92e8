"""The platform contract, in one place.

Every point of ``shared/impromptu-platform.md`` that the client and the sandbox both rely on
lives here as a constant: documented facts ([doc]) and our own definitions where the public
material is silent ([ours]). When the real platform says otherwise, change it here and
nowhere else. Both :mod:`impromptu_ops.platform` (the client) and
:mod:`impromptu_ops.sandbox` (the simulator) import these names; neither restates them.

This module holds values only: no I/O, no logic beyond small pure lookups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from impromptu_ops import errors

# --- §1 Transport -------------------------------------------------------------------------
DEFAULT_API_URL: Final = "https://impromptusocial.ai/api"  # [doc]
DEFAULT_OPENROUTER_URL: Final = "https://openrouter.ai/api/v1"  # real public API
PATH_PREFIXES: Final = {"v1": "/v1", "legacy": ""}  # [doc] /v1/agent/... or /agent/...

API_KEY_PREFIX: Final = "impr_sk_"  # [doc] impr_sk_ + 40 url-safe chars
API_KEY_RE: Final = re.compile(r"^impr_sk_[A-Za-z0-9_-]{40}$")
OPENROUTER_KEY_PREFIX: Final = "sk-or-v1-"
# OpenRouter's GET /keys answers "the most recent 100 API keys" per page (offset pagination).
OPENROUTER_KEYS_PAGE: Final = 100
# [ours] OpenRouter documents no maximum key name; our sandbox and rotation names stay under it.
OPENROUTER_KEY_NAME_MAX: Final = 200
KEY_PREFIXES: Final = (API_KEY_PREFIX, OPENROUTER_KEY_PREFIX, "hvs.", "hvb.", "s.", "0x")

# Shapes the redactor masks even when the process never loaded the value.
KEY_SHAPES: Final = re.compile(
    r"impr_sk_[A-Za-z0-9_-]{20,}"
    r"|sk-or-v1-[A-Za-z0-9]{20,}"
    r"|\bhv[sbr]\.[A-Za-z0-9_-]{20,}"
    r"|\bs\.[A-Za-z0-9]{24}\b"
    r"|\b0x[0-9a-fA-F]{64}\b"  # a 32-byte hex private key (tx hashes look alike: see note)
)
# Note: a transaction hash has the same shape as a private key. Output that must show tx
# hashes (the reconciliation report) renders them through ``contract.show_tx_hash`` which
# the redactor leaves alone: it abbreviates to 0x1234…abcd.

RATE_LIMIT_HEADERS: Final = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@dataclass(frozen=True)
class ErrorCode:
    """One row of the §1 error table."""

    code: str
    status: int
    error: type[errors.PlatformError]
    retryable: bool


# [doc] codes and statuses, [ours] where marked in §1.
ERROR_CODES: Final[dict[str, ErrorCode]] = {
    e.code: e
    for e in (
        ErrorCode("UNAUTHORIZED", 401, errors.AuthError, False),
        ErrorCode("ACCOUNT_NOT_ACTIVE", 403, errors.AuthError, False),
        ErrorCode("AUTHZ_001", 403, errors.AuthError, False),
        ErrorCode("VAL_001", 404, errors.NotFoundError, False),
        ErrorCode("NOT_FOUND", 404, errors.NotFoundError, False),
        ErrorCode("VALIDATION_ERROR", 400, errors.ValidationFailed, False),
        ErrorCode("BUDG_001", 402, errors.BudgetExhausted, False),
        ErrorCode("RATE_001", 429, errors.RateLimited, True),
        ErrorCode("RATE_003", 429, errors.RateLimited, False),
        ErrorCode("POW_REQUIRED", 428, errors.RegistrationRefused, False),
        ErrorCode("POW_INVALID", 400, errors.RegistrationRefused, False),
        ErrorCode("POW_EXPIRED", 410, errors.RegistrationRefused, False),
        ErrorCode("POW_REPLAYED", 409, errors.RegistrationRefused, False),
        ErrorCode("PAYMENT_REQUIRED", 402, errors.RegistrationRefused, False),
        ErrorCode("PAYMENT_INVALID", 400, errors.RegistrationRefused, False),
        ErrorCode("PAYMENT_REPLAYED", 409, errors.RegistrationRefused, False),
        ErrorCode("KEY_LIMIT", 409, errors.KeyManagementRefused, False),
        ErrorCode("LAST_KEY", 409, errors.KeyManagementRefused, False),
        ErrorCode("INTERNAL", 500, errors.ServerError, True),
    )
}

# [doc] advised backoff for INTERNAL: 5, 10, 20, 40 s (the client's base/cap are settings).
DOC_BACKOFF_SECONDS: Final = (5, 10, 20, 40)

# §1 field aliases [doc]; reported back in ``_fieldMappings`` as {alias: canonical} [ours].
FIELD_ALIASES: Final = {"systemPrompt": "content", "message": "prompt", "promptId": "nodeId"}

# --- §2 Tiers [doc] ---------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    name: str
    budget: int
    regen_per_hour: int
    actions_per_day: int
    burst_per_second: int


TIERS: Final = {
    t.name: t
    for t in (
        Tier("REGISTERED", 100, 10, 100, 10),
        Tier("ESTABLISHED", 500, 50, 500, 20),
        Tier("VERIFIED", 2_000, 200, 2_000, 50),
        Tier("PARTNER", 10_000, 1_000, 10_000, 100),
    )
}
ACTION_COSTS: Final = {"prompt": 10, "reprompt": 10, "engage:LIKE": 1, "engage:BOOKMARK": 2}

# --- §3 Registration ------------------------------------------------------------------------
POW_ALGORITHM: Final = "argon2id"
POW_DOC_PARAMS: Final = {"memoryKiB": 131_072, "iterations": 1, "parallelism": 1, "hashLength": 32}
POW_ROUNDS: Final = 10  # [doc]
POW_SALT_BYTES: Final = 16  # [ours]
POW_EXPIRY_SECONDS: Final = 15 * 60  # [doc]
PAYMENT_MODES: Final = ("none", "withheld", "upfront")


def pow_password(chain_id: str, round_index: int, nonce: int) -> bytes:
    """[ours] The Argon2id password for one attempt: UTF-8 of ``{chainId}:{i}:{n}``."""
    return f"{chain_id}:{round_index}:{nonce}".encode()


# --- §5 Key management [ours] ----------------------------------------------------------------
MAX_ACTIVE_KEYS: Final = 2
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

# --- §6 Earnings [doc]/[ours] -------------------------------------------------------------
BASE_CHAIN_ID: Final = 8453
IMPRMPT_TOKEN: Final = "0xE0F03AB43ADc728d2F3EfC419b11A070cDaB3078"  # noqa: S105 - an address
DEFAULT_DECIMALS: Final = 18  # [ours] read decimals() and allow a pinned override
VESTING_DAYS: Final = 60
REFERRAL_BPS: Final = 500  # 5% [doc]
BPS_DENOMINATOR: Final = 10_000
REFERRAL_WINDOW_DAYS: Final = 365  # [ours] UTC, half-open [registeredAt, +365d)
# [ours] the documented registration fee, in base units (the docs say "a small fee"; the
# sandbox asks for this amount; a withheld REGISTRATION_FEE entry must equal minus it).
REGISTRATION_FEE: Final = 10 * 10**DEFAULT_DECIMALS
LEDGER_TYPES: Final = ("ENGAGEMENT", "REFERRAL", "REGISTRATION_FEE", "PAYOUT")
ERC20_TRANSFER_TOPIC: Final = (
    "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
)

# --- §7 Skill package [ours] --------------------------------------------------------------
MANIFEST_PATH: Final = "/impromptu.skill.json"
SKILL_FILE_PATH: Final = "/skill/{version}/{path}"
PROMPT_FILES: Final = ("SKILL.md", "HEARTBEAT.md")

# --- Secrets: canonical names and the environment names the original scripts read ---------
# One constant per secret name: code names a secret by these, never by a string literal.
IMPROMPTU_API_KEY: Final = "impromptu-api-key"
OPENROUTER_API_KEY: Final = "openrouter-api-key"
OPENROUTER_MANAGEMENT_KEY: Final = "openrouter-management-key"  # OpenRouter's current name
OPENROUTER_PROVISIONING_KEY: Final = "openrouter-provisioning-key"  # older name, an alias
WALLET_PRIVATE_KEY: Final = "wallet-private-key"
VAULT_SECRET_ID: Final = "vault-secret-id"  # noqa: S105 - a name, not a secret
SECRET_NAMES: Final = (
    IMPROMPTU_API_KEY,
    OPENROUTER_API_KEY,
    OPENROUTER_MANAGEMENT_KEY,
    OPENROUTER_PROVISIONING_KEY,
    WALLET_PRIVATE_KEY,
    VAULT_SECRET_ID,
)
SECRET_ENV: Final = {
    IMPROMPTU_API_KEY: "IMPROMPTU_API_KEY",
    OPENROUTER_API_KEY: "OPENROUTER_API_KEY",
    OPENROUTER_MANAGEMENT_KEY: "OPENROUTER_MANAGEMENT_KEY",
    OPENROUTER_PROVISIONING_KEY: "OPENROUTER_PROVISIONING_KEY",
    WALLET_PRIVATE_KEY: "IMPROMPTU_WALLET_PRIVATE_KEY",
    VAULT_SECRET_ID: "VAULT_SECRET_ID",
}
# What an agent needs at run time, and all `secrets exec` hands over unless told otherwise
# (--only): management keys, wallet keys and Vault credentials are named explicitly.
RUNTIME_SECRET_NAMES: Final = (IMPROMPTU_API_KEY, OPENROUTER_API_KEY)


# Response members that carry a secret (registration, key creation; OpenRouter's `key` is
# wrapped by its own client): wrapped in ``Secret`` the moment the JSON is parsed.
RESPONSE_SECRET_FIELDS: Final = frozenset({"apiKey", "walletPrivateKey", "privateKey"})


def show_tx_hash(tx_hash: str) -> str:
    """Abbreviate a 32-byte hash for display (and so that the redactor leaves it alone)."""
    return f"{tx_hash[:6]}…{tx_hash[-4:]}" if len(tx_hash) > 12 else tx_hash
