"""A repository with a classification model, its base and a ratings data set (issue 12 tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_gitops

MODEL, BASE, DATA = "ratings", "ratings-base", "reviews"
WORDS = {"1": "awful broken refund", "2": "poor flimsy disappointing", "3": "okay average fine",
         "4": "good solid pleasant", "5": "excellent superb love"}
TASK_BLOCK = """\
input: "Review: {text}"
label: rating
labels: ["1", "2", "3", "4", "5"]
fallback: "3"
"""


def review_rows(n: int = 60) -> list[dict[str, str]]:
    """``n`` reviews whose words say their rating (so retrieval by words finds same-rating rows)."""
    return [{"id": f"r{i:03d}", "text": f"{WORDS[str(i % 5 + 1)]} item number {i}", "rating": str(i % 5 + 1)}
            for i in range(n)]


def write_prompt(path: Path, **overrides: object) -> Path:
    """A prompt config (few-shot bm25 k=3 by default) with ``overrides`` merged over it (None drops a key)."""
    doc: dict[str, object] = {"base": f"{BASE}@v1", "dataset": f"{DATA}@v1", "task": "Rate the review from 1 to 5.",
                              "template": "{task}\n\n{context}{sample}\nRating:",
                              "example": "Review: {text}\nRating: {rating}\n\n",
                              "retrieval": {"type": "bm25", "k": 3}, "generation": {"max_new_tokens": 3}}
    doc.update(overrides)
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}, indent=1))  # JSON is YAML
    return path


@pytest.fixture
def ratings_repo(gitops_repo: Path, weights, tmp_path: Path) -> Path:
    """gitops_repo + data set reviews@v1 (60 rows) + ratings-base@v1 (dummy weights) + model ratings
    (task: classification, no versions yet)."""
    root = gitops_repo
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in review_rows()))
    block = tmp_path / "task.yaml"
    block.write_text(TASK_BLOCK)
    for args in (("dataset", "create", DATA, "--column", "id:string", "--column", "text:string", "--column",
                  "rating:string", "--text-field", "text", "--key", "id"),
                 ("ingest", str(data), "--dataset", DATA),
                 ("model", "create", BASE), ("register", BASE, str(weights())),
                 ("model", "create", MODEL, "--task", "classification", "--classification", str(block))):
        res = run_gitops(*args, cwd=root)
        assert res.exit_code == 0, (args, res.stdout, res.stderr)
    return root


@pytest.fixture
def toy_ratings_repo(ratings_repo: Path, base_model_dir: Path, tmp_path: Path) -> Path:
    """ratings_repo + the real toy base model as ratings-base@v2, and three variants of ratings:
    v1 zero-shot and v2 few-shot bm25 k=2 (prompt versions on ratings-base@v2), v3 the toy weights
    registered as the model's own hf version (what a fine-tune is, run without a prompt)."""
    root = ratings_repo
    res = run_gitops("register", BASE, str(base_model_dir), "--format", "hf", cwd=root)
    assert res.exit_code == 0, res.stderr
    zero = write_prompt(tmp_path / "zero.yaml", base=f"{BASE}@v2", template="{task}\n{sample}\nRating:",
                        retrieval=None, example=None, dataset=None)
    few = write_prompt(tmp_path / "few.yaml", base=f"{BASE}@v2", retrieval={"type": "bm25", "k": 2})
    for args in (("prompt", "add", MODEL, "--config", str(zero)), ("prompt", "add", MODEL, "--config", str(few)),
                 ("register", MODEL, str(base_model_dir), "--format", "hf", "--dataset", f"{DATA}@v1")):
        res = run_gitops(*args, cwd=root)
        assert res.exit_code == 0, (args, res.stderr)
    return root
