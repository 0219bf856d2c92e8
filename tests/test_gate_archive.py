"""A truncated or corrupt archive given to ``update fetch`` is malformed input: exit 65,
one line on stderr, a ``fetch-refused`` entry in the audit log, the installed skill intact.

Before the fix, gzip and lzma raised ``EOFError`` on an archive that ends early; click
reads ``EOFError`` as "aborted" and the command exited 130 with nothing in the audit log.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from impromptu_ops.cli.main import run
from impromptu_ops.errors import IntegrityError
from tests.fixtures_gate import BENIGN_V1, BENIGN_V2, GateEnv, manifest_for


def tarball(dest: Path, mode: str) -> Path:
    manifest = json.dumps(manifest_for("1.1.0", BENIGN_V2)).encode()
    with tarfile.open(dest, mode) as tar:  # type: ignore[call-overload]  # mode is a str here
        for name, data in [("impromptu.skill.json", manifest),
                           *((p, d) for p, (d, _m) in sorted(BENIGN_V2.items()))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


@pytest.mark.parametrize(("suffix", "mode"), [("tar.gz", "w:gz"), ("tar.xz", "w:xz"),
                                              ("tar.bz2", "w:bz2")])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_archive_is_malformed_input(gate_env: GateEnv, suffix: str, mode: str,
                                               keep: float,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    gate_env.install("1.0.0", BENIGN_V1)
    whole = tarball(gate_env.tmp / f"whole.{suffix}", mode)
    assert gate_env.gate().source(str(whole)).fetch(gate_env.gate().caps, 1 << 20)
    cut = gate_env.tmp / f"cut.{suffix}"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    before = gate_env.snapshot()

    with pytest.raises(IntegrityError, match=r"malformed archive|not a readable tar"):
        gate_env.gate().fetch(str(cut))
    capsys.readouterr()
    rc = run(["update", "fetch", str(cut)])
    _out, err = capsys.readouterr()
    assert rc == 65, (rc, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert gate_env.snapshot() == before
    events = [e["event"] for e in gate_env.gate().audit.entries()]
    assert events[-2:] == ["fetch-refused", "fetch-refused"]
    assert gate_env.gate().audit.verify().ok
