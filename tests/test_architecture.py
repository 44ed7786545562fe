"""The house keeps its floors: import-linter's contracts, private names, verbs that take the Workspace.

The contracts live in pyproject.toml ([tool.importlinter]) and are drawn in docs/architecture.md:
no import runs back up a floor, ml | data | registry stay independent, verbs sit above their domain
inside gitops.registry and gitops.data, the pages over what they read inside gitops.site, and
there is no circle at any depth.
"""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gitops"
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.argv[0] = 'lint-imports'; " \
       "lint_imports_command()"


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT, "pyproject.toml", "--no-cache"], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=120)


def test_import_contracts_are_kept() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout and "6 kept" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("module, line, broken", [
    ("gitops/core/refs.py", "import gitops.cli  # runs back up\n", "Floors"),
    ("gitops/ml/bases.py", "import gitops.data.batches  # ml and data are independent\n", "Floors"),
    ("gitops/registry/changes.py", "import gitops.registry.show  # domain above its verbs\n", "verbs over"),
    ("gitops/eval/gates.py", "import gitops.report.views  # report imports eval: a circle\n", "No circle"),
    ("gitops/site/gather.py", "import gitops.site.modelpages  # what pages read, above the pages\n", "gitops.site"),
])
def test_a_broken_floor_fails_the_contracts(tmp_path: Path, module: str, line: str, broken: str) -> None:
    """The contracts bite: one import in the wrong direction breaks the named one."""
    copy = tmp_path / "house"
    copy.mkdir()
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    shutil.copytree(PACKAGE, copy / "gitops", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + "\n" + line)
    result = lint(copy)
    assert result.returncode != 0
    broken_lines = [ln for ln in result.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    assert any(broken in ln for ln in broken_lines), result.stdout[-2000:]


def _gitops_modules() -> dict[str, Path]:
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def test_private_names_do_not_cross_modules() -> None:
    """``from x import _name`` or ``module._name`` across modules: a private name used as a public one."""
    modules = _gitops_modules()
    offences = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        bound: dict[str, str] = {}  # local name -> gitops module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gitops"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in modules:
                        bound[alias.asname or alias.name] = full
                    elif alias.name.startswith("_") and not alias.name.startswith("__"):
                        offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {full}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and bound[node.value.id] != name):
                offences.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {bound[node.value.id]}.{node.attr}")
    assert offences == []


def test_every_verb_takes_the_workspace_first() -> None:
    """Verbs get the repository's state handed in, never a root to re-derive it from."""
    import gitops.api as api
    from gitops.core.workspace import Workspace

    without = {"Workspace", "init", "demo", "report", "post_report", "approvals",  # no repository yet / GitHub only
               "github_client", "EvalOptions",  # a type evaluate takes, as Workspace is
               "judge"}  # a results file and an endpoint
    for name in api.__all__:
        if name in without:
            continue
        first = next(iter(inspect.signature(getattr(api, name)).parameters.values()))
        assert first.name == "ws" and "Workspace" in str(first.annotation), (name, first)
    assert api.Workspace is Workspace


def test_module_names_say_what_they_do_once() -> None:
    """No two module files share a name, and the old ambiguous names (three config.py, two api.py,
    run.py, loop.py, codeowners.py, four pipeline.py) are gone. Aside: the command modules in
    gitops/cli, which are named by the noun they serve."""
    seen: dict[str, list[str]] = {}
    for name, path in _gitops_modules().items():
        if path.name != "__init__.py" and not name.startswith("gitops.cli."):
            seen.setdefault(path.stem, []).append(name)
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}
    assert not {"config", "run", "loop", "pipeline"} & set(seen)
