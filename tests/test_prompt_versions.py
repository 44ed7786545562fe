"""Prompt versions (issue 12, item 2): a config in git pinned to a base version and its md5, its
config hash in the lineage, aliased and diffed like any version; bad configs refused before writing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops import yamlio
from tests.conftest import git_state, run_gitops
from tests.prompt_fixtures import BASE, MODEL, write_prompt


def add(repo: Path, config: Path, *extra: str):
    return run_gitops("prompt", "add", MODEL, "--config", str(config), *extra, cwd=repo)


def test_prompt_version_is_pinned_committed_and_idempotent(ratings_repo: Path, tmp_path: Path) -> None:
    repo = ratings_repo
    assert run_gitops("alias", "set", BASE, "production", "v1", cwd=repo).exit_code == 0
    start = git_state(repo)[0].strip()
    cfg = write_prompt(tmp_path / "p.yaml", base=f"{BASE}@production")
    res = add(repo, cfg, "--note", "bm25 k=3")
    assert res.exit_code == 0, res.stderr
    assert f"Added {MODEL}@v1 (prompt on {BASE}@v1" in res.stdout
    v1 = json.loads(run_gitops("show", f"{MODEL}@v1", "--json", cwd=repo).stdout)
    base = json.loads(run_gitops("show", f"{BASE}@v1", "--json", cwd=repo).stdout)
    assert v1["format"] == "prompt" and v1["base_model"] == f"{BASE}@v1"     # the alias resolved, pinned
    assert v1["base_md5"] == base["md5"] and v1["dataset"] == "reviews@v1"
    stored = yamlio.load_file(repo / v1["path"])
    assert stored["base"] == f"{BASE}@v1" and stored["retrieval"] == {"type": "bm25", "k": 3, "seed": 0}
    assert git_state(repo)[1] == ""                                          # committed, nothing left over
    assert run_gitops("check", cwd=repo).exit_code == 0

    before = git_state(repo)
    again = add(repo, cfg)                                                   # same config: same version
    assert again.exit_code == 0 and "already holds this prompt config" in again.stdout
    assert git_state(repo) == before

    zero = write_prompt(tmp_path / "zero.yaml", template="{task}\n{sample}\nRating:", retrieval=None,
                        example=None, dataset=None)
    res = add(repo, zero)
    assert res.exit_code == 0 and f"{MODEL}@v2" in res.stdout, res.stderr
    v2 = json.loads(run_gitops("show", f"{MODEL}@v2", "--json", cwd=repo).stdout)
    assert v2["config_hash"] != v1["config_hash"]
    assert run_gitops("alias", "set", MODEL, "staging", "v2", cwd=repo).exit_code == 0
    diff = run_gitops("diff", start, "HEAD", "--json", cwd=repo)
    assert diff.exit_code == 0, diff.stderr
    moved = json.loads(diff.stdout)
    assert [(v["version"], v["format"]) for v in moved["new_versions"]] == [("v1", "prompt"), ("v2", "prompt")]
    assert [(a["alias"], a["new"]) for a in moved["alias_moves"]] == [("staging", "v2")]


def test_check_notices_an_edited_prompt_file(ratings_repo: Path, tmp_path: Path) -> None:
    assert add(ratings_repo, write_prompt(tmp_path / "p.yaml")).exit_code == 0
    path = ratings_repo / f"models/{MODEL}/v1.prompt.yaml"
    path.write_text(path.read_text().replace("k: 3", "k: 2"))
    res = run_gitops("check", cwd=ratings_repo)
    assert res.exit_code == 1 and "the prompt config was edited after it was added" in res.stdout + res.stderr


def test_register_format_prompt_points_at_prompt_add(ratings_repo: Path, weights) -> None:
    res = run_gitops("register", MODEL, str(weights()), "--format", "prompt", cwd=ratings_repo)
    assert res.exit_code == 1 and f"gitops prompt add {MODEL} --config" in res.stderr


@pytest.mark.parametrize("overrides, needle", [
    ({"base": f"{BASE}@v9"}, f"base {BASE}@v9 is not a registered version"),
    ({"base": "nobody@v1"}, "base nobody@v1 is not a registered version"),
    ({"dataset": "reviews@v7"}, "data set 'reviews' has no version v7"),
    ({"retrieval": {"type": "bm25", "k": 60}}, "retrieval.k 60 is larger than the train split of reviews@v1"),
    ({"example": "Review: {body}\nRating: {rating}\n"}, "example template names column 'body'"),
    ({"retrieval": {"type": "semantic", "k": 3, "embedder": "no/such/dir"}}, "is neither a directory nor a hub id"),
    ({"retrieval": {"type": "semantic", "k": 3, "embedder": "models"}}, "is not a sentence-transformers model"),
    ({"retrieval": {"type": "dense", "k": 3}}, "retrieval type 'dense' is not one of none, random, bm25, semantic"),
    ({"retrieval": {"type": "bm25", "k": 3, "embedder": "x"}}, "only used by type semantic"),
    ({"template": "{task} {sample}"}, "retrieval gives 3 examples but the template has no {context}"),
    ({"template": "{context}{review}"}, "template slot '{review}' is not one of {sample}, {task}, {context}"),
    ({"dataset": None}, "retrieval 'bm25' needs 'dataset: NAME@vN'"),
    ({"generation": {"max_new_tokens": 0}}, "max_new_tokens must be a whole number from 1 to 512"),
    ({"colour": "blue"}, "unknown key 'colour' in the prompt config"),
])
def test_bad_prompt_configs_are_one_sentence_and_write_nothing(ratings_repo: Path, tmp_path: Path,
                                                               overrides: dict, needle: str) -> None:
    before = git_state(ratings_repo)
    res = add(ratings_repo, write_prompt(tmp_path / "p.yaml", **overrides))
    assert res.exit_code == 1, res.stdout
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert res.stderr.startswith("Error: ")
    assert git_state(ratings_repo) == before


def test_a_template_naming_a_missing_column_is_refused(ratings_repo: Path, tmp_path: Path) -> None:
    """The model's task input template is checked against the prompt's data set."""
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"id": f"o{i}", "body": "x y z", "rating": "1"}) + "\n" for i in range(10)))
    for args in (("dataset", "create", "other", "--column", "id:string", "--column", "body:string", "--column",
                  "rating:string", "--text-field", "body", "--key", "id"),
                 ("ingest", str(other), "--dataset", "other")):
        assert run_gitops(*args, cwd=ratings_repo).exit_code == 0
    before = git_state(ratings_repo)
    res = add(ratings_repo, write_prompt(tmp_path / "p.yaml", dataset="other@v1", example=None,
                                         retrieval={"type": "random", "k": 2}))
    assert res.exit_code == 1 and "the input template names column 'text', which other@v1 does not have" in res.stderr
    assert git_state(ratings_repo) == before


def test_a_bad_key_is_named_with_its_line(ratings_repo: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"base: {BASE}@v1\ntemplate: '{{sample}}'\nretrieval:\n  type: none\n  k: -1\n")
    res = add(ratings_repo, cfg)
    assert res.exit_code == 1 and f"{cfg}:5" in res.stderr and "retrieval.k must be" in res.stderr
