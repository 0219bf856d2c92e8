"""The skill package (contract §7): the published manifest and its files, and publishing.

Serves ``GET /api/impromptu.skill.json`` (the latest published manifest ``{name, version,
publishedAt, files: [{path, sha256, size, mode}], signature?}``; 404 before any publish)
and ``GET /api/skill/{version}/{path}`` (the file's bytes). File bytes live in the state's
content-addressed blobs.

``POST /_sandbox/skill/publish`` publishes a version::

    {version, name?, files: [{path, content | contentBase64, mode?}],
     manifest?: {extra members merged into the manifest},
     rawManifest?: any JSON, served verbatim instead of the built manifest,
     tamper?: [{path, content | contentBase64}]: bytes served for path instead of the ones
              the manifest describes (to test hash mismatches),
     signingKey?: Ed25519 seed (32 bytes, hex or base64): sign with
                  :func:`impromptu_ops.skillsign.signed` (canonical form documented there),
     latest?: true (false: publish without moving impromptu.skill.json)}

-> 201 ``{version, manifest, publicKey?}``. ``mode`` is served as given when a string (so a
test can publish a hostile one), or as a 4-digit octal string from an int; default
``"0644"``. Paths are not sanitised on purpose: the update gate must refuse hostile ones.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from impromptu_ops import contract, skillsign
from impromptu_ops.sandbox.faults import CONTROL_ROOT
from impromptu_ops.sandbox.router import (
    API_ROOT,
    ApiError,
    Request,
    Response,
    Router,
    validation,
)
from impromptu_ops.sandbox.state import State, iso, sha256_hex

DEFAULT_MODE = "0644"
OCTET = "application/octet-stream"


def _content(entry: dict[str, Any], where: str, cap: int) -> bytes:
    data: bytes
    if isinstance(entry.get("content"), str):
        data = entry["content"].encode("utf-8")
    elif isinstance(entry.get("contentBase64"), str):
        try:
            data = base64.b64decode(entry["contentBase64"], validate=True)
        except (binascii.Error, ValueError):
            raise validation({where: ["contentBase64 is not base64"]}) from None
    else:
        raise validation({where: ["needs content or contentBase64"]})
    if len(data) > cap:
        raise validation({where: [f"larger than {cap} bytes"]})
    return data


def _mode(value: Any, where: str) -> Any:
    if value is None:
        return DEFAULT_MODE
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise validation({where: ["mode must be an int or an octal string"]})
    return f"{value:04o}" if isinstance(value, int) else value


def _signing_key(text: Any) -> Ed25519PrivateKey:
    raw: bytes | None = None
    if isinstance(text, str):
        clean = text.strip()
        try:
            raw = bytes.fromhex(clean) if len(clean) == 64 else base64.b64decode(
                clean, validate=True)
        except (ValueError, binascii.Error):
            raw = None
    if raw is None or len(raw) != 32:
        raise validation({"signingKey": ["must be a 32-byte Ed25519 seed in hex or base64"]})
    return Ed25519PrivateKey.from_private_bytes(raw)


def install(router: Router, state: State) -> None:
    skill: dict[str, Any] = state.data["skill"]

    def publish(req: Request) -> Response:
        body = req.json_object()
        version = body.get("version")
        if not isinstance(version, str) or not version or "/" in version:
            raise validation({"version": ["required: a non-empty string without '/'"]})
        files = body.get("files", [])
        if not isinstance(files, list):
            raise validation({"files": ["must be a list"]})
        cap = state.config.max_skill_bytes
        blobs: dict[str, str] = {}
        entries: list[dict[str, Any]] = []
        for i, entry in enumerate(files):
            where = f"files[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise validation({where: ["needs a string path"]})
            data = _content(entry, where, cap)
            blobs[entry["path"]] = state.blob_put(data)
            entries.append({"path": entry["path"], "sha256": sha256_hex(data),
                            "size": len(data), "mode": _mode(entry.get("mode"), where)})
        served = dict(blobs)
        for i, entry in enumerate(body.get("tamper") or []):
            where = f"tamper[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                raise validation({where: ["needs a string path"]})
            served[entry["path"]] = state.blob_put(_content(entry, where, cap))
        manifest: dict[str, Any] = {"name": body.get("name", "impromptu"), "version": version,
                                    "publishedAt": iso(state.now()), "files": entries}
        extra = body.get("manifest") or {}
        if not isinstance(extra, dict):
            raise validation({"manifest": ["must be an object"]})
        manifest.update(extra)
        answer: dict[str, Any] = {"version": version}
        if body.get("signingKey") is not None:
            key = _signing_key(body["signingKey"])
            manifest = skillsign.signed(manifest, key)
            answer["publicKey"] = skillsign.public_key_text(key)
        record = {"manifest": manifest, "files": served,
                  "raw": body.get("rawManifest"), "hasRaw": "rawManifest" in body}
        skill["versions"][version] = record
        if body.get("latest", True):
            skill["latest"] = version
        answer["manifest"] = body["rawManifest"] if record["hasRaw"] else manifest
        return Response(201, answer)

    def manifest(req: Request) -> Response:
        latest = skill.get("latest")
        if latest is None:
            raise ApiError("NOT_FOUND", "no skill version is published")
        record = skill["versions"][latest]
        return Response(200, record["raw"] if record["hasRaw"] else record["manifest"])

    def skill_file(req: Request) -> Response:
        record = skill["versions"].get(req.params["version"])
        digest = record["files"].get(req.params["path"]) if record else None
        data = state.blob_get(digest) if digest else None
        if data is None:
            raise ApiError("NOT_FOUND", "no such skill file")
        return Response(200, raw=data, content_type=OCTET)

    router.add("POST", f"{CONTROL_ROOT}/skill/publish", publish)
    router.add("GET", f"{API_ROOT}{contract.MANIFEST_PATH}", manifest)
    router.add("GET", API_ROOT + contract.SKILL_FILE_PATH.replace("{path}", "{path:path}"),
               skill_file)
