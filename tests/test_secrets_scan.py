"""``secrets scan``: finds keys in a fixture home directory; ``--fix`` leaves no plaintext.

The fixture home holds the places operators really put keys: shell rc files, the
original installer's ``~/.impromptu/env``, a project ``.env``, a crontab line and a
systemd unit, plus lines that must NOT be reported (references such as ``$(...)``).
Hypothesis checks the pure core: any inserted key is found, and the rewrite of a line
never keeps a value it moved.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.cli.main import run
from impromptu_ops.secretscan import find_in_text, rewrite
from impromptu_ops.store.local import LocalStore

PLATFORM = "impr_sk_" + "Pl4tf0rmKey_" * 3 + "abcd"
OPENROUTER = "sk-or-v1-" + "0123456789abcdef" * 4
PROVISIONING = "sk-or-v1-" + "fedcba9876543210" * 4
WALLET = "0x" + "4f" * 32
ALL = (PLATFORM, OPENROUTER, PROVISIONING, WALLET)


def _home(home: Path, project: Path) -> dict[Path, int]:
    """Write the fixture files; return {file: expected number of findings}."""
    files = {
        home / ".bashrc": (f"alias ll='ls -l'\nexport IMPROMPTU_API_KEY={PLATFORM}\n"
                           "export PATH=$PATH:~/bin\n"
                           "export IMPROMPTU_API_KEY=$(impromptu-ops secrets get x)\n", 1),
        home / ".zshrc": (f'export OPENROUTER_API_KEY="{OPENROUTER}"  # from the dashboard\n',
                          1),
        home / ".profile": ("# nothing secret here\nexport EDITOR=vi\n", 0),
        home / ".impromptu" / "env": (f"IMPROMPTU_API_KEY={PLATFORM}\n"
                                      f"OPENROUTER_PROVISIONING_KEY='{PROVISIONING}'\n", 2),
        project / ".env": (f"WALLET_PRIVATE_KEY={WALLET}\nDEBUG=1\n", 1),
        home / "crontab": (f"*/30 * * * * IMPROMPTU_API_KEY={PLATFORM} ~/bin/heartbeat.sh\n",
                           1),
        home / ".config" / "systemd" / "user" / "agent.service": (
            "[Service]\nExecStart=/usr/bin/agent\n"
            f"Environment=OPENROUTER_API_KEY={OPENROUTER}\n", 1),
    }
    for path, (text, _) in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o640)
    return {p: n for p, (_, n) in files.items()}


@pytest.fixture
def fixture_home(isolated_home: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, dict[Path, int]]:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return isolated_home, project, _home(isolated_home, project)


def _plaintext_left(*roots: Path) -> list[str]:
    hits = []
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                data = (Path(dirpath) / f).read_bytes()
                hits += [f"{dirpath}/{f}" for v in ALL if v.encode() in data]
    return hits


def test_scan_reports_file_line_masked(fixture_home: tuple[Path, Path, dict[Path, int]],
                                       capsys: pytest.CaptureFixture[str]) -> None:
    home, project, _ = fixture_home
    code = run(["secrets", "scan", "--no-system", "--json"])
    out = capsys.readouterr().out
    assert code == 1
    for value in ALL:
        assert value not in out
    import json

    findings = json.loads(out)["findings"]
    where = sorted(f["where"] for f in findings)
    assert f"{home / '.bashrc'}:2" in where
    assert f"{home / '.impromptu' / 'env'}:2" in where
    assert f"{project / '.env'}:1" in where
    # crontab is not a default location in a home; systemd user units are
    assert any(".config/systemd/user/agent.service:3" in w for w in where)
    assert not any(w.startswith(str(home / ".profile")) for w in where)
    names = {f["name"] for f in findings}
    assert names == {"impromptu-api-key", "openrouter-api-key", "openrouter-provisioning-key",
                     "wallet-private-key"}
    assert all("****" in f["value"] for f in findings)


def test_scan_explicit_paths_include_crontab(fixture_home: tuple[Path, Path, dict[Path, int]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    home, _, _ = fixture_home
    assert run(["secrets", "scan", str(home / "crontab")]) == 1
    assert f"{home / 'crontab'}:1" in capsys.readouterr().out


def test_fix_leaves_no_plaintext(fixture_home: tuple[Path, Path, dict[Path, int]],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    home, project, expected = fixture_home
    targets = [str(p) for p in expected]
    code = run(["secrets", "scan", "--fix", *targets])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert _plaintext_left(home, project) == []
    for value in ALL:
        assert value not in out + err
    # values are in the store, files keep their mode, lines became masked comments
    store = LocalStore(home / ".local/share/impromptu-ops/secrets.store",
                       home / ".config/impromptu-ops/store.key")
    assert store.read("impromptu-api-key").value().reveal() == PLATFORM
    assert store.read("openrouter-api-key").value().reveal() == OPENROUTER
    assert store.read("openrouter-provisioning-key").value().reveal() == PROVISIONING
    assert store.read("wallet-private-key").value().reveal() == WALLET
    for path in expected:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    bashrc = (home / ".bashrc").read_text().splitlines()
    assert bashrc[0] == "alias ll='ls -l'"
    assert bashrc[1].startswith("# impromptu-ops: moved to the secret store as "
                                "impromptu-api-key")
    assert "impr_sk_****" in bashrc[1]
    assert bashrc[3] == "export IMPROMPTU_API_KEY=$(impromptu-ops secrets get x)"
    # the backups are in the store (encrypted), restorable, and name their file
    backups = store.list("_scan-backup/")
    assert len(backups) == len([p for p, n in expected.items() if n])
    meta = {store.metadata(b).custom["path"] for b in backups}
    assert str(home / ".bashrc") in meta
    # a second scan is clean
    assert run(["secrets", "scan", *targets]) == 0


def test_fix_keeps_a_line_whose_store_value_differs(
        fixture_home: tuple[Path, Path, dict[Path, int]],
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    home, _, _ = fixture_home
    newer = "impr_sk_" + "N" * 40
    monkeypatch.setattr(sys, "stdin", io.StringIO(newer))
    assert run(["secrets", "put", "impromptu-api-key"]) == 0
    code = run(["secrets", "scan", "--fix", str(home / ".bashrc")])
    err = capsys.readouterr().err
    assert code == 1 and "different impromptu-api-key" in err
    assert PLATFORM in (home / ".bashrc").read_text()  # not lost, not overwritten
    store = LocalStore(home / ".local/share/impromptu-ops/secrets.store",
                       home / ".config/impromptu-ops/store.key")
    assert store.read("impromptu-api-key").value().reveal() == newer


def test_fix_follows_a_symlinked_rc_file(fixture_home: tuple[Path, Path, dict[Path, int]],
                                         tmp_path: Path) -> None:
    home, _, _ = fixture_home
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "zshrc"
    real.write_text((home / ".zshrc").read_text())
    (home / ".zshrc").unlink()
    (home / ".zshrc").symlink_to(real)
    assert run(["secrets", "scan", "--fix", str(home / ".zshrc")]) == 0
    assert (home / ".zshrc").is_symlink()
    assert OPENROUTER not in real.read_text()


def test_unnamed_tokens_are_reported_not_moved(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rc = tmp_path / "rc"
    token = "hvs." + "T0ken" * 6
    rc.write_text(f"export VAULT_TOKEN={token}\n")
    assert run(["secrets", "scan", "--fix", str(rc)]) == 1
    out, err = capsys.readouterr()
    assert "vault-token" in err and "by hand" in err and token not in out + err
    assert rc.read_text() == f"export VAULT_TOKEN={token}\n"


_KEYS = st.one_of(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=40,
            max_size=40).map(lambda s: "impr_sk_" + s),
    st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda s: "sk-or-v1-" + s),
)
_NOISE = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"
                               "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=40)


@settings(max_examples=200, deadline=None)
@given(key=_KEYS, before=_NOISE, after=_NOISE,
       env=st.sampled_from(["", "IMPROMPTU_API_KEY=", "export OPENROUTER_API_KEY=\""]))
def test_any_key_in_any_line_is_found_and_rewritten_away(key: str, before: str, after: str,
                                                         env: str) -> None:
    line = f"{before} {env}{key} {after}"
    text = f"first line\n{line}\nlast line\n"
    findings = find_in_text(text, Path("f"))
    assert any(f.line == 2 and f.value.reveal() == key for f in findings)
    moved = [f for f in findings if f.name is not None]
    assert moved
    result = rewrite(text, moved, "test")
    assert key not in result
    assert result.splitlines()[0] == "first line" and result.splitlines()[2] == "last line"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_scanner_never_crashes_on_hostile_text(text: str) -> None:
    findings = find_in_text(text, Path("f"))
    moved = [f for f in findings if f.name is not None]
    result = rewrite(text, moved, "n")
    for f in moved:
        assert f.value.reveal() not in result



def test_fix_reports_a_file_it_cannot_rewrite_and_goes_on(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from impromptu_ops import atomic

    rc = tmp_path / "rc"
    rc.write_text(f"export IMPROMPTU_API_KEY={PLATFORM}\n")
    other = tmp_path / "other"
    other.write_text(f"export OPENROUTER_API_KEY={OPENROUTER}\n")
    real_write = atomic.write_bytes

    def refuse_rc(path: Path, data: bytes, mode: int = 0o600) -> None:
        if path == rc.resolve():  # fault injection: as for a file in a read-only folder
            raise PermissionError(13, "Permission denied")
        real_write(path, data, mode)

    monkeypatch.setattr(atomic, "write_bytes", refuse_rc)
    code = run(["secrets", "scan", "--fix", str(rc), str(other)])
    err = capsys.readouterr().err
    assert code == 1 and "cannot be rewritten" in err and "by hand" in err
    assert PLATFORM in rc.read_text()  # untouched, and reported
    assert OPENROUTER not in other.read_text()  # the other file was still fixed


def test_a_named_path_that_does_not_exist_is_an_error_not_a_clean_scan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["secrets", "scan", str(tmp_path / "typo.bashrc")])
    out, err = capsys.readouterr()
    assert code == 65 and out == "" and err.count("\n") == 1 and "no such file" in err
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\0\1\2" + PLATFORM.encode())
    code = run(["secrets", "scan", "--json", str(blob)])
    out, err = capsys.readouterr()
    assert code == 0 and f"skipped {blob}" in err and PLATFORM not in out + err
    assert '"skipped": [{"path"' in out
