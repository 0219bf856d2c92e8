"""The three Argon2id backends agree byte for byte, and each refuses what it cannot do."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.errors import ConfigError, PolicyDenied
from impromptu_ops.pow.backends import BACKENDS, PREFERENCE, candidates, unavailable
from impromptu_ops.pow.challenge import Argon2Params
from impromptu_ops.pow.verify import argon2id_reference


def test_every_backend_is_installed_here() -> None:
    # The project depends on all three; a broken install must fail this test, not skip.
    assert {name: unavailable(name) for name in PREFERENCE} == dict.fromkeys(PREFERENCE)


@settings(max_examples=40, deadline=None)
@given(
    password=st.binary(min_size=0, max_size=80),
    salt=st.binary(min_size=16, max_size=16),
    memory_kib=st.integers(8, 256),
    iterations=st.integers(1, 3),
    hash_length=st.integers(16, 64),
)
def test_backends_match_the_reference(password: bytes, salt: bytes, memory_kib: int,
                                      iterations: int, hash_length: int) -> None:
    params = Argon2Params(memory_kib, iterations, 1, hash_length)
    expected = argon2id_reference(password, salt, params)
    assert len(expected) == hash_length
    for backend in BACKENDS.values():
        assert backend.hash(password, salt, params) == expected, backend.name


def test_backends_match_at_the_documented_size() -> None:
    # One real-sized hash (128 MiB, t=1): memory layouts beyond the tiny sizes agree too.
    params = Argon2Params(128 * 1024, 1, 1, 32)
    salt = os.urandom(16)
    digests = {b.name: b.hash(b"chain:0:7", salt, params) for b in BACKENDS.values()}
    assert len(set(digests.values())) == 1, digests


def test_cryptography_matches_reference_with_parallelism_and_odd_salt() -> None:
    params = Argon2Params(64, 2, 4, 32)
    salt = os.urandom(24)
    assert (BACKENDS["cryptography"].hash(b"pw", salt, params)
            == argon2id_reference(b"pw", salt, params))


def test_libsodium_refuses_salt_and_parallelism_it_cannot_do() -> None:
    sodium = BACKENDS["libsodium"]
    ok = Argon2Params(64, 1, 1, 32)
    assert sodium.refuses(ok, 16) is None
    assert "16-byte salt" in (sodium.refuses(ok, 24) or "")
    assert "parallelism" in (sodium.refuses(Argon2Params(64, 1, 2, 32), 16) or "")


def test_candidates_fall_back_when_the_fastest_cannot_hash() -> None:
    assert [b.name for b in candidates(Argon2Params(64, 1, 1, 32), [16, 16])] == list(PREFERENCE)
    fallback = candidates(Argon2Params(64, 1, 2, 32), [16])
    assert [b.name for b in fallback] == ["cryptography", "argon2-cffi"]
    assert next(b.name for b in candidates(Argon2Params(64, 1, 1, 32), [16, 8])) == "cryptography"


def test_candidates_honour_a_forced_backend_and_refuse_the_impossible() -> None:
    params = Argon2Params(64, 1, 2, 32)
    assert [b.name for b in candidates(params, [16], "argon2-cffi")] == ["argon2-cffi"]
    with pytest.raises(PolicyDenied, match="libsodium: supports parallelism 1"):
        candidates(params, [16], "libsodium")
    with pytest.raises(ConfigError, match="unknown PoW backend"):
        candidates(params, [16], "scrypt")
