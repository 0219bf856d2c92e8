"""Private: The local store's file format: an authenticated envelope around a JSON body. Pure.

Layout (one file)::

    IMPROMPTU-STORE\\n                      magic line
    {"format":1,"kdf":"keyfile",...}\\n     header: one JSON line (format, KDF and its params)
    <12-byte nonce><AES-256-GCM ciphertext+tag>

The magic and header lines are the GCM *associated data*: a flipped bit anywhere in the
file, a swapped header (for instance weaker scrypt parameters) or a truncation fails
authentication and raises :class:`~impromptu_ops.errors.TamperedStore`. Nothing here
ever "repairs" a file.

Keys: a random 32-byte key file (``kdf = "keyfile"``), or a passphrase stretched with
scrypt (``kdf = "scrypt"``, salt and cost in the header). KDF parameters read from a file
are bounded before use so that a hostile header cannot make us burn memory or CPU.

This module owns bytes in, bytes out; it does no file I/O (see :mod:`.local`).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any, Final

from impromptu_ops.errors import TamperedStore

MAGIC: Final = b"IMPROMPTU-STORE\n"
FORMAT: Final = 1
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
MAX_HEADER: Final = 4096
# Bounds for scrypt parameters taken from a file: n up to 2**20 is 1 GiB at r=8.
MAX_SCRYPT_N: Final = 2**20
MAX_SCRYPT_R: Final = 16
MAX_SCRYPT_P: Final = 4


@dataclass(frozen=True)
class Header:
    """The cleartext (but authenticated) header: how to obtain the key."""

    kdf: str  # "keyfile" | "scrypt"
    salt: bytes = b""
    n: int = 0
    r: int = 0
    p: int = 0

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"format": FORMAT, "kdf": self.kdf}
        if self.kdf == "scrypt":
            doc.update(salt=base64.b64encode(self.salt).decode(), n=self.n, r=self.r, p=self.p)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def new_scrypt_header(n: int, r: int = 8, p: int = 1) -> Header:
    """A fresh scrypt header with a random 16-byte salt."""
    return Header("scrypt", os.urandom(16), n, r, p)


def derive_key(header: Header, passphrase: str) -> bytes:
    """Stretch ``passphrase`` with the header's scrypt parameters."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    kdf = Scrypt(salt=header.salt, length=KEY_BYTES, n=header.n, r=header.r, p=header.p)
    return kdf.derive(passphrase.encode("utf-8"))


def parse_header(blob: bytes) -> tuple[Header, int]:
    """Read and bound-check the header. Returns it and the offset of the nonce.

    Raises:
        TamperedStore: wrong magic, oversized, unparsable or out-of-bounds header.
    """
    if not blob.startswith(MAGIC):
        raise TamperedStore("the local store file is not an impromptu-ops store "
                            "(bad magic: truncated, overwritten or another file)")
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise TamperedStore("the local store header is truncated or oversized")
    try:
        doc = json.loads(blob[len(MAGIC):end])
    except (UnicodeDecodeError, ValueError):
        raise TamperedStore("the local store header is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TamperedStore("the local store header has an unknown format version")
    kdf = doc.get("kdf")
    if kdf == "keyfile":
        header = Header("keyfile")
    elif kdf == "scrypt":
        try:
            salt = base64.b64decode(str(doc["salt"]), validate=True)
            n, r, p = int(doc["n"]), int(doc["r"]), int(doc["p"])
        except (KeyError, TypeError, ValueError):
            raise TamperedStore("the local store header has bad scrypt parameters") from None
        if not (len(salt) >= 16 and 2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0
                and 1 <= r <= MAX_SCRYPT_R and 1 <= p <= MAX_SCRYPT_P):
            raise TamperedStore("the local store header has out-of-bounds scrypt parameters")
        header = Header("scrypt", salt, n, r, p)
    else:
        raise TamperedStore("the local store header names an unknown key derivation")
    return header, end + 1


def seal(header: Header, key: bytes, body: bytes) -> bytes:
    """Encrypt ``body`` under ``key``; the magic and header are authenticated too."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    head = MAGIC + header.encode()
    nonce = os.urandom(NONCE_BYTES)
    return head + nonce + AESGCM(key).encrypt(nonce, body, head)


def unseal(blob: bytes, key: bytes, offset: int) -> bytes:
    """Decrypt and authenticate. ``offset`` comes from :func:`parse_header`.

    Raises:
        TamperedStore: truncated, modified, or encrypted under another key.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < offset + NONCE_BYTES + TAG_BYTES:
        raise TamperedStore("the local store file is truncated")
    nonce = blob[offset:offset + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[offset + NONCE_BYTES:], blob[:offset])
    except InvalidTag:
        raise TamperedStore(
            "the local store failed authentication: it was modified or truncated, "
            "or the key/passphrase is wrong",
            hint="restore the store file from a backup; it was NOT reset",
        ) from None
