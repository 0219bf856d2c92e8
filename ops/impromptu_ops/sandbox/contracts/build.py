"""Rebuild ``TestToken.json`` from ``TestToken.sol`` with the pinned npm ``solc`` (offline).

This module owns the one command that reproduces the committed artifact::

    python -m impromptu_ops.sandbox.contracts.build [--check]

It runs ``solcjs --standard-json`` (path from env ``IMPROMPTU_TEST_SOLCJS``, falling back to
``.cache/npm/node_modules/.bin/solcjs``; ``scripts/test`` installs solc@0.8.37 there) with a
fixed input: optimizer on (200 runs), EVM version ``cancun`` (what Base runs), and no
metadata hash, so the bytecode depends on the source and the compiler alone. ``--check``
compiles and compares with the committed artifact instead of writing it (exit 1 on a
difference). The sandbox only *reads* the artifact (:func:`load_artifact`); it never compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "TestToken.sol"
ARTIFACT = HERE / "TestToken.json"
CONTRACT = "TestToken"
SOLC_VERSION = "0.8.37"
EVM_VERSION = "cancun"


@dataclass(frozen=True)
class Artifact:
    """The compiled token: ABI and creation bytecode (``0x`` hex)."""

    abi: list[dict[str, Any]]
    bytecode: str
    compiler: str


def load_artifact(path: Path = ARTIFACT) -> Artifact:
    """Read the committed artifact."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return Artifact(abi=data["abi"], bytecode=data["bytecode"], compiler=data["compiler"])


def standard_input(source: str) -> dict[str, Any]:
    """The solc standard-JSON input: every setting that affects the bytecode, pinned."""
    return {
        "language": "Solidity",
        "sources": {"TestToken.sol": {"content": source}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": EVM_VERSION,
            "metadata": {"bytecodeHash": "none", "appendCBOR": False},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
        },
    }


def solcjs_path() -> Path:
    env = os.environ.get("IMPROMPTU_TEST_SOLCJS")
    if env:
        return Path(env)
    return HERE.parents[3] / ".cache" / "npm" / "node_modules" / ".bin" / "solcjs"


def compile_token(solcjs: Path | None = None) -> dict[str, Any]:
    """Compile the source and return the artifact document.

    Raises:
        RuntimeError: the compiler is missing, failed, or reported errors.
    """
    exe = solcjs or solcjs_path()
    if not exe.exists():
        raise RuntimeError(f"solcjs not found at {exe} (run scripts/test once to install it)")
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True,
                             check=True, timeout=120).stdout.strip()
    if not version.startswith(SOLC_VERSION):
        raise RuntimeError(f"solcjs {version} is not the pinned {SOLC_VERSION}")
    proc = subprocess.run([str(exe), "--standard-json"],
                          input=json.dumps(standard_input(SOURCE.read_text(encoding="utf-8"))),
                          capture_output=True, text=True, timeout=300, check=False)
    # solcjs prints a banner line before the JSON on some versions: parse from the first brace.
    text = proc.stdout[proc.stdout.find("{"):]
    try:
        output = json.loads(text)
    except json.JSONDecodeError:
        raise RuntimeError(f"solcjs failed: {proc.stderr.strip()[:500]}") from None
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors or proc.returncode != 0:
        raise RuntimeError("solc errors: " + "; ".join(e.get("message", "") for e in errors))
    contract = output["contracts"]["TestToken.sol"][CONTRACT]
    return {
        "contract": CONTRACT,
        "compiler": f"solc {version}",
        "evmVersion": EVM_VERSION,
        "reproduce": "python -m impromptu_ops.sandbox.contracts.build",
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    doc = compile_token()
    if "--check" in args:
        same = ARTIFACT.read_text(encoding="utf-8") == render(doc)
        print("artifact reproduces" if same else "artifact DIFFERS from the source build")
        return 0 if same else 1
    ARTIFACT.write_text(render(doc), encoding="utf-8")
    print(f"wrote {ARTIFACT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
