"""Private: Ed25519 signatures over the skill manifest: one canonical encoding, shared by all.

The sandbox signs the manifests it serves and the update gate verifies them; both call the
functions here so that they can never disagree on what the signed bytes are.

Signed bytes (contract §7, [ours]): the manifest object without its top-level
``signature`` key, encoded as JSON with sorted keys, no whitespace (``","`` and ``":"``
separators), UTF-8 with no ASCII escaping, and no floats (a float has no canonical text;
the manifest needs none). ``signature`` is the standard base64 of the 64-byte Ed25519
signature. A publisher key is the raw 32-byte public key, written as 64 hex digits or as
standard base64.

This module is pure: it owns the encoding, signing and verification, not where keys or
manifests are kept (the sandbox holds its signing key; the operator pins the public key in
``settings.gate.publisher_key``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from impromptu_ops.errors import ConfigError, IntegrityError

SIGNATURE_FIELD: Final = "signature"
_RAW_KEY_BYTES: Final = 32
_SIGNATURE_BYTES: Final = 64


def _reject_floats(value: Any, where: str = "manifest") -> None:
    if isinstance(value, float):
        raise IntegrityError(f"{where}: floats have no canonical form; refusing to sign/verify")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise IntegrityError(f"{where}: non-string key")
            _reject_floats(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _reject_floats(v, f"{where}[{i}]")


def canonical_bytes(manifest: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed: the manifest without ``signature``, canonical JSON.

    Raises:
        IntegrityError: the manifest holds a float or a non-string key.
    """
    body = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    _reject_floats(body)
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign(manifest: Mapping[str, Any], private_key: Ed25519PrivateKey) -> str:
    """The base64 signature of :func:`canonical_bytes` of ``manifest``."""
    return base64.b64encode(private_key.sign(canonical_bytes(manifest))).decode("ascii")


def signed(manifest: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``manifest`` with its ``signature`` field set (any old one replaced)."""
    out = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    out[SIGNATURE_FIELD] = sign(out, private_key)
    return out


def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The pinnable text form (64 hex digits) of a public key (or of a private key's)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a pinned publisher key: 64 hex digits or base64 of the raw 32 bytes.

    Raises:
        ConfigError: the text is neither form of a 32-byte key.
    """
    raw: bytes | None = None
    text = text.strip()
    if len(text) == 2 * _RAW_KEY_BYTES:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != _RAW_KEY_BYTES:
        raise ConfigError(
            "setting gate.publisher_key is not an Ed25519 public key",
            hint="give the raw 32-byte key as 64 hex digits or base64",
        )
    return Ed25519PublicKey.from_public_bytes(raw)


def verify(manifest: Mapping[str, Any], public_key: Ed25519PublicKey) -> None:
    """Check the manifest's ``signature`` against a pinned key.

    Raises:
        IntegrityError: the signature is missing, malformed or does not verify.
    """
    sig = manifest.get(SIGNATURE_FIELD)
    if sig is None:
        raise IntegrityError(
            "the manifest is not signed, but a publisher key is pinned",
            hint="refusing the update; ask the publisher, or unpin gate.publisher_key",
        )
    if not isinstance(sig, str):
        raise IntegrityError("the manifest signature is not a base64 string")
    try:
        raw = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("the manifest signature is not valid base64") from None
    if len(raw) != _SIGNATURE_BYTES:
        raise IntegrityError("the manifest signature has the wrong length")
    try:
        public_key.verify(raw, canonical_bytes(manifest))
    except InvalidSignature:
        raise IntegrityError(
            "the manifest signature does not verify against the pinned publisher key",
            hint="the manifest was altered or signed by someone else; refusing the update",
        ) from None
