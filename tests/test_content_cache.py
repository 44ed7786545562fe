"""The one content cache of parsed registry files never disagrees with a fresh parse.

Real repositories, real appends (``gitops register`` and ``gitops ingest`` add one chain line each),
a rolled-back history, a changed code fingerprint, and a torn chain: each time the registry read
through the cache must equal a parse that never saw it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops import api
from gitops.adapters import git
from gitops.core import cache, reader
from gitops.core.workspace import Workspace
from tests.conftest import run_gitops

MODEL = "review-autocomplete"


def fresh(root: Path) -> reader.Registry:
    """The registry parsed from scratch: no cache at all."""
    reg = reader.parse_texts(reader.worktree_texts(root))
    reg.raise_problems()
    return reg


def cached(root: Path) -> reader.Registry:
    """The registry as the next command reads it (a new process and Workspace: the disk cache only)."""
    cache.MEMORY.clear()
    return Workspace(root).registry()


def same(a: reader.Registry, b: reader.Registry) -> bool:
    return a.models == b.models and a.datasets == b.datasets


@pytest.fixture()
def repo(gitops_repo: Path, weights, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "MIN_SIZE", 0)  # cache these small files too: the chain is what is tested
    # start as a command's process does: an earlier test in this process may have parsed the same
    # text at the same path (same second, same commit), and a hit in memory writes no chain line
    cache.MEMORY.clear()
    monkeypatch.chdir(gitops_repo)
    assert run_gitops("model", "create", MODEL, "--protect", "production=@acme/mlops").exit_code == 0
    for _ in range(3):
        assert run_gitops("register", MODEL, str(weights())).exit_code == 0
    return gitops_repo


def chains(root: Path) -> list[Path]:
    return sorted((root / ".git/gitops/cache").glob("*.chain"))


def test_appends_are_chained_and_agree_with_a_fresh_parse(repo: Path, weights) -> None:
    (chain,) = chains(repo)
    lines = chain.read_text().splitlines()
    assert len(lines) == 1 + 3 and [json.loads(x)["id"] for x in lines[1:]] == ["v1", "v2", "v3"]
    assert same(cached(repo), fresh(repo))
    assert list(cached(repo).model(MODEL).versions) == ["v1", "v2", "v3"]


def test_a_rolled_back_append_is_cut_from_the_chain(repo: Path) -> None:
    (chain,) = chains(repo)
    size = chain.stat().st_size
    git.run(repo, "reset", "-q", "--hard", "HEAD~1")
    assert same(cached(repo), fresh(repo)) and list(cached(repo).model(MODEL).versions) == ["v1", "v2"]
    assert chain.stat().st_size < size  # the v3 line was dropped, not the whole chain


def test_a_new_fingerprint_never_reads_the_old_entries(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (chain,) = chains(repo)
    # the same text under different code: poison the cached data, then change the fingerprint
    lines = chain.read_text().splitlines()
    head = json.loads(lines[0])
    head["data"]["header"]["description"] = "what a stale cache would say"
    chain.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    assert cached(repo).model(MODEL).description == "what a stale cache would say"  # it is read...
    monkeypatch.setattr(cache, "_FINGERPRINT", "an-upgraded-gitops")
    assert same(cached(repo), fresh(repo))  # ...until the code that parsed it changes
    assert json.loads(chain.read_text().splitlines()[0])["fingerprint"] == "an-upgraded-gitops"


def test_a_line_that_does_not_follow_the_chain_is_not_replayed(repo: Path) -> None:
    """Each line names the text it was appended to; one that does not follow its predecessor (a
    writer that raced, a chain cut elsewhere) must not be applied to the data before it."""
    assert same(cached(repo), fresh(repo))  # the chain now ends at the current text
    (chain,) = chains(repo)
    path = repo / f"registry/{MODEL}/model.yaml"
    text = path.read_text() + "# a note after the versions\n"
    path.write_text(text)
    fields = json.loads(chain.read_text().splitlines()[-1])["fields"]
    stray = {"prev": "0" * 64, "digest": cache.digest(text), "id": "v9", "fields": fields}
    with chain.open("a") as fh:
        fh.write(json.dumps(stray) + "\n")
    assert same(cached(repo), fresh(repo)) and "v9" not in cached(repo).model(MODEL).versions


def test_a_long_chain_starts_afresh_and_still_agrees(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "COMPACT_AFTER", 1)
    (chain,) = chains(repo)
    assert len(chain.read_text().splitlines()) == 4  # a snapshot and three appended versions
    assert same(cached(repo), fresh(repo))
    assert len(chain.read_text().splitlines()) == 1  # replaying three lines was too many: one snapshot now
    assert same(cached(repo), fresh(repo))


def test_a_torn_chain_is_read_up_to_the_tear(repo: Path) -> None:
    (chain,) = chains(repo)
    chain.write_text(chain.read_text()[:-20])  # killed mid-append: the last line is half written
    assert same(cached(repo), fresh(repo))


def test_one_cache_for_models_and_data_sets(repo: Path, tmp_path: Path) -> None:
    """model.yaml and data set files share the one cache: same place, same chain format."""
    ws = Workspace(repo)
    api.create_dataset(ws, "reviews", {"id": "string", "text": "string"}, "text", ["id"])
    batch = tmp_path / "a.jsonl"
    batch.write_text("".join(json.dumps({"id": f"r{i}", "text": f"review {i}"}) + "\n" for i in range(8)))
    api.ingest(Workspace(repo), [batch], "reviews")
    assert len(chains(repo)) == 2
    assert {json.loads(p.read_text().splitlines()[-1]).get("id") for p in chains(repo)} == {"v1", "v3"}
    state = {p.relative_to(repo / ".git").as_posix() for p in (repo / ".git").iterdir()
             if "gitops" in p.name} | {p.name for p in (repo / ".git/gitops").iterdir()}
    assert state == {"gitops", "cache", "keys", "write.lock"}  # no second parse cache anywhere
    assert same(cached(repo), fresh(repo))
