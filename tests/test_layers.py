"""The package's shape: layers, exit codes at the edge, module size (issue 16).

- the import layers of ``pyproject.toml`` ``[tool.importlinter]`` hold (``lint-imports``,
  also run by ``scripts/test``), and a broken one is reported (the contract can fail);
- exit codes are defined only in ``cli/`` and ``errors.py``, and no error's code is 0;
- no module of ``ops/`` is over 500 lines (STYLE.md habit 8: split by responsibility).

No server needed.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

from impromptu_ops import errors

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "ops" / "impromptu_ops"
MAX_MODULE_LINES = 500
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_import_layers_hold() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
    assert "0 broken" in done.stdout


def test_an_import_that_runs_back_up_breaks_the_contract(tmp_path: Path) -> None:
    """The contract can fail: a copy of the package where the policy layer imports the
    health checks (upward) is refused."""
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "ops" / "impromptu_ops",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    with (copy / "ops" / "impromptu_ops" / "policy" / "verdict.py").open("a") as f:
        f.write("\n\ndef _upward() -> None:\n    from impromptu_ops.health import checks\n")
    env_path = f"{copy / 'ops'}"
    done = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=copy, capture_output=True,
                          text=True, timeout=120, check=False,
                          env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "impromptu_ops.policy.verdict -> impromptu_ops.health.checks" in done.stdout


def _defines_exit_code(tree: ast.Module) -> list[tuple[int, str]]:
    """Assignments that define an exit code: a name ``EXIT*``/``EX_*`` or ``exit_code``
    bound to an integer literal (module or class level), or a dict named ``EXIT*``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = list(node.targets), node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for target in targets:
            names = [t.id for t in ast.walk(target) if isinstance(t, ast.Name)]
            for name in names:
                upper = name.upper()
                coded = upper.startswith(("EXIT", "EX_")) or upper == "EXIT_CODE"
                literal = isinstance(value, ast.Constant | ast.Dict | ast.Tuple) and not (
                    isinstance(value, ast.Constant) and isinstance(value.value, str))
                if coded and literal:
                    found.append((getattr(node, "lineno", 0), name))
    return found


def test_exit_codes_are_defined_only_in_cli_and_errors() -> None:
    allowed = {PACKAGE / "errors.py"}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed or (PACKAGE / "cli") in path.parents:
            continue
        for line, name in _defines_exit_code(ast.parse(path.read_text(), str(path))):
            offenders.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert offenders == [], "exit codes belong in cli/exitcodes.py or errors.py:\n" + \
        "\n".join(offenders)


def test_the_exit_code_scan_finds_a_definition() -> None:
    """The scan above is not blind: it sees the shapes it must refuse."""
    tree = ast.parse("EXIT_SKIPPED = 75\nclass E:\n    exit_code = 0\nEXIT: dict = {'A': 1}\n")
    assert sorted(name for _, name in _defines_exit_code(tree)) == ["EXIT", "EXIT_SKIPPED",
                                                                    "exit_code"]


def _error_classes() -> list[type[errors.OpsError]]:
    import importlib
    import pkgutil

    import impromptu_ops

    for info in pkgutil.walk_packages(impromptu_ops.__path__, "impromptu_ops."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    seen: list[type[errors.OpsError]] = []
    todo: list[type[errors.OpsError]] = [errors.OpsError]
    while todo:
        cls = todo.pop()
        seen.append(cls)
        todo.extend(cls.__subclasses__())
    return seen


def test_no_error_exits_zero() -> None:
    """An error never means success: every error class has a non-zero exit code."""
    zero = [f"{c.__module__}.{c.__qualname__}" for c in _error_classes() if c.exit_code == 0]
    assert zero == []


def _long_modules() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > MAX_MODULE_LINES:
            out.append(f"{path.relative_to(REPO)}: {n} lines")
    return out


def test_no_module_is_over_500_lines() -> None:
    """No exemption: a module still over the limit (rotation/engine.py until its split
    lands) fails here by name."""
    too_long = _long_modules()
    assert too_long == [], "split by responsibility:\n" + "\n".join(too_long)
