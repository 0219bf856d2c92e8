"""Simulated agent wallets: a real secp256k1 key and its Ethereum address.

The platform creates a wallet per agent and some versions return its private key. The
sandbox does the same with real key material so that the address matches the key (a test
on anvil can sign with it). Ethereum addresses need Keccak-256, which ``hashlib`` lacks
(its ``sha3_256`` uses different padding), so a small pure implementation lives here; it is
only ever used on 64-byte public keys, a few times per registration.

This module owns key generation and address derivation; it does not sign transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_RC = (
    0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000,
    0x000000000000808B, 0x0000000080000001, 0x8000000080008081, 0x8000000000008009,
    0x000000000000008A, 0x0000000000000088, 0x0000000080008009, 0x000000008000000A,
    0x000000008000808B, 0x800000000000008B, 0x8000000000008089, 0x8000000000008003,
    0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
    0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008,
)
_ROT = (
    (0, 36, 3, 41, 18), (1, 44, 10, 45, 2), (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56), (27, 20, 39, 8, 14),
)
_MASK = (1 << 64) - 1


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (64 - n))) & _MASK if n else x


def _keccak_f(a: list[list[int]]) -> None:
    for rc in _RC:
        c = [a[x][0] ^ a[x][1] ^ a[x][2] ^ a[x][3] ^ a[x][4] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        for x in range(5):
            for y in range(5):
                a[x][y] ^= d[x]
        b = [[0] * 5 for _ in range(5)]
        for x in range(5):
            for y in range(5):
                b[y][(2 * x + 3 * y) % 5] = _rol(a[x][y], _ROT[x][y])
        for x in range(5):
            for y in range(5):
                a[x][y] = b[x][y] ^ (~b[(x + 1) % 5][y] & b[(x + 2) % 5][y])
        a[0][0] ^= rc


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as Ethereum uses it (original padding 0x01, not SHA3's 0x06)."""
    rate = 136
    padded = bytearray(data) + b"\x01" + b"\x00" * ((-len(data) - 1) % rate)
    padded[-1] |= 0x80
    a = [[0] * 5 for _ in range(5)]
    for off in range(0, len(padded), rate):
        block = padded[off:off + rate]
        for i in range(rate // 8):
            a[i % 5][i // 5] ^= int.from_bytes(block[8 * i:8 * i + 8], "little")
        _keccak_f(a)
    out = b"".join(a[i % 5][i // 5].to_bytes(8, "little") for i in range(4))
    return out


def checksum_address(raw: bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address."""
    hexaddr = raw.hex()
    digest = keccak256(hexaddr.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c
                          for i, c in enumerate(hexaddr))


def address_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    point = private_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return checksum_address(keccak256(point[1:])[-20:])


@dataclass(frozen=True)
class Wallet:
    address: str
    private_key_hex: str  # 0x + 64 hex; never stored by the sandbox

    def __repr__(self) -> str:
        return f"Wallet({self.address}, private key hidden)"


def new_wallet() -> Wallet:
    key = ec.generate_private_key(ec.SECP256K1())
    scalar = key.private_numbers().private_value
    return Wallet(address_of(key), "0x" + scalar.to_bytes(32, "big").hex())
