"""``impromptu-ops install``: the dry run shows exactly what a real run writes; folders are
private; the crontab keeps the operator's other lines; unsafe configurations are refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from impromptu_ops.schedule.install import merge_crontab
from impromptu_ops.settings import load_settings
from tests.fixtures_jobs import ops


def _dry_files(stdout: str) -> dict[str, str]:
    """The files a dry run announces, rebuilt from its indented content lines."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("would write "):
            path = line[len("would write "):].split(" (mode ")[0]
            current = files.setdefault(path, [])
        elif line.startswith("    ") and current is not None:
            current.append(line[4:])
        else:
            current = None
    return {p: "\n".join(lines) + "\n" for p, lines in files.items()}


def test_dry_run_is_exactly_what_install_writes(tmp_path: Path) -> None:
    out = tmp_path / "units"
    dry = ops("install", "--scheduler", "systemd", "--scope", "user", "--output", str(out),
              "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.rstrip().endswith("dry run: nothing was changed")
    settings = load_settings()
    assert not out.exists() and not settings.paths.state_dir.exists()  # nothing changed
    announced = _dry_files(dry.stdout)
    assert sorted(Path(p).name for p in announced) == sorted(
        f"impromptu-{job}.{kind}" for job in ("heartbeat", "rotate", "reconcile", "health")
        for kind in ("service", "timer"))
    assert "validation: systemd-analyze verify passed" in dry.stdout

    real = ops("install", "--scheduler", "systemd", "--scope", "user", "--output", str(out))
    assert real.returncode == 0, real.stderr
    for path, content in announced.items():
        assert Path(path).read_text() == content
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o644
    for folder in (settings.paths.config_dir, settings.paths.data_dir, settings.paths.state_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert "next: systemctl --user daemon-reload" in real.stdout
    assert "impromptu-reconcile.timer impromptu-health.timer" in real.stdout
    assert "store: the platform key is missing" in real.stdout


def test_user_units_go_to_the_xdg_folder(tmp_path: Path) -> None:
    proc = ops("install", "--scheduler", "systemd", "--scope", "user")
    assert proc.returncode == 0, proc.stderr
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd/user/impromptu-heartbeat.timer"
    assert "Persistent=true" in unit.read_text()


def test_loose_folder_is_tightened() -> None:
    state = load_settings().paths.state_dir
    state.mkdir(parents=True, mode=0o755)
    state.chmod(0o755)
    assert ops("install", "--scheduler", "kubernetes").returncode == 0
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def _fake_crontab(tmp_path: Path) -> tuple[dict[str, str], Path]:
    table = tmp_path / "crontab.txt"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "crontab"
    script.write_text(f"""#!/bin/sh
if [ "$1" = "-l" ]; then
  [ -f {table} ] || {{ echo "no crontab for $USER" >&2; exit 1; }}
  cat {table}
elif [ "$1" = "-" ]; then
  cat > {table}
fi
""")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, table


def test_crontab_keeps_other_lines_and_stays_single(tmp_path: Path) -> None:
    env, table = _fake_crontab(tmp_path)
    assert ops("install", "--scheduler", "cron", env=env).returncode == 0
    first = table.read_text()
    table.write_text("MAILTO=ops@example.org\n0 3 * * * /usr/local/bin/backup\n" + first)
    assert ops("install", "--scheduler", "cron", env=env).returncode == 0
    lines = table.read_text().splitlines()
    assert lines[:2] == ["MAILTO=ops@example.org", "0 3 * * * /usr/local/bin/backup"]
    ours = [ln for ln in lines if ln.endswith("# impromptu-heartbeat")]
    assert len(ours) == 1 and "flock -n -E 75" in ours[0]
    assert len([ln for ln in lines if " # impromptu-" in ln]) == 4  # one line per job


def test_merge_crontab_pure() -> None:
    line = "1,31 * * * * x # impromptu-heartbeat"
    assert merge_crontab("", line) == line + "\n"
    assert merge_crontab("a\n0 1 * * * old # impromptu-heartbeat\nb\n", line) == (
        f"a\nb\n{line}\n")
    two = f"{line}\n3 4 * * 1 y # impromptu-reconcile\n"
    assert merge_crontab("0 1 * * * z # impromptu-reconcile\nc\n", two) == f"c\n{two}"


def test_vault_token_in_env_is_refused_one_line() -> None:
    proc = ops("install", "--scheduler", "systemd", "--dry-run",
               env={"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "hvs." + "x" * 30})
    assert proc.returncode == 78
    assert proc.stdout == "" and proc.stderr.count("\n") == 1
    assert "x" * 30 not in proc.stderr


def test_launchd_and_kubernetes_dry_runs() -> None:
    plist = ops("install", "--scheduler", "launchd", "--dry-run")
    assert plist.returncode == 0 and "<key>StartInterval</key>" in plist.stdout
    k8s = ops("install", "--scheduler", "kubernetes", "--dry-run")
    assert k8s.returncode == 0 and 'concurrencyPolicy: "Forbid"' in k8s.stdout


def test_unwritable_target_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = ops("install", "--scheduler", "launchd", "--output", str(blocker / "sub"))
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.count("\n") == 1 and "cannot create" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_install_offers_the_secrets_scan_fix() -> None:
    from impromptu_ops.store.factory import open_store

    key = "impr_sk_" + "Q" * 40
    rc = Path(os.environ["HOME"]) / ".bashrc"
    rc.write_text(f"alias ll='ls -l'\nexport IMPROMPTU_API_KEY={key}\n")
    asked = ops("install", "--scheduler", "kubernetes")  # not a TTY: reports, fixes nothing
    assert asked.returncode == 0, asked.stderr
    assert ".bashrc:2" in asked.stdout and key not in asked.stdout + asked.stderr
    assert "secrets scan --fix" in asked.stderr and key in rc.read_text()
    fixed = ops("install", "--scheduler", "kubernetes", "--yes")
    assert fixed.returncode == 0, fixed.stderr
    assert "moved 1 key(s) into the store" in fixed.stdout
    assert key not in rc.read_text()
    assert open_store(load_settings()).read("impromptu-api-key").value().reveal() == key


def test_dry_run_is_exactly_what_install_writes_for_launchd_and_kubernetes(
        tmp_path: Path) -> None:
    for scheduler in ("launchd", "kubernetes"):
        out = tmp_path / scheduler
        dry = ops("install", "--scheduler", scheduler, "--output", str(out), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        announced = _dry_files(dry.stdout)
        assert len(announced) == {"launchd": 4, "kubernetes": 7}[scheduler]
        assert not out.exists()
        real = ops("install", "--scheduler", scheduler, "--output", str(out))
        assert real.returncode == 0, real.stderr
        assert sorted(str(p) for p in out.iterdir()) == sorted(announced)
        for path, content in announced.items():
            assert Path(path).read_text() == content


def test_cron_dry_run_shows_exactly_the_lines_installed(tmp_path: Path) -> None:
    env, table = _fake_crontab(tmp_path)
    dry = ops("install", "--scheduler", "cron", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    at = lines.index("would replace the impromptu-* lines of your crontab with:")
    shown = [ln[4:] for ln in lines[at + 1:at + 5]]
    assert not table.exists()  # the dry run wrote no crontab
    assert ops("install", "--scheduler", "cron", env=env).returncode == 0
    assert table.read_text().splitlines() == shown
