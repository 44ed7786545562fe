"""A small but complete GitOps repository to throw bad input at (the hostile-input tests and the fuzzer).

Made once per module with the real CLI: `gitops init` with a local DVC remote, a model with a
protected alias and one registered version, a staging alias, a data set with one ingested batch,
and a train config beside the repository. Each test works on a copy (a few ms) or restores the
repository between runs, so what one bad input leaves behind cannot hide another's.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_gitops

MODEL = "review-autocomplete"
DATASET = "reviews"
COLUMNS = ("id:string", "text:string", "rating:int")


def train_config(**sections: dict) -> dict:
    """A valid train config (offline: the base is a local directory that does not exist); ``sections``
    replace keys of their section, e.g. ``adapter={"r": 4}``."""
    cfg: dict = {"base_model": "missing-base-dir", "dataset": f"{DATASET}@latest",
                 "prompt": {"template": "{text}"}, "adapter": {"r": 4, "alpha": 8},
                 "trainer": {"max_steps": 1, "learning_rate": 1e-3}, "output": {"model": MODEL}}
    for name, values in sections.items():
        cfg[name] = {**cfg[name], **values} if isinstance(cfg.get(name), dict) else values
    return cfg


@contextlib.contextmanager
def isolated(home: Path) -> Iterator[None]:
    """HOME, git identity and DVC analytics for a fixture that outlives one test."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        mp.setenv("DVC_NO_ANALYTICS", "1")
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


def _ok(*args: str, cwd: Path) -> None:
    result = run_gitops(*args, cwd=cwd)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)


def make_hostile_repo(base: Path) -> Path:
    """The prepared repository under ``base`` (see the module docstring); returns its root."""
    root = base / "repo"
    _ok("init", str(root), "--remote", str(base / "remote"), cwd=base)
    weights = base / "weights"
    weights.mkdir()
    (weights / "model.safetensors").write_text("weights v1")
    (weights / "config.json").write_text('{"model_type": "opt"}')
    _ok("model", "create", MODEL, "--protect", "production=@acme/mlops", cwd=root)
    _ok("register", MODEL, str(weights), cwd=root)
    _ok("alias", "set", MODEL, "staging", "v1", cwd=root)
    _ok("dataset", "create", DATASET, *[a for c in COLUMNS for a in ("--column", c)], "--text-field", "text",
        "--key", "id", cwd=root)
    batch = base / "batch.jsonl"
    batch.write_text("".join(json.dumps({"id": f"r{i}", "text": f"review {i}", "rating": i % 5 + 1}) + "\n"
                             for i in range(12)), encoding="utf-8")
    _ok("ingest", str(batch), "--dataset", DATASET, cwd=root)
    _ok("check", cwd=root)
    return root


def copy_repo(template: Path, dest: Path) -> Path:
    """A copy of the prepared repository (its DVC remote stays shared: nothing here pushes)."""
    shutil.copytree(template, dest, symlinks=True)
    return dest


def restore(root: Path) -> None:
    """Put the work tree back as HEAD has it and drop untracked files (ignored local state stays)."""
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=root, check=True)
    subprocess.run(["git", "clean", "-fdq"], cwd=root, check=True)
