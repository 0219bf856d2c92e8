"""The sandbox's wallet derivation: Keccak-256 and Ethereum addresses from known vectors."""

from __future__ import annotations

import re

from cryptography.hazmat.primitives.asymmetric import ec

from impromptu_ops import contract
from impromptu_ops.sandbox.wallet import address_of, checksum_address, keccak256, new_wallet


def test_keccak_vectors() -> None:
    assert keccak256(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
    assert "0x" + keccak256(b"Transfer(address,address,uint256)").hex() == \
        contract.ERC20_TRANSFER_TOPIC
    # exactly one rate block (136 bytes) and one more: the padding boundary
    assert keccak256(b"a" * 135) != keccak256(b"a" * 136) != keccak256(b"a" * 137)


def test_anvil_dev_account_zero() -> None:
    key = ec.derive_private_key(
        0xAC0974BEC39A17E36BA4A6B4D238FF944BACB478CBED5EFCAE784D7BF4F2FF80, ec.SECP256K1())
    assert address_of(key) == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_eip55_vector() -> None:
    raw = bytes.fromhex("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
    assert checksum_address(raw) == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


def test_new_wallets_are_well_formed_and_distinct() -> None:
    wallets = [new_wallet() for _ in range(20)]
    assert len({w.address for w in wallets}) == 20
    wallet = wallets[0]
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", wallet.address)
    assert re.fullmatch(r"0x[0-9a-f]{64}", wallet.private_key_hex)
    assert wallet.private_key_hex not in repr(wallet)
    key = ec.derive_private_key(int(wallet.private_key_hex, 16), ec.SECP256K1())
    assert address_of(key) == wallet.address
