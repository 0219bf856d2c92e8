"""Argon2id backends for the PoW solver, and the choice between them.

Three bindings compute the same Argon2id (v1.3) digest; a test checks they agree byte for
byte. They differ in speed and in which parameters they accept:

============  =========================================  ==================================
backend       binding                                    limits
============  =========================================  ==================================
libsodium     ``nacl.bindings.crypto_pwhash_alg``        salt exactly 16 bytes,
                                                         parallelism 1, output >= 16 bytes
cryptography  ``cryptography...kdf.argon2.Argon2id``     needs cryptography >= 44 and a
                                                         build that ships Argon2
argon2-cffi   ``argon2.low_level.hash_secret_raw``       none that matter (the reference)
============  =========================================  ==================================

The preference order is a measured decision (``bench/pow.py``; 128 MiB, t=1, 2 cores):
libsodium ~76-89 ms/hash, argon2-cffi ~143-151, cryptography ~158-164 single-threaded; with
two threads libsodium reached ~17 hashes/s, cryptography ~11, argon2-cffi ~8. All three are
cffi/Rust calls that release the GIL, so the solver can use plain threads.

This module owns the bindings and the choice; it does not own the search (see
:mod:`impromptu_ops.pow.solver`) or verification (see :mod:`impromptu_ops.pow.verify`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from impromptu_ops.errors import ConfigError, PolicyDenied
from impromptu_ops.pow.challenge import Argon2Params
from impromptu_ops.pow.verify import Hasher, argon2id_reference
from impromptu_ops.secret import clip

# libsodium's fixed Argon2id constraints (crypto_pwhash_SALTBYTES, ..._BYTES_MIN, p = 1).
SODIUM_SALT_BYTES = 16
SODIUM_MIN_OUTPUT = 16
SODIUM_MIN_MEMORY_BYTES = 8192


@dataclass(frozen=True)
class Backend:
    """One Argon2id implementation.

    Attributes:
        name: ``libsodium``, ``cryptography`` or ``argon2-cffi``.
        hash: ``hash(password, salt, params) -> digest``.
        refuses: ``refuses(params, salt_length)`` is ``None`` when the backend can compute
            that hash, else a short reason.
    """

    name: str
    hash: Hasher
    refuses: Callable[[Argon2Params, int], str | None]


# --- libsodium (PyNaCl) -----------------------------------------------------------------------
def _sodium_hash(password: bytes, salt: bytes, params: Argon2Params) -> bytes:
    from nacl.bindings import crypto_pwhash_alg, crypto_pwhash_ALG_ARGON2ID13

    # libsodium takes memory in bytes and computes memlimit / 1024 KiB: exact for KiB * 1024.
    digest: bytes = crypto_pwhash_alg(
        params.hash_length, password, salt, params.iterations, params.memory_kib * 1024,
        crypto_pwhash_ALG_ARGON2ID13,
    )
    return digest


def _sodium_refuses(params: Argon2Params, salt_length: int) -> str | None:
    if salt_length != SODIUM_SALT_BYTES:
        return f"needs a {SODIUM_SALT_BYTES}-byte salt, got {salt_length}"
    if params.parallelism != 1:
        return f"supports parallelism 1 only, got {params.parallelism}"
    if params.hash_length < SODIUM_MIN_OUTPUT:
        return f"needs an output of at least {SODIUM_MIN_OUTPUT} bytes"
    if params.memory_kib * 1024 < SODIUM_MIN_MEMORY_BYTES:
        return "needs at least 8 KiB of memory"
    return None


# --- cryptography -----------------------------------------------------------------------------
def _cryptography_hash(password: bytes, salt: bytes, params: Argon2Params) -> bytes:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    kdf = Argon2id(salt=salt, length=params.hash_length, iterations=params.iterations,
                   lanes=params.parallelism, memory_cost=params.memory_kib)
    return kdf.derive(password)


def _no_limits(params: Argon2Params, salt_length: int) -> str | None:
    return None


# --- argon2-cffi (the reference) --------------------------------------------------------------
BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("libsodium", _sodium_hash, _sodium_refuses),
        Backend("cryptography", _cryptography_hash, _no_limits),
        Backend("argon2-cffi", argon2id_reference, _no_limits),
    )
}
PREFERENCE: tuple[str, ...] = ("libsodium", "cryptography", "argon2-cffi")

_PROBE = Argon2Params(memory_kib=8, iterations=1, parallelism=1, hash_length=16)


@functools.cache
def unavailable(name: str) -> str | None:
    """``None`` when backend ``name`` works in this interpreter, else why not.

    Probes with one tiny hash (cached), so a missing module or an OpenSSL build without
    Argon2 is found before the solver relies on it.
    """
    try:
        BACKENDS[name].hash(b"probe", b"\x00" * SODIUM_SALT_BYTES, _PROBE)
    except Exception as exc:  # ImportError, UnsupportedAlgorithm, AttributeError...
        return clip(f"{type(exc).__name__}: {exc}", 120)
    return None


def candidates(params: Argon2Params, salt_lengths: Iterable[int],
               preferred: str = "auto") -> list[Backend]:
    """The backends able to hash every round, fastest first.

    Args:
        params: the challenge's Argon2 parameters.
        salt_lengths: the salt length of each round.
        preferred: ``auto`` (measured order), or one backend name to use exclusively.

    Raises:
        ConfigError: ``preferred`` is not a backend name.
        PolicyDenied: no installed backend can compute these hashes.
    """
    if preferred != "auto" and preferred not in BACKENDS:
        raise ConfigError(f"unknown PoW backend {preferred!r}; choose auto or "
                          + ", ".join(PREFERENCE))
    names = PREFERENCE if preferred == "auto" else (preferred,)
    lengths = set(salt_lengths)
    usable: list[Backend] = []
    reasons: list[str] = []
    for name in names:
        backend = BACKENDS[name]
        why = next((r for n in lengths if (r := backend.refuses(params, n))), None)
        why = why or unavailable(name)
        if why:
            reasons.append(f"{name}: {why}")
        else:
            usable.append(backend)
    if not usable:
        raise PolicyDenied("no Argon2id backend can solve this challenge: " + "; ".join(reasons))
    return usable
