"""The committed token artifact is exactly what the committed source compiles to."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from impromptu_ops.sandbox.contracts import build


def test_artifact_reproduces_from_source(monkeypatch: pytest.MonkeyPatch) -> None:
    solcjs = Path(os.environ.get("IMPROMPTU_TEST_SOLCJS") or build.solcjs_path())
    if not solcjs.exists():
        pytest.fail(f"solcjs not found at {solcjs}: run scripts/test (it installs solc@0.8.37)")
    doc = build.compile_token(solcjs)
    assert build.render(doc) == build.ARTIFACT.read_text(encoding="utf-8")
    artifact = build.load_artifact()
    names = {item.get("name") for item in artifact.abi}
    assert {"transfer", "decimals", "balanceOf", "Transfer"} <= names
    assert artifact.bytecode.startswith("0x") and artifact.compiler.startswith("solc 0.8.37")
