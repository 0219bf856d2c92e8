"""Benchmark: ``impromptu-ops health --format nagios`` against the original shell check.

Prints figures; it is not a timed test. Run: ``.venv/bin/python bench/health.py``
(``--runs N``, default 10). Needs ``curl`` and ``jq`` for the baseline.

Setup: a sandbox platform on loopback (in this process), one agent made through
``POST /_sandbox/agents``, its platform and OpenRouter keys in a local encrypted store in a
temporary HOME, one heartbeat run (so the freshness check is happy), private folders and
a cached ``~/.impromptu/impromptu.skill.json``: the happy path, every check OK.

Measured, as whole processes, median of N runs each, alternating so that both see the same
machine state:

- ours: ``.venv/bin/impromptu-ops health --format nagios`` — all 11 checks (config, store,
  platform /health, platform key by heartbeat, OpenRouter GET /key, budget, notifications,
  key age + security-status, heartbeat freshness, permissions, secrets scan), concurrent;
- ours, drop-in: ``scripts/impromptu-health`` (the original's six sections: keys, /health,
  the heartbeat, the cached manifest; sequential, 10 s per request, as the original);
- baseline: ``bench/original/impromptu-health.sh`` (the skill's script rebuilt from
  original-interfaces.md: curl of /health and of the legacy /agent/heartbeat, jq on each
  field, keys from the environment).

The ratio printed is ours / baseline (below 1.0 means ours is faster), on wall time. CPU
time (user + system of each process and its children) is printed too: on a loaded shared
machine it moves less than wall time, and it counts every curl/jq/grep the baseline forks.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


CPU: dict[str, list[float]] = {}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(cmd: list[str], env: dict[str, str], name: str = "") -> tuple[float, int, str]:
    """Wall time of the whole process (and, under ``name``, its CPU time: user + system
    of the process and its children, which a loaded machine disturbs less)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    wall = time.perf_counter() - t0
    if name:
        CPU.setdefault(name, []).append(_children_cpu() - c0)
    return wall, proc.returncode, proc.stdout.strip().splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            print(f"bench/health.py: {tool} is required for the baseline", file=sys.stderr)
            return 1

    home = Path(tempfile.mkdtemp(prefix="impromptu-bench-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("IMPROMPTU_", "VAULT_", "OPENROUTER_"))}
    # An installed package runs from its bytecode (pip compiles it; an editable install
    # writes it on first import): a shell's PYTHONDONTWRITEBYTECODE=1 would make every
    # measured run compile every module from source, which no user's machine does.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local/share"),
               XDG_STATE_HOME=str(home / ".local/state"))
    os.environ.clear()
    os.environ.update(env)  # load_settings/open_store below must see the bench HOME

    import httpx

    from impromptu_ops.sandbox.server import SandboxConfig, SandboxServer
    from impromptu_ops.secret import Secret
    from impromptu_ops.settings import load_settings
    from impromptu_ops.store.factory import open_store

    server = SandboxServer(SandboxConfig.build(), home / "sandbox", host="127.0.0.1", port=0)
    server.start()
    try:
        env["IMPROMPTU_API_URL"] = os.environ["IMPROMPTU_API_URL"] = server.base_url
        env["IMPROMPTU_OPENROUTER_URL"] = os.environ["IMPROMPTU_OPENROUTER_URL"] = (
            server.openrouter_url)
        agent = server.control("POST", "agents", {"name": "bench-agent"})
        prov = server.control("POST", "openrouter/provisioning-key")["key"]
        or_key = httpx.post(f"{server.openrouter_url}/keys", json={"name": "bench"},
                            headers={"Authorization": f"Bearer {prov}"}, timeout=10).json()["key"]
        store = open_store(load_settings())
        store.write("impromptu-api-key", {"value": Secret(agent["apiKey"])}, cas=0)
        store.write("openrouter-api-key", {"value": Secret(or_key)}, cas=0)
        exe = str(REPO / ".venv" / "bin" / "impromptu-ops")
        beat = subprocess.run([exe, "heartbeat"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
        if beat.returncode != 0:
            print(f"setup heartbeat failed: {beat.stdout}{beat.stderr}", file=sys.stderr)
            return 1

        ours_cmd = [exe, "health", "--format", "nagios"]
        legacy_cmd = [str(REPO / "scripts" / "impromptu-health")]
        base_cmd = [str(REPO / "bench" / "original" / "impromptu-health.sh")]
        base_env = {**env, "IMPROMPTU_API_KEY": agent["apiKey"], "OPENROUTER_API_KEY": or_key}
        (home / ".impromptu").mkdir(exist_ok=True)
        (home / ".impromptu" / "impromptu.skill.json").write_text(
            '{"name": "impromptu", "version": "3.3.1"}')
        for cmd, e in ((ours_cmd, env), (legacy_cmd, env), (base_cmd, base_env)):
            _time(cmd, e)  # warm the page cache
        ours: list[float] = []
        legacy: list[float] = []
        base: list[float] = []
        lines: dict[str, tuple[int, str]] = {}
        for _ in range(args.runs):
            for name, cmd, e, into in (("ours", ours_cmd, env, ours),
                                       ("legacy", legacy_cmd, env, legacy),
                                       ("original", base_cmd, base_env, base)):
                secs, code, first = _time(cmd, e, name)
                into.append(secs)
                lines[name] = (code, first)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)

    def ms(xs: list[float]) -> str:
        return (f"median {statistics.median(xs) * 1000:6.1f} ms  min {min(xs) * 1000:6.1f} ms"
                f"  max {max(xs) * 1000:6.1f} ms")

    print(f"runs: {args.runs} each, whole process, sandbox on loopback, local store")
    print(f"ours   health --format nagios (11 checks): {ms(ours)}  exit {lines['ours'][0]}")
    print(f"       {lines['ours'][1][:150]}")
    print(f"ours   scripts/impromptu-health (drop-in):  {ms(legacy)}  exit {lines['legacy'][0]}")
    print(f"orig.  impromptu-health.sh (curl + jq):     {ms(base)}  exit {lines['original'][0]}")
    cpu = {k: statistics.median(v) * 1000 for k, v in CPU.items()}
    print(f"cpu (user+sys, median): ours {cpu['ours']:.1f} ms, drop-in {cpu['legacy']:.1f} ms,"
          f" original {cpu['original']:.1f} ms")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
          f" on {os.cpu_count()} cores")
    ratio = statistics.median(ours) / statistics.median(base)
    ratio_legacy = statistics.median(legacy) / statistics.median(base)
    print(f"ratio ours/original: {ratio:.2f} (nagios, 11 checks), "
          f"{ratio_legacy:.2f} (drop-in, the original's checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
