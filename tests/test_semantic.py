"""Semantic retrieval (issue 12, item 3): a sentence-transformers model built locally from the toy
base (real loading, no download), exact cosine search over the train split, cached by (data set
md5, embedder md5); a directory that is not such a model is refused in one sentence."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gitops.core.promptspec import Retrieval
from gitops.core.task import ClassificationTask
from gitops.core.workspace import Workspace
from gitops.errors import ConfigError, IntegrityError
from gitops.predict.retrieval import build_retriever
from tests.conftest import git_state, run_gitops
from tests.prompt_fixtures import DATA, MODEL, write_prompt

TASK = ClassificationTask(input="Review: {text}", label="rating", labels=["1", "2", "3", "4", "5"], fallback="3")


@pytest.fixture(scope="module")
def embedder(base_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sentence-transformers model: the toy base's transformer with mean pooling, saved."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    out = tmp_path_factory.mktemp("embedder") / "st-toy"
    transformer = Transformer(str(base_model_dir))
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = Pooling(dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
    return out


def test_semantic_is_exact_cosine_over_the_train_split_and_cached(ratings_repo: Path, embedder: Path) -> None:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    ws = Workspace.open(ratings_repo)
    r = build_retriever(ws, f"{DATA}@v1", Retrieval("semantic", 4, embedder=str(embedder)), TASK.render)
    assert not r.cached and all(row["split"] == "train" for row in r.rows)
    queries = [{"id": "q1", "text": "excellent superb love it", "rating": "5"},
               {"id": "q2", "text": "awful broken refund now", "rating": "1"}]
    got = [[e["id"] for e in ex] for ex in r.retrieve_many(queries)]
    model = SentenceTransformer(str(embedder), device="cpu")            # the ranking, computed independently
    docs = model.encode([TASK.render(x) for x in r.rows], normalize_embeddings=True)
    qs = model.encode([TASK.render(q) for q in queries], normalize_embeddings=True)
    want = [[r.rows[i]["id"] for i in np.argsort(-(q @ docs.T), kind="stable")[:4]] for q in qs]
    assert got == want
    again = build_retriever(ws, f"{DATA}@v1", Retrieval("semantic", 4, embedder=str(embedder)), TASK.render)
    assert again.cached and again.cache_dir == r.cache_dir
    assert [[e["id"] for e in ex] for ex in again.retrieve_many(queries)] == got


def test_a_changed_embedder_gets_its_own_cache_entry(ratings_repo: Path, embedder: Path, tmp_path: Path) -> None:
    ws = Workspace.open(ratings_repo)
    first = build_retriever(ws, f"{DATA}@v1", Retrieval("semantic", 2, embedder=str(embedder)), TASK.render)
    other = tmp_path / "other"
    shutil.copytree(embedder, other)
    (other / "README.md").write_text("changed")
    second = build_retriever(ws, f"{DATA}@v1", Retrieval("semantic", 2, embedder=str(other)), TASK.render)
    assert not second.cached and second.cache_dir != first.cache_dir


def test_a_broken_embedder_is_one_sentence(ratings_repo: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "modules.json").write_text("not json")
    with pytest.raises(ConfigError, match="is not a loadable sentence-transformers model"):
        build_retriever(Workspace.open(ratings_repo), f"{DATA}@v1", Retrieval("semantic", 2, embedder=str(fake)),
                        TASK.render)


def test_prompt_add_accepts_a_semantic_embedder_and_refuses_other_dirs(ratings_repo: Path, embedder: Path,
                                                                      tmp_path: Path) -> None:
    """An embedder is never pinned by a path of this machine (issue 20): a directory inside the
    repository is stored relative to its root (a clone elsewhere finds it), one outside is refused."""
    from gitops import yamlio
    from gitops.adapters import git

    before = git_state(ratings_repo)
    outside = write_prompt(tmp_path / "out.yaml", retrieval={"type": "semantic", "k": 3, "embedder": str(embedder)})
    res = run_gitops("prompt", "add", MODEL, "--config", str(outside), cwd=ratings_repo)
    assert res.exit_code == 1 and "is a directory outside the repository" in res.stderr
    assert "Traceback" not in res.stderr and git_state(ratings_repo) == before
    inside = ratings_repo / "embedders" / "st-toy"
    shutil.copytree(embedder, inside)
    git.add(ratings_repo, ["embedders"])
    git.commit(ratings_repo, "the embedder, in the repository", ["embedders"])
    good = write_prompt(tmp_path / "sem.yaml", retrieval={"type": "semantic", "k": 3, "embedder": str(inside)})
    res = run_gitops("prompt", "add", MODEL, "--config", str(good), cwd=ratings_repo)
    assert res.exit_code == 0, res.stderr
    stored = yamlio.load_file(ratings_repo / "models" / MODEL / "v1.prompt.yaml")["retrieval"]
    assert stored["embedder"] == "embedders/st-toy" and "revision" not in stored
    relative = write_prompt(tmp_path / "rel.yaml", retrieval={"type": "semantic", "k": 3,
                                                              "embedder": "embedders/st-toy"})
    res = run_gitops("prompt", "add", MODEL, "--config", str(relative), cwd=ratings_repo)
    assert res.exit_code == 0 and "already holds this prompt config" in res.stdout   # the same pin, however named
    before = git_state(ratings_repo)
    bad = write_prompt(tmp_path / "bad.yaml", retrieval={"type": "semantic", "k": 3, "embedder": str(tmp_path)})
    res = run_gitops("prompt", "add", MODEL, "--config", str(bad), cwd=ratings_repo)
    assert res.exit_code == 1 and "is not a sentence-transformers model (it has no modules.json)" in res.stderr
    assert git_state(ratings_repo) == before


def test_a_grown_data_set_embeds_only_the_new_rows(ratings_repo: Path, embedder: Path, tmp_path: Path) -> None:
    import json

    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"id": f"n{i:03d}", "text": f"superb excellent gadget {i}",
                                        "rating": "5"}) + "\n" for i in range(30)))
    assert run_gitops("ingest", str(more), "--dataset", DATA, cwd=ratings_repo).exit_code == 0
    ws = Workspace.open(ratings_repo)
    sem = Retrieval("semantic", 3, embedder=str(embedder))
    v1 = build_retriever(ws, f"{DATA}@v1", sem, TASK.render)
    v2 = build_retriever(ws, f"{DATA}@v2", sem, TASK.render)
    assert not v2.cached and v2.reused == len(v1.rows) < len(v2.rows)
    query = [{"id": "q", "text": "superb excellent", "rating": "5"}]
    grown = [e["id"] for e in v2.retrieve_many(query)[0]]
    shutil.rmtree(v2.cache_dir)
    for entry in v1.cache_dir.parent.glob("semantic-*"):
        shutil.rmtree(entry)
    fresh = build_retriever(ws, f"{DATA}@v2", sem, TASK.render)     # built from nothing
    assert fresh.reused == 0 and [e["id"] for e in fresh.retrieve_many(query)[0]] == grown


@pytest.fixture
def hub_cache(embedder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A Hugging Face cache (the layout huggingface_hub writes) holding the embedder as
    ``local-org/st-toy`` at one commit; the process is offline, so nothing can be downloaded."""
    import huggingface_hub.constants as hf

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf-cache" / "models--local-org--st-toy"
    shutil.copytree(embedder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    return repo / "snapshots" / commit, commit


def test_a_hub_id_embedder_comes_from_the_hf_cache_pinned_to_its_commit_and_md5(
        ratings_repo: Path, embedder: Path, hub_cache: tuple[Path, str], tmp_path: Path) -> None:
    from gitops import yamlio

    snapshot, commit = hub_cache
    by_id = write_prompt(tmp_path / "hub.yaml", retrieval={"type": "semantic", "k": 3, "embedder": "local-org/st-toy"})
    res = run_gitops("prompt", "add", MODEL, "--config", str(by_id), cwd=ratings_repo)
    assert res.exit_code == 0, res.stderr
    hub_cfg = yamlio.load_file(ratings_repo / "models" / MODEL / "v1.prompt.yaml")["retrieval"]
    assert hub_cfg["revision"] == commit and hub_cfg["embedder"] == "local-org/st-toy"
    # the cache snapshot's absolute path is stored as what it is, that hub id at that commit: the same pin
    by_path = write_prompt(tmp_path / "dir.yaml", retrieval={"type": "semantic", "k": 3, "embedder": str(snapshot)})
    res = run_gitops("prompt", "add", MODEL, "--config", str(by_path), cwd=ratings_repo)
    assert res.exit_code == 0 and "already holds this prompt config" in res.stdout, res.stderr
    ws = Workspace.open(ratings_repo)
    pinned = Retrieval("semantic", 3, embedder="local-org/st-toy", revision=commit,
                       embedder_md5=hub_cfg["embedder_md5"])
    query = [{"id": "q", "text": "excellent superb love it", "rating": "5"}]
    via_hub = build_retriever(ws, f"{DATA}@v1", pinned, TASK.render)
    via_dir = build_retriever(ws, f"{DATA}@v1", Retrieval("semantic", 3, embedder=str(embedder)), TASK.render)
    assert via_hub.retrieve_many(query) == via_dir.retrieve_many(query)

    (snapshot / "README.md").write_text("tampered")                 # the cached files change after pinning
    with pytest.raises(IntegrityError, match="recorded when the prompt version was added"):
        build_retriever(ws, f"{DATA}@v1", pinned, TASK.render)


def test_a_hub_id_that_is_not_cached_offline_is_one_sentence(ratings_repo: Path, hub_cache: tuple[Path, str],
                                                            tmp_path: Path) -> None:
    before = git_state(ratings_repo)
    cfg = write_prompt(tmp_path / "missing.yaml", retrieval={"type": "semantic", "k": 3, "embedder": "nobody/nothing"})
    res = run_gitops("prompt", "add", MODEL, "--config", str(cfg), cwd=ratings_repo)
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert "nobody/nothing is not in the local Hugging Face cache" in res.stderr
    cfg = write_prompt(tmp_path / "neither.yaml", retrieval={"type": "semantic", "k": 3, "embedder": "no such/dir"})
    res = run_gitops("prompt", "add", MODEL, "--config", str(cfg), cwd=ratings_repo)
    assert res.exit_code == 1 and "is neither a directory nor a hub id" in res.stderr
    assert git_state(ratings_repo) == before

