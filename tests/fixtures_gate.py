"""Update-gate fixtures: skill packages (benign and hostile) and an isolated gate.

- :data:`BENIGN_V1`, :data:`BENIGN_V2`: a small skill in two releases (SKILL.md, HEARTBEAT.md,
  heartbeat.sh, install.sh, impromptu-health.sh; v2 changes, adds, removes and re-modes).
- :func:`write_package`: a folder holding ``impromptu.skill.json`` and the files, with the
  manifest computed from the files (optionally signed, optionally with extra keys).
- ``gate_env``: a skill folder and a private copy of the policy in ``tmp_path``, the env
  vars the CLI reads (``IMPROMPTU_GATE_SKILL_DIR``, ``IMPROMPTU_GATE_POLICY_FILE``), and
  helpers: ``gate()``, ``pkg()``, ``install()`` (fetch/approve/apply through the library),
  ``snapshot()`` (every byte and mode of the installed versions, their records and the
  ``current`` link: what "the installed tree is byte-identical" compares).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from impromptu_ops import skillsign
from impromptu_ops.gate.gate import UpdateGate
from impromptu_ops.gate.review import Review
from impromptu_ops.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
POLICY_FILE = REPO / "policies" / "update-gate.toml"

Files = dict[str, tuple[bytes, int]]

BENIGN_V1: Files = {
    "SKILL.md": (
        b"# Impromptu\n\nYou design conversations: the content field becomes a system prompt.\n"
        b"Never share your API key. Store it in a secrets manager.\n", 0o644),
    "HEARTBEAT.md": (
        b"# Heartbeat\n\nEvery 4 hours, check notifications and budget, then reply to one\n"
        b"thread that interests you.\n", 0o644),
    "heartbeat.sh": (
        b"#!/bin/sh\nset -eu\n"
        b'curl -fsS -H "Authorization: Bearer $IMPROMPTU_API_KEY" '
        b"https://impromptusocial.ai/api/v1/agent/heartbeat\n", 0o755),
    "install.sh": (
        b"#!/bin/sh\nset -eu\nmkdir -p \"$HOME/.impromptu\"\n"
        b"echo 'Register with: impromptu-ops register'\n", 0o755),
    "impromptu-health.sh": (
        b"#!/bin/sh\ncurl -fsS https://impromptusocial.ai/api/health >/dev/null && echo OK\n",
        0o755),
}

BENIGN_V2: Files = {
    "SKILL.md": (
        BENIGN_V1["SKILL.md"][0] + b"\n## Budget\n\nActions cost budget; it regenerates hourly.\n",
        0o644),
    "HEARTBEAT.md": BENIGN_V1["HEARTBEAT.md"],
    "heartbeat.sh": (
        BENIGN_V1["heartbeat.sh"][0]
        + b'curl -fsS -H "Authorization: Bearer $IMPROMPTU_API_KEY" '
          b"https://impromptusocial.ai/api/v1/agent/budget\n", 0o755),
    "impromptu-health.sh": (BENIGN_V1["impromptu-health.sh"][0], 0o700),
    "docs/CHANGELOG.md": (b"# 1.1.0\n\n- heartbeat also reads the budget\n- install.sh "
                          b"removed: use impromptu-ops\n", 0o644),
}


def manifest_for(version: str, files: Files, *, published_at: str = "2026-01-01T00:00:00Z",
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "name": "impromptu", "version": version, "publishedAt": published_at,
        "files": [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d),
                   "mode": f"{m:04o}"} for p, (d, m) in sorted(files.items())],
    }
    manifest.update(extra or {})
    return manifest


def write_package(dest: Path, version: str, files: Files, *,
                  published_at: str = "2026-01-01T00:00:00Z",
                  extra: Mapping[str, Any] | None = None,
                  key: Ed25519PrivateKey | None = None) -> Path:
    """Write a package folder; returns it."""
    dest.mkdir(parents=True)
    for path, (data, mode) in files.items():
        target = dest / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)
    manifest = manifest_for(version, files, published_at=published_at, extra=extra)
    if key is not None:
        manifest = skillsign.signed(manifest, key)
    (dest / "impromptu.skill.json").write_text(json.dumps(manifest, indent=1))
    return dest


@dataclass
class GateEnv:
    tmp: Path
    skill_dir: Path
    policy_file: Path
    monkeypatch: pytest.MonkeyPatch
    _n: int = 0

    def settings_overrides(self) -> dict[str, Any]:
        return {"gate.skill_dir": self.skill_dir, "gate.policy_file": self.policy_file}

    def gate(self, **more: Any) -> UpdateGate:
        """A fresh gate with the current env (a pinned key set by ``pin`` applies)."""
        return UpdateGate(load_settings({**self.settings_overrides(), **more}))

    def pin(self, key: Ed25519PrivateKey) -> None:
        self.monkeypatch.setenv("IMPROMPTU_GATE_PUBLISHER_KEY", skillsign.public_key_text(key))

    def pkg(self, version: str, files: Files, **kw: Any) -> Path:
        self._n += 1
        return write_package(self.tmp / f"pkg{self._n}-{version}", version, files, **kw)

    def install(self, version: str, files: Files, **kw: Any) -> Review:
        """fetch -> approve (--yes --digest) -> apply a benign package; the review."""
        gate = self.gate()
        rev = gate.fetch(str(self.pkg(version, files, **kw)))
        gate.approve(digest=rev.digest)
        gate.apply()
        return rev

    def current_tree(self) -> dict[str, tuple[bytes, int]]:
        root = self.skill_dir / "current"
        out = {}
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = (p.read_bytes(), p.stat().st_mode & 0o777)
        return out

    def snapshot(self) -> dict[str, Any]:
        """Everything that makes up the installed skill, byte for byte."""
        snap: dict[str, Any] = {}
        link = self.skill_dir / "current"
        snap["current"] = os.readlink(link) if link.is_symlink() else None
        for sub in ("versions", "meta"):
            base = self.skill_dir / sub
            if not base.exists():
                continue
            for p in sorted(base.rglob("*")):
                st = p.lstat()
                rel = f"{sub}/{p.relative_to(base).as_posix()}"
                snap[rel] = (p.read_bytes() if p.is_file() else b"<dir>", st.st_mode)
        snap["tree"] = self.current_tree() if snap["current"] else {}
        return snap


@pytest.fixture
def gate_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GateEnv:
    policy = tmp_path / "policy" / "update-gate.toml"
    policy.parent.mkdir()
    shutil.copyfile(POLICY_FILE, policy)
    skill_dir = tmp_path / "skill"
    monkeypatch.setenv("IMPROMPTU_GATE_SKILL_DIR", str(skill_dir))
    monkeypatch.setenv("IMPROMPTU_GATE_POLICY_FILE", str(policy))
    return GateEnv(tmp_path, skill_dir, policy, monkeypatch)
