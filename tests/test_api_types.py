"""gitops.api's typed mirror: the ``if TYPE_CHECKING:`` imports a type checker reads must name exactly the
objects the lazy ``__getattr__`` table (``_EXPORTS``) returns at run time, export for export."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

from gitops import api

API = Path(api.__file__)


def typed_exports(source: str) -> dict[str, tuple[str, str]]:
    """Each name the ``if TYPE_CHECKING:`` block of ``source`` binds -> (module, attribute)."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module, ast.unparse(stmt)
                for alias in stmt.names:
                    out[alias.asname or alias.name] = (stmt.module, alias.name)
    return out


def lazy_exports() -> dict[str, tuple[str, str]]:
    return {name: where if isinstance(where, tuple) else (where, name) for name, where in api._EXPORTS.items()}


def mismatches(typed: dict[str, tuple[str, str]], lazy: dict[str, tuple[str, str]]) -> list[str]:
    problems = [f"{n}: in _EXPORTS, not in the TYPE_CHECKING block" for n in sorted(lazy.keys() - typed.keys())]
    problems += [f"{n}: in the TYPE_CHECKING block, not in _EXPORTS" for n in sorted(typed.keys() - lazy.keys())]
    problems += [f"{n}: typed as {'.'.join(typed[n])}, but the lazy table gives {'.'.join(lazy[n])}"
                 for n in sorted(typed.keys() & lazy.keys()) if typed[n] != lazy[n]]
    return problems


def test_every_export_has_its_typed_counterpart_naming_the_same_object() -> None:
    typed = typed_exports(API.read_text())
    assert mismatches(typed, lazy_exports()) == []
    assert set(api.__all__) == set(typed)
    for name, (module, attr) in typed.items():  # the very object __getattr__ hands out
        assert getattr(importlib.import_module(module), attr) is getattr(api, name), name


def test_a_drift_either_way_is_named() -> None:
    source = API.read_text()
    lazy = lazy_exports()
    dropped = source.replace("    from gitops.registry.diff import diff as diff\n", "")
    assert mismatches(typed_exports(dropped), lazy) == ["diff: in _EXPORTS, not in the TYPE_CHECKING block"]
    pointed = source.replace("from gitops.registry.diff import diff as diff",
                             "from gitops.registry.show import show as diff")
    assert mismatches(typed_exports(pointed), lazy) == [
        "diff: typed as gitops.registry.show.show, but the lazy table gives gitops.registry.diff.diff"]
    extra = {**lazy, "fresh_verb": ("gitops.registry.show", "fresh_verb")}
    assert mismatches(typed_exports(source), extra) == ["fresh_verb: in _EXPORTS, not in the TYPE_CHECKING block"]


def test_the_typed_block_costs_nothing_at_run_time() -> None:
    """``import gitops.api`` still imports none of the verbs' modules (TYPE_CHECKING is false)."""
    code = ("import sys, gitops.api; "
            "print(sorted(m for m in sys.modules if m.startswith('gitops.') and m not in ('gitops.api',)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
