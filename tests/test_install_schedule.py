"""Schedule generation: systemd (verified by systemd-analyze), cron, launchd, Kubernetes."""

from __future__ import annotations

import json
import plistlib
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from impromptu_ops.errors import ConfigError
from impromptu_ops.schedule import generate, validate
from impromptu_ops.schedule.spec import ScheduleSpec, build_spec, stable_offset
from impromptu_ops.settings import load_settings

EXE = shutil.which("true") or "/bin/true"  # systemd-analyze checks that ExecStart exists


def _spec(tmp_path: Path, scope: str = "user", env: dict[str, str] | None = None,
          more: dict[str, Any] | None = None) -> ScheduleSpec:
    s = load_settings({"paths.state_dir": tmp_path / "state", "paths.config_dir":
                       tmp_path / "cfg", "paths.data_dir": tmp_path / "data", **(more or {})},
                      env=env or {})
    return build_spec(s, (EXE,), seed="alice@host", scope=scope, user="impromptu")


def _keys(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for body in validate.parse_unit(unit).values():
        for k, v in body:
            out.setdefault(k, []).append(v)
    return out


@pytest.mark.parametrize("scope", ["user", "system"])
def test_systemd_units_are_hardened_and_verified(tmp_path: Path, scope: str) -> None:
    files = generate.render(_spec(tmp_path, scope), "systemd")
    svc = _keys(files["impromptu-heartbeat.service"].decode())
    timer = _keys(files["impromptu-heartbeat.timer"].decode())
    assert svc["SuccessExitStatus"] == ["75"]
    assert svc["TimeoutStartSec"] == ["300"]  # the 240 s deadline + margin
    assert svc["LoadCredential"] == [f"impromptu-store-key:{tmp_path}/cfg/store.key"]
    assert "IMPROMPTU_STORE_LOCAL_KEY_FILE=%d/impromptu-store-key" in " ".join(
        svc["Environment"])
    assert "EnvironmentFile" not in svc
    assert svc["NoNewPrivileges"] == ["yes"] and svc["UMask"] == ["0077"]
    assert ("ProtectSystem" in svc) is (scope == "system")
    assert timer["OnCalendar"] == ["*-*-* *:00/30:00"]
    assert timer["Persistent"] == ["true"] and timer["FixedRandomDelay"] == ["true"]
    notes = validate.validate(files)
    if shutil.which("systemd-analyze"):
        assert "systemd-analyze verify passed" in notes
    else:  # pragma: no cover - this machine has it; say so when it does not
        assert "systemd-analyze not installed: structural checks only" in notes


def test_systemd_analyze_catches_what_we_get_wrong(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed (structural checks are tested below)")
    files = dict(generate.render(_spec(tmp_path), "systemd"))
    svc = files["impromptu-heartbeat.service"].decode()
    files["impromptu-heartbeat.service"] = svc.replace("Type=oneshot",
                                                       "Type=oneshot\nFrobnicate=yes").encode()
    with pytest.raises(ConfigError, match="Frobnicate"):
        validate.validate(files)


@pytest.mark.parametrize(("old", "new", "why"), [
    ("SuccessExitStatus=75", "SuccessExitStatus=0", "SuccessExitStatus=75"),
    ("Persistent=true", "Persistent=false", "Persistent=true"),
    ("UMask=0077", "EnvironmentFile=/etc/impromptu.env", "EnvironmentFile"),
    ("TimeoutStartSec=300", "", "TimeoutStartSec"),
])
def test_structural_rules(tmp_path: Path, old: str, new: str, why: str) -> None:
    files = {n: d.decode().replace(old, new).encode()
             for n, d in generate.render(_spec(tmp_path), "systemd").items()}
    assert any(why in p for p in validate.structural_problems(files))


def test_vault_token_from_env_cannot_be_scheduled(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Vault token from the environment") as info:
        _spec(tmp_path, env={"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "hvs.x"})
    assert "AppRole" in info.value.diagnostics()
    spec = _spec(tmp_path, env={"VAULT_ADDR": "http://127.0.0.1:8200"},
                 more={"store.vault_role_id": "role-1",
                    "store.vault_secret_id_file": tmp_path / "sid"})
    svc = generate.systemd_service(spec)
    assert f"LoadCredential=vault-secret-id:{tmp_path}/sid" in svc
    assert "IMPROMPTU_STORE_VAULT_SECRET_ID_FILE=%d/vault-secret-id" in svc
    assert "IMPROMPTU_STORE_VAULT_ROLE_ID=role-1" in svc
    assert "VAULT_TOKEN" not in svc


def test_execstart_quoting(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    odd = ScheduleSpec(**{**spec.__dict__, "argv": ("/opt/my dir/x", "100%", "$HOME", 'a"b')})
    line = next(ln for ln in generate.systemd_service(odd).splitlines()
                if ln.startswith("ExecStart="))
    assert line == 'ExecStart="/opt/my dir/x" 100%% $$HOME "a\\"b"'


def test_crontab_line(tmp_path: Path) -> None:
    spec = _spec(tmp_path, more={"jobs.metrics_file": tmp_path / "tf/x%y.prom"})
    line = generate.crontab_line(spec)
    minute = stable_offset("alice@host", 30)
    assert line.startswith(f"{minute},{minute + 30} * * * * ")
    assert f"flock -n -E 75 {tmp_path}/state/heartbeat.cron.lock timeout -k 10 300 " in line
    assert "x\\%y.prom" in line and not re.search(r"(?<!\\)%", line)
    # what the shell runs after cron un-escapes %: the heartbeat with our arguments, a
    # skipped run exiting 0 (cron would mail or log any other code as a failure)
    words = shlex.split(line.replace("\\%", "%").split(" * * * * ", 1)[1].split(" >>")[0])
    assert words[-7:] == [EXE, "heartbeat", "--json", "--metrics-file",
                          f"{tmp_path}/tf/x%y.prom", "--skipped-exit-code", "0"]
    assert validate.structural_problems({"crontab": (line + "\n").encode()}) == []


@given(st.text(min_size=1, max_size=30))
@settings(max_examples=50)
def test_offsets_are_stable_and_in_range(seed: str) -> None:
    a = stable_offset(seed, 30)
    assert a == stable_offset(seed, 30) and 0 <= a < 30


def test_launchd_plist(tmp_path: Path) -> None:
    data = generate.render(_spec(tmp_path), "launchd")["ai.impromptu.heartbeat.plist"]
    doc = plistlib.loads(data)
    assert doc["StartInterval"] == 1800 and doc["ProgramArguments"][1:] == [
        "heartbeat", "--json", "--skipped-exit-code", "0"]
    assert doc["EnvironmentVariables"]["IMPROMPTU_STORE_LOCAL_KEY_FILE"].endswith("store.key")
    assert doc["Umask"] == 0o077
    assert validate.validate({"x.plist": data})


# A parser for exactly the YAML subset to_yaml emits (block maps/lists, JSON scalars), so the
# test does not trust the emitter to check itself.
def _parse_yaml(text: str) -> Any:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    pos = 0

    def block(indent: int) -> Any:
        nonlocal pos
        if lines[pos].startswith(" " * indent + "- "):
            items: list[Any] = []
            while pos < len(lines) and lines[pos].startswith(" " * indent + "- "):
                rest = lines[pos][indent + 2:]
                if rest.startswith("- ") or re.match(r'^[\w./-]+:( |$)', rest):
                    # a nested list or a map starts on the dash line
                    lines[pos] = " " * (indent + 2) + rest
                    items.append(block(indent + 2))
                else:
                    items.append(json.loads(rest))
                    pos += 1
            return items
        out: dict[str, Any] = {}
        while pos < len(lines) and lines[pos].startswith(" " * indent) and not lines[
                pos].startswith(" " * (indent + 1)) and not lines[pos][indent:].startswith("- "):
            key, _, val = lines[pos][indent:].partition(":")
            pos += 1
            if val.strip():
                v = val.strip()
                out[key] = {} if v == "{}" else [] if v == "[]" else json.loads(v)
            else:
                out[key] = block(indent + 2)
        return out

    return block(0)


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.from_regex(r"^[a-z][a-z0-9]{0,5}$", fullmatch=True), c, max_size=3),
    max_leaves=12).filter(lambda v: isinstance(v, dict) and bool(v)))
def test_yaml_emitter_roundtrips(value: dict[str, Any]) -> None:
    assert _parse_yaml(generate.to_yaml(value)) == value


def test_kubernetes_cronjob(tmp_path: Path) -> None:
    spec = _spec(tmp_path, env={"VAULT_ADDR": "https://vault:8200"},
                 more={"store.vault_role_id": "r", "store.vault_secret_id_file": tmp_path / "sid"})
    files = generate.render(spec, "kubernetes")
    (_name, data), = files.items()
    doc = _parse_yaml(data.decode())
    assert doc == generate.kubernetes_cronjob(spec)
    job = doc["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "IMPROMPTU_STORE_VAULT_SECRET_ID_FILE",
            "value": "/var/run/impromptu/credentials/vault-secret-id"} in c["env"]
    assert c["args"][-2:] == ["--skipped-exit-code", "0"]  # a skip ends the pod with 0
    for rule in job["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]:
        assert "onExitCodes" not in rule  # no rule that recreates a pod on exit 75
    (init,) = pod["initContainers"]  # copies the credentials into a private volume
    assert "secrets.store" not in init["command"][2]  # Vault: no local store to seed
    assert validate.validate(files)


@pytest.mark.parametrize(("kw", "more", "needle"), [
    ({"user": "bob\nExecStartPre=/bin/sh -c true"}, {}, "--run-as"),
    ({"user": "bob; rm"}, {}, "--run-as"),
    ({"image": 'x"\n  evil: 1'}, {}, "--image"),
    ({}, {"platform.api_url": "http://127.0.0.1:1/api\nExecStartPre=/bin/sh"},
     "IMPROMPTU_API_URL"),
    ({}, {"jobs.metrics_file": "/tmp/m\n* * * * * evil"}, "command"),
])
def test_nothing_can_inject_a_directive_or_a_line(tmp_path: Path, kw: dict[str, str],
                                                  more: dict[str, Any], needle: str) -> None:
    # a line break in a setting is refused by the settings schema already, else by the spec
    with pytest.raises(ConfigError, match=re.escape(needle) + "|control characters"):
        s = load_settings({"paths.state_dir": tmp_path / "state", "paths.config_dir":
                           tmp_path / "cfg", "paths.data_dir": tmp_path / "data", **more}, env={})
        build_spec(s, (EXE,), seed="alice@host", scope="system", **kw)


def test_user_names_and_uids_are_accepted(tmp_path: Path) -> None:
    for user in ("impromptu", "svc_heartbeat", "build-bot$", "1001"):
        s = load_settings({"paths.state_dir": tmp_path / "state"}, env={})
        unit = generate.systemd_service(build_spec(s, (EXE,), seed="a", scope="system",
                                                   user=user))
        assert f"\nUser={user}\n" in unit


def test_the_metrics_folder_stays_writable_under_protect_system(tmp_path: Path) -> None:
    prom = tmp_path / "textfile_collector" / "impromptu.prom"
    files = generate.render(_spec(tmp_path, "system", more={"jobs.metrics_file": prom}),
                            "systemd")
    svc = _keys(files["impromptu-heartbeat.service"].decode())
    assert svc["ProtectSystem"] == ["strict"]
    assert svc["ReadWritePaths"] == [f"{tmp_path}/state", f"-{tmp_path}/textfile_collector"]
    assert "--metrics-file" in svc["ExecStart"][0]
    notes = validate.validate(files)  # systemd-analyze accepts it (when installed)
    assert any(n.startswith("systemd-analyze") or "structural" in n for n in notes)


def test_the_job_reads_the_config_file_install_read(tmp_path: Path) -> None:
    cfg = tmp_path / "elsewhere" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('[jobs]\nping_url = "https://hc-ping.example/abc"\n')
    s = load_settings({"paths.state_dir": tmp_path / "state"}, env={}, config_file=cfg)
    spec = build_spec(s, (EXE,), seed="a", scope="system", user="impromptu")
    assert spec.env["IMPROMPTU_CONFIG"] == str(cfg)  # another user's HOME would miss it
    unit = generate.systemd_service(spec)
    assert f'Environment="IMPROMPTU_CONFIG={cfg}"' in unit
    assert f"IMPROMPTU_CONFIG={cfg}" in generate.crontab_line(spec)
    k8s = generate.kubernetes_cronjob(spec)
    env = k8s["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    # a host path means nothing in a pod: the config comes with the Secret
    assert {"name": "IMPROMPTU_CONFIG",
            "value": "/var/run/impromptu/credentials/config.toml"} in env
    assert generate.secret_keys(spec)["config.toml"] == cfg
    bare = build_spec(load_settings({"paths.state_dir": tmp_path / "s"}, env={},
                                    config_file=tmp_path / "none.toml"), (EXE,), seed="a")
    assert "IMPROMPTU_CONFIG" not in bare.env
