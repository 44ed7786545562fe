"""Retrieval (issue 12, item 3): examples come only from the TRAIN split of the named data set
version, random is seeded and deterministic, bm25 finds lexically similar rows, indexes are cached
by (data set md5, embedder md5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.core.promptspec import Retrieval
from gitops.core.task import ClassificationTask
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError
from gitops.predict.renderer import PromptRenderer
from gitops.predict.retrieval import build_retriever
from tests.prompt_fixtures import DATA, WORDS

TASK = ClassificationTask(input="Review: {text}", label="rating", labels=["1", "2", "3", "4", "5"], fallback="3")


def retriever(repo: Path, kind: str, k: int = 3, seed: int = 0):
    return build_retriever(Workspace.open(repo), f"{DATA}@v1", Retrieval(kind, k, seed=seed), TASK.render)


def test_examples_come_only_from_the_train_split(ratings_repo: Path) -> None:
    ws = Workspace.open(ratings_repo)
    all_rows = batches.read_rows(ws, f"{DATA}@v1")
    train = {r["id"] for r in all_rows if r["split"] == "train"}
    holdout = [r for r in all_rows if r["split"] != "train"]
    assert train and holdout
    for kind in ("random", "bm25"):
        r = retriever(ratings_repo, kind, k=5)
        for rows in r.retrieve_many(all_rows):
            assert len(rows) == 5 and {e["id"] for e in rows} <= train


def test_a_query_never_gets_itself_as_an_example(ratings_repo: Path) -> None:
    r = retriever(ratings_repo, "bm25", k=3)
    for row in r.rows:
        assert row["id"] not in {e["id"] for e in r.retrieve(row)}


def test_random_is_seeded_and_deterministic(ratings_repo: Path) -> None:
    rows = retriever(ratings_repo, "random").rows[:10]
    first = [[e["id"] for e in ex] for ex in retriever(ratings_repo, "random", seed=7).retrieve_many(rows)]
    again = [[e["id"] for e in ex] for ex in retriever(ratings_repo, "random", seed=7).retrieve_many(rows)]
    other = [[e["id"] for e in ex] for ex in retriever(ratings_repo, "random", seed=8).retrieve_many(rows)]
    assert first == again and first != other
    assert len({tuple(x) for x in first}) > 1          # different queries get different examples


def test_bm25_finds_rows_with_the_same_words_and_is_cached(ratings_repo: Path) -> None:
    built = retriever(ratings_repo, "bm25", k=3)
    assert not built.cached and built.cache_dir is not None and built.cache_dir.is_dir()
    query = {"id": "q", "text": f"{WORDS['5']} thing", "rating": "5"}
    found = built.retrieve(query)
    assert [e["rating"] for e in found] == ["5", "5", "5"]
    loaded = retriever(ratings_repo, "bm25", k=3)
    assert loaded.cached and loaded.cache_dir == built.cache_dir
    assert [e["id"] for e in loaded.retrieve(query)] == [e["id"] for e in found]
    md5 = batches.dataset_md5(Workspace.open(ratings_repo), f"{DATA}@v1")
    assert md5 in built.cache_dir.name


def test_k_larger_than_the_train_split_is_refused(ratings_repo: Path) -> None:
    with pytest.raises(ConfigError, match="larger than the train split"):
        retriever(ratings_repo, "random", k=59)


def test_few_shot_prompt_renders_examples_then_the_sample(ratings_repo: Path) -> None:
    config = {"template": "{task}\n\n{context}{sample}\nRating:", "task": "Rate 1-5.",
              "example": "Review: {text}\nRating: {rating}\n\n"}
    r = retriever(ratings_repo, "bm25", k=2)
    row = {"id": "q", "text": "excellent superb", "rating": "5"}
    examples = r.retrieve(row)
    text = PromptRenderer(TASK, config).render(row, examples)
    assert text.startswith("Rate 1-5.\n\nReview: ") and text.endswith("Review: excellent superb\nRating:")
    assert text.count("Rating: 5\n") == 2
    assert PromptRenderer(TASK).render(row, examples) == "Review: excellent superb"   # a non-prompt variant
    assert PromptRenderer(TASK, {**config, "example": None}).example(examples[0]).endswith(" 5\n\n")


def test_query_rows_from_another_data_set_need_not_have_its_key(ratings_repo: Path) -> None:
    for kind in ("random", "bm25"):
        found = retriever(ratings_repo, kind, k=2).retrieve({"body_id": 7, "text": "excellent superb", "rating": "5"})
        assert len(found) == 2


def test_the_index_cache_key_includes_the_input_template(ratings_repo: Path) -> None:
    """A second model on the same data set whose task renders rows differently indexes its own text
    (it used to load the first model's index: same data set md5, same embedder)."""
    import json

    first = retriever(ratings_repo, "bm25")
    other_task = ClassificationTask(input="Item {id}: {text}", label="rating", labels=TASK.labels, fallback="3")
    ws = Workspace.open(ratings_repo)
    other = build_retriever(ws, f"{DATA}@v1", Retrieval("bm25", 3), other_task.render)
    assert not other.cached and other.cache_dir != first.cache_dir
    again = build_retriever(ws, f"{DATA}@v1", Retrieval("bm25", 3), other_task.render, template=other_task.input)
    assert again.cached and again.cache_dir == other.cache_dir
    done = [json.loads((r.cache_dir / "done.json").read_text())["template_md5"] for r in (first, other)]
    assert done[0] != done[1] and retriever(ratings_repo, "bm25").cache_dir == first.cache_dir
