"""docs/reference.md is generated from the validation specs and cannot drift from them.

Files checked by a spec (a :class:`Record`) are described by it; files checked by hand have a table of
keys beside their checker, held here to what the checker accepts: the same keys, examples that pass,
and a value of the wrong type for every key refused. The environment table is held to the variables
the code reads, and the shell completion the reference documents is run.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gitops import reference, yamlio
from gitops.core import promptspec, schema, settings, task
from gitops.core.records import GATE_BOUNDS
from gitops.eval import results
from gitops.train import train_config
from gitops.validation import Key, Problems, Record, validate

ROOT = Path(__file__).resolve().parents[1]
VERSION_KEY = "v2"  # what <vN> stands for in an assembled document (the version example's parent is v2)


def test_the_reference_is_what_the_specs_give() -> None:
    assert not reference.differs(), "docs/reference.md differs from the specs: run `gitops reference` and commit it"
    text = (ROOT / "docs" / "reference.md").read_text()
    assert "](docs/reference.md)" in (ROOT / "README.md").read_text()
    for section in reference.sections():  # every key of every file is a row
        for key, *_ in section.rows:
            assert f"| `{key}` |" in text, key


def test_the_reference_command_checks_and_writes(tmp_path: Path) -> None:
    from tests.conftest import run_gitops

    out = tmp_path / "reference.md"
    assert run_gitops("reference", "--check", "--out", str(out)).exit_code == 1  # missing: differs
    assert run_gitops("reference", "--out", str(out)).exit_code == 0
    assert out.read_text() == reference.render()
    assert run_gitops("reference", "--check", "--out", str(out)).exit_code == 0
    out.write_text(out.read_text().replace("| `github.repo` |", "| `github.repository` |"))
    stale = run_gitops("reference", "--check", "--out", str(out))
    assert stale.exit_code == 1 and "differs from the validation specs; run: gitops reference" in stale.stderr


# --- the tables of hand-checked files against their checkers ---------------------------------------

def children(keys: tuple[Key, ...], prefix: str) -> set[str]:
    """The keys directly under ``prefix`` (``""``: the top level; ``gates[]``: a list item's keys)."""
    start = f"{prefix}." if prefix else ""
    return {k.path[len(start):].split(".")[0].removesuffix("[]") for k in keys if k.path.startswith(start)}


def _set(doc: dict, path: str, value: Any) -> None:
    """Put ``value`` at ``path`` (``a.b``, ``a[].b``: in the list's first item, ``<vN>``: VERSION_KEY)."""
    node = doc
    parts = path.split(".")
    for part in parts[:-1]:
        name = VERSION_KEY if part == "<vN>" else part.removesuffix("[]")
        if part.endswith("[]"):
            if not (isinstance(node.get(name), list) and node[name] and isinstance(node[name][0], dict)):
                node[name] = [{}]
            node = node[name][0]
        else:
            if not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
    node[VERSION_KEY if parts[-1] == "<vN>" else parts[-1]] = value


def assemble(keys: tuple[Key, ...], extra: tuple[tuple[str, Any], ...] = ()) -> dict:
    """A document holding every key's example (a section without one is made by its keys)."""
    doc: dict = {}
    for k in keys:
        if k.example is not None:
            _set(doc, k.path, copy.deepcopy(k.example))
    for path, value in extra:
        _set(doc, path, copy.deepcopy(value))
    return doc


def _model_doc() -> dict:
    versions = tuple((f"versions.<vN>.{name}", f.example) for name, f in schema.VERSION_SPEC.fields.items())
    return assemble(schema.MODEL_REFERENCE + task.CLASSIFICATION_REFERENCE, versions)


def _dataset_doc() -> dict:
    versions = tuple((f"versions.<vN>.{name}", f.example) for name, f in schema.DATASET_VERSION_SPEC.fields.items())
    return assemble(schema.DATASET_REFERENCE, versions)


# (what, the key table, a document of its examples, the checker's problems for a document)
CHECKED = {
    "gitops.yaml": (settings.REFERENCE, lambda: assemble(settings.REFERENCE),
                    lambda doc, p: settings.parse(doc, "gitops.yaml", p)),
    "model.yaml": (schema.MODEL_REFERENCE + task.CLASSIFICATION_REFERENCE, _model_doc,
                   lambda doc, p: schema.parse_model(doc, "model.yaml", "review-autocomplete", p)),
    "data set": (schema.DATASET_REFERENCE, _dataset_doc, lambda doc, p: schema.parse_dataset(doc, "reviews.yaml",
                                                                                             "reviews", p)),
    "prompt config": (promptspec.PROMPT_REFERENCE, lambda: assemble(promptspec.PROMPT_REFERENCE),
                      lambda doc, p: promptspec.parse_prompt(doc, "prompt.yaml", p)),
}


def problems_of(what: str, doc: dict) -> Problems:
    p = Problems()
    CHECKED[what][2](yamlio.loads(yamlio.dumps(doc), what), p)  # as the loader gives it: line-aware mappings
    return p


def test_every_key_table_names_exactly_the_keys_its_checker_accepts() -> None:
    assert children(settings.REFERENCE, "") == set(settings.TOP_KEYS)
    assert children(settings.REFERENCE, "github") == {"repo"}
    assert children(settings.REFERENCE, "runners") == {"gpu", "trusted"}
    assert children(settings.REFERENCE, "deploy") == {"hooks"}
    assert children(settings.REFERENCE, "deploy.hooks[]") == set(settings.HOOK_KEYS)
    assert children(settings.REFERENCE, "notify") == set(settings.NOTIFY_KEYS)
    assert children(settings.REFERENCE, "eval") == {"judge"}
    assert children(settings.REFERENCE, "eval.judge") == set(settings.JUDGE_KEYS)
    assert children(schema.MODEL_REFERENCE, "") == set(schema.MODEL_KEYS)
    assert children(schema.MODEL_REFERENCE, "gates[]") == {"metric", *GATE_BOUNDS}
    assert children(task.CLASSIFICATION_REFERENCE, "classification") == set(task.CLASSIFICATION_KEYS)
    assert children(schema.DATASET_REFERENCE, "") == set(schema.DATASET_KEYS)
    assert children(promptspec.PROMPT_REFERENCE, "") == set(promptspec.PROMPT_KEYS)
    assert children(promptspec.PROMPT_REFERENCE, "retrieval") == set(promptspec.RETRIEVAL_KEYS)
    assert children(promptspec.PROMPT_REFERENCE, "generation") == set(promptspec.GENERATION_KEYS)
    assert list(results.GATE_RESULT_REFERENCE) == [f.name for f in dataclasses.fields(results.GateResult)]
    for keys in (settings.REFERENCE, schema.MODEL_REFERENCE, schema.DATASET_REFERENCE, promptspec.PROMPT_REFERENCE,
                 task.CLASSIFICATION_REFERENCE):
        for k in keys:
            assert k.meaning and kind(k) in WRONG, k


@pytest.mark.parametrize("what", list(CHECKED))
def test_a_document_of_the_examples_passes_its_checker(what: str) -> None:
    assert problems_of(what, CHECKED[what][1]()) == []


WRONG = {"string": [1, 2], "integer": "many", "number": "many", "boolean": "maybe", "list": 42, "mapping": 42,
         "owner": 42}


def kind(key: Key) -> str:
    """The first word of a key's type: what a value of the wrong type is for it."""
    return re.match(r"[a-z]+", key.type).group(0)


@pytest.mark.parametrize("what", list(CHECKED))
def test_a_value_of_the_wrong_type_is_refused_for_every_key(what: str) -> None:
    keys, make, _ = CHECKED[what]
    accepted = []
    for k in keys:
        doc = make()
        _set(doc, k.path, WRONG[kind(k)])
        if not problems_of(what, doc):
            accepted.append(f"{k.path}: {WRONG[kind(k)]!r} accepted for a {k.type}")
    assert accepted == []


def test_every_spec_key_has_a_meaning_and_an_example_it_accepts() -> None:
    for spec in (schema.VERSION_SPEC, schema.DATASET_VERSION_SPEC, schema.ALIAS_SPEC, train_config.SCHEMA):
        for path, f in spec.leaves():
            assert f.help and f.example is not None, path
    doc: dict = {}
    for path, f in train_config.SCHEMA.leaves():
        _set(doc, path, f.example)
    p = Problems()
    validate(train_config.SCHEMA, yamlio.loads(yamlio.dumps(doc), "train.yaml"), "train.yaml", p)
    assert p == []
    alias = {name: f.example for name, f in schema.ALIAS_SPEC.fields.items()}
    assert schema.parse_alias(yamlio.loads(yamlio.dumps(alias), "a.yaml"), "a.yaml", "staging", Problems())
    results.GateResult(**{k: v for k, (v, _) in results.GATE_RESULT_REFERENCE.items()})
    assert isinstance(results.result_spec(results.GateResult), Record)


# --- environment variables -------------------------------------------------------------------------

def _constants(tree: ast.Module) -> dict[str, tuple[str, ...]]:
    """Module-level names bound to a string or a tuple of strings."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out[node.targets[0].id] = (value.value,)
            elif isinstance(value, ast.Tuple) and all(isinstance(e, ast.Constant) for e in value.elts):
                out[node.targets[0].id] = tuple(str(e.value) for e in value.elts)
    return out


def _is_environment(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "environ" in text or text == "env"


def environment_reads() -> tuple[set[str], list[str]]:
    """Every variable name gitops/ reads from the environment by a fixed name, and the places that
    read a name a setting or an option gives (file:line and the expression)."""
    names: set[str] = set()
    dynamic: list[str] = []
    for path in sorted((ROOT / "gitops").rglob("*.py")):
        tree = ast.parse(path.read_text())
        constants = _constants(tree)
        loops = {n.target.id: n.iter for n in ast.walk(tree) if isinstance(n, ast.comprehension)
                 and isinstance(n.target, ast.Name)}

        # this file's path and tables, bound now (B023): named() runs only within this iteration anyway
        def named(expr: ast.AST, where: str, path=path, constants=constants, loops=loops) -> None:
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                names.add(expr.value)
            elif isinstance(expr, ast.Name) and expr.id in constants:
                names.update(constants[expr.id])
            elif isinstance(expr, ast.Name) and isinstance(loops.get(expr.id), ast.Name) \
                    and loops[expr.id].id in constants:
                names.update(constants[loops[expr.id].id])
            else:
                dynamic.append(f"{path.relative_to(ROOT)}: {ast.unparse(expr)} ({where})")

        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
                environ = node.func.attr in ("get", "pop") and _is_environment(node.func.value)
                if environ or node.func.attr == "getenv":
                    named(node.args[0], ast.unparse(node)[:60])
            elif isinstance(node, ast.Subscript) and _is_environment(node.value) and isinstance(node.ctx, ast.Load):
                named(node.slice, ast.unparse(node)[:60])
            elif isinstance(node, ast.Compare) and any(isinstance(o, (ast.In, ast.NotIn)) for o in node.ops) \
                    and any(_is_environment(c) for c in node.comparators):
                named(node.left, ast.unparse(node)[:60])
    return names, dynamic


# Reads whose name comes from gitops.yaml or an option: the settings' documented defaults and
# conventions are in the table (GITOPS_DEPLOY_SECRET, SLACK_WEBHOOK_URL, GITOPS_JUDGE_TOKEN).
DYNAMIC = {"d.hook.secret_env", "config.slack_webhook_env", "config.token_env", "secret_env"}


def test_the_environment_table_lists_every_variable_the_code_reads() -> None:
    names, dynamic = environment_reads()
    assert {"GITHUB_TOKEN", "GITOPS_CACHE_DIR", "GIT_DIR", "WORLD_SIZE"} <= names  # the scan finds reads
    listed = {v.name for v in reference.ENVIRONMENT}
    assert names - listed == set(), "read by the code, missing from gitops.reference.ENVIRONMENT"
    unknown = [d for d in dynamic if d.split(": ", 1)[1].split(" (")[0] not in DYNAMIC]
    assert unknown == [], "reads of a name from a setting or option the test does not know"
    assert {settings.DEFAULT_SECRET_ENV, "SLACK_WEBHOOK_URL", "GITOPS_JUDGE_TOKEN"} <= listed


def test_the_workflows_secrets_and_variables_are_listed() -> None:
    used = set()
    for path in (ROOT / "gitops" / "scaffold" / "workflows").glob("*.yml"):
        used |= set(re.findall(r"\b(?:secrets|vars)\.([A-Z][A-Z0-9_]*)", path.read_text()))
    assert used and used - {"GITHUB_TOKEN"} <= {v.name for v in reference.WORKFLOW_ENVIRONMENT}


# --- shell completion --------------------------------------------------------------------------------

def test_the_documented_completion_command_writes_a_script_that_completes() -> None:
    assert "eval \"$(_GITOPS_COMPLETE=bash_source gitops)\"" in reference.COMPLETION
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    gitops = [sys.executable, "-m", "gitops"]
    script = subprocess.run(gitops, env={**env, "_GITOPS_COMPLETE": "bash_source"}, capture_output=True, text=True,
                            timeout=60)
    assert script.returncode == 0 and "complete -o nosort -F _gitops_completion gitops" in script.stdout
    zsh = subprocess.run(gitops, env={**env, "_GITOPS_COMPLETE": "zsh_source"}, capture_output=True, text=True,
                         timeout=60)
    assert "#compdef gitops" in zsh.stdout
    asked = subprocess.run(gitops, env={**env, "_GITOPS_COMPLETE": "bash_complete", "COMP_WORDS": "gitops pro",
                                        "COMP_CWORD": "1"}, capture_output=True, text=True, timeout=60)
    assert sorted(asked.stdout.split()) == ["plain,promote", "plain,prompt"]
