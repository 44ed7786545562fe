"""A prompt version runs its reviewed file, never a diverging copy (issue 17, hole 6).

The repro: a hand-written version in model.yaml whose file (md5 recorded, so ``check`` was
content) says ``'{task}\\n{sample}\\nRating:'`` while the ``config:`` copy beside it, the one
predict and serve ran, said ``{sample:>300}{task.__class__}`` with 500 new tokens at temperature
2.0. Now ``check``, predict and serve all take the file, validated as ``prompt add`` validates a
config, and refuse a record that contradicts it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from gitops.core.promptspec import config_hash
from gitops.core.workspace import Workspace
from tests.conftest import run_gitops
from tests.prompt_fixtures import DATA, MODEL, write_prompt

MODEL_FILE = f"registry/{MODEL}/model.yaml"
EVIL = {"template": "{sample:>300}{task.__class__}", "generation": {"max_new_tokens": 500, "temperature": 2.0}}


def _hand_written(root: Path, vid: str, file_config: dict, copy: dict) -> None:
    """Append version ``vid`` to model.yaml by hand: v1's record with its own file (``file_config``,
    its md5 recorded) and ``copy`` as the config copy (its hash recomputed, as an attacker would)."""
    doc = yaml.safe_load((root / MODEL_FILE).read_text())
    record = dict(doc["versions"]["v1"])
    path = f"models/{MODEL}/{vid}.prompt.yaml"
    text = yaml.safe_dump(file_config, sort_keys=False)
    (root / path).write_text(text)
    record.update(path=path, md5=hashlib.md5(text.encode()).hexdigest(), config=copy, config_hash=config_hash(copy))
    doc["versions"][vid] = record
    (root / MODEL_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))


def _commit(root: Path) -> None:
    import subprocess

    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "a hand-written version"], cwd=root, check=True)


@pytest.fixture
def repo(ratings_repo: Path, tmp_path: Path) -> Path:
    zero = write_prompt(tmp_path / "zero.yaml", template="{task}\n{sample}\nRating:", retrieval=None, example=None,
                        dataset=None)
    assert run_gitops("prompt", "add", MODEL, "--config", str(zero), cwd=ratings_repo).exit_code == 0
    assert run_gitops("check", cwd=ratings_repo).exit_code == 0
    return ratings_repo


def _refused_everywhere(root: Path, vid: str, words: str, tmp_path: Path) -> None:
    res = run_gitops("check", cwd=root)
    assert res.exit_code == 1 and f"version {vid}:" in res.stderr and words in res.stderr, res.stderr
    out = tmp_path / f"{vid}.jsonl"
    res = run_gitops("predict", f"{MODEL}@{vid}", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=root)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert f"{MODEL}@{vid}" in res.stderr and words in res.stderr, res.stderr
    assert not out.exists()
    from gitops.errors import GitopsError
    from gitops.serve.repo_source import RepoSource

    ws = Workspace(root)
    res = run_gitops("alias", "set", MODEL, "staging", vid, cwd=root)
    assert res.exit_code == 0, res.stderr
    source = RepoSource(ws, f"{MODEL}@staging", tmp_path / f"serve-{vid}", branch="main")
    with pytest.raises(GitopsError, match=words.replace("(", r"\(")):
        source.check_servable(source.tip())  # what `gitops serve` runs before anything loads


def test_a_copy_that_differs_from_its_file_is_never_run(repo: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load((repo / MODEL_FILE).read_text())
    good = yaml.safe_load((repo / doc["versions"]["v1"]["path"]).read_text())
    _hand_written(repo, "v2", good, {**good, **EVIL})
    _commit(repo)
    _refused_everywhere(repo, "v2", "differs from its reviewed prompt config", tmp_path)


def test_a_file_prompt_add_would_refuse_is_never_run(repo: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load((repo / MODEL_FILE).read_text())
    bad = {**yaml.safe_load((repo / doc["versions"]["v1"]["path"]).read_text()), **EVIL}
    _hand_written(repo, "v2", bad, bad)
    _commit(repo)
    _refused_everywhere(repo, "v2", "gitops prompt add would refuse this config", tmp_path)


def test_an_edited_copy_of_a_released_version_is_refused(repo: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load((repo / MODEL_FILE).read_text())
    doc["versions"]["v1"]["config"]["generation"]["temperature"] = 2.0
    (repo / MODEL_FILE).write_text(yaml.safe_dump(doc, sort_keys=False))
    res = run_gitops("check", cwd=repo)
    assert res.exit_code == 1 and "version v1:" in res.stderr and "(config, config_hash)" not in res.stderr
    assert "(config) differs from its reviewed prompt config" in res.stderr, res.stderr
