"""Pure verification of a PoW solution: bytes in, verdict out.

One attempt is ``argon2id(password=contract.pow_password(chainId, i, n), salt=round salt,
params)``; it passes when the digest starts with at least ``difficulty`` zero bits, most
significant bit first. Rounds are independent. The hash function is injected so the solver
can use the fastest binding while verification stays a plain function.
"""

from __future__ import annotations

from collections.abc import Callable

from impromptu_ops import contract
from impromptu_ops.pow.challenge import Argon2Params, Challenge, Solution

Hasher = Callable[[bytes, bytes, Argon2Params], bytes]


def argon2id_reference(password: bytes, salt: bytes, params: Argon2Params) -> bytes:
    """Argon2id through argon2-cffi: the portable reference every backend must match."""
    from argon2.low_level import Type, hash_secret_raw

    digest: bytes = hash_secret_raw(
        secret=password,
        salt=salt,
        time_cost=params.iterations,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=params.hash_length,
        type=Type.ID,
    )
    return digest


def leading_zero_bits(digest: bytes) -> int:
    """Number of leading zero bits of ``digest``, most significant bit first."""
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def meets(digest: bytes, difficulty: int) -> bool:
    return leading_zero_bits(digest) >= difficulty


def check_round(challenge: Challenge, index: int, nonce: int,
                hasher: Hasher = argon2id_reference) -> bool:
    """True when ``nonce`` solves round ``index``."""
    rnd = challenge.rounds[index]
    password = contract.pow_password(challenge.chain_id, index, nonce)
    return meets(hasher(password, rnd.salt, challenge.params), rnd.difficulty)


def failing_rounds(challenge: Challenge, solution: Solution,
                   hasher: Hasher = argon2id_reference) -> list[int]:
    """The indexes of the rounds that ``solution`` does not solve (empty = valid).

    A solution for another chain, or with the wrong number of nonces, fails every round.
    """
    if solution.chain_id != challenge.chain_id or len(solution.nonces) != len(challenge.rounds):
        return list(range(len(challenge.rounds)))
    return [
        i for i, nonce in enumerate(solution.nonces)
        if not check_round(challenge, i, nonce, hasher)
    ]


def verify(challenge: Challenge, solution: Solution, hasher: Hasher = argon2id_reference) -> bool:
    return not failing_rounds(challenge, solution, hasher)
