"""Data sets end to end: real git, real DVC with a local remote, the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitops import api
from gitops.adapters import git
from gitops.adapters.dvc import Dvc
from gitops.cli import main
from gitops.core import cache, reader
from gitops.core.workspace import Workspace
from gitops.data import batches, keys
from gitops.errors import DataError, NotFoundError, RepoStateError
from tests.data_fixtures import isolate_home, make_repo

COLUMNS = {"id": "string", "text": "string", "rating": "int"}


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_home(monkeypatch, tmp_path)
    root = make_repo(tmp_path / "repo", remote=tmp_path / "dvc-remote")
    api.create_dataset(Workspace(root), "reviews", COLUMNS, "text", ["id"], description="test reviews")
    return root


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def reviews(start: int, stop: int) -> list[dict]:
    return [{"id": f"r{i}", "text": f"review number {i}", "rating": i % 5 + 1} for i in range(start, stop)]


def test_create_writes_yaml_and_commits(repo: Path) -> None:
    text = (repo / "registry/datasets/reviews.yaml").read_text()
    assert "text_field: text" in text and "rating: int" in text
    assert git.log(repo, ["registry/datasets/reviews.yaml"])[0].subject.startswith("data: create data set reviews")
    with pytest.raises(DataError, match="already exists"):
        api.create_dataset(Workspace(repo), "reviews", COLUMNS, "text", ["id"])
    with pytest.raises(DataError, match="key column 'nope'"):
        api.create_dataset(Workspace(repo), "other", COLUMNS, "text", ["nope"])
    with pytest.raises(DataError, match="add up to 1"):
        api.create_dataset(Workspace(repo), "other", COLUMNS, "text", ["id"], {"train": 0.5, "test": 0.1})


def test_ingest_each_format(repo: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_file = tmp_path / "a.csv"
    csv_file.write_text('id,text,rating\nc1,"hello, world",5\nc2,"two\nlines",3\n', encoding="utf-8")
    jsonl_file = jsonl(tmp_path / "b.jsonl", [{"id": "j1", "text": "from json", "rating": 2}])
    pq_file = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["pq one", "pq two"], "rating": [1, 4]}), pq_file)
    for n, f in enumerate([csv_file, jsonl_file, pq_file], start=1):
        result = api.ingest(Workspace(repo), [f], "reviews")
        assert result.version == f"v{n}" and result.commit == git.head(repo)
    rows = batches.read_rows(Workspace(repo), "reviews")
    assert {r["id"]: r["text"] for r in rows} == {"c1": "hello, world", "c2": "two\nlines", "j1": "from json",
                                                  "p1": "pq one", "p2": "pq two"}
    assert all(isinstance(r["rating"], int) and r["split"] in ("train", "valid", "test") for r in rows)
    assert batches.read_texts(Workspace(repo), "reviews@v1") == ["hello, world", "two\nlines"]
    assert git.dirty_paths(repo) == []
    assert "data: ingest reviews v3: +2 rows" in git.log(repo, ["data.dvc"])[0].subject


def test_invalid_rows_refused_with_line_numbers(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine", "rating": 1}\n\n{"id": "b", "text": "  ", "rating": 2}\n'
                   '{"id": "c", "text": "x", "rating": "3"}\nnot json\n{"id": "d", "text": "x"}\n'
                   '{"id": "e", "text": "x", "rating": 1, "extra": 1}\n', encoding="utf-8")
    head = git.head(repo)
    with pytest.raises(DataError) as err:
        api.ingest(Workspace(repo), [bad], "reviews")
    message = str(err.value)
    assert message.startswith(f"5 invalid rows in {bad} (first at {bad}:3: empty text")
    for fragment in (f"{bad}:4: column 'rating'", f"{bad}:5: not valid JSON", f"{bad}:6: missing column 'rating'",
                     f"{bad}:7: unexpected column 'extra'"):
        assert fragment in message
    assert git.head(repo) == head and not (repo / "data").exists() and not (repo / "data.dvc").exists()


def test_rows_refused_for_one_reason_are_one_sentence_with_the_first_line_and_the_count(repo: Path,
                                                                                       tmp_path: Path) -> None:
    """A header with one extra column refuses every row: one sentence, not a line per row; rows refused
    for the same reason among others are one problem line with their count."""
    wide = tmp_path / "wide.csv"
    wide.write_text("id,text,rating,extra\n" + "".join(f"r{i},text {i},3,x\n" for i in range(200)), encoding="utf-8")
    result = CliRunner().invoke(main, ["ingest", str(wide), "--dataset", "reviews", "-C", str(repo)])
    assert result.exit_code == 1
    [error] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert error == (f"Error: 200 invalid rows in {wide}, all for one reason (first at {wide}:2): unexpected column "
                     "'extra' (columns: id, text, rating); nothing was ingested: no row is valid")
    assert result.output.count("unexpected column") == 1 and "  - " not in result.output
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("id,text,rating\n" + "".join(f"r{i},,{i % 5}\n" for i in range(50)) + "ok,fine,4\nb,t,five\n",
                     encoding="utf-8")
    with pytest.raises(DataError) as err:
        api.ingest(Workspace(repo), [mixed], "reviews")
    assert str(err.value).splitlines() == [
        f"51 invalid rows in {mixed} (first at {mixed}:2: empty text in 'text'); nothing was ingested (use "
        "--skip-invalid to keep the 1 valid row)",
        f"  - {mixed}:2: empty text in 'text' (and 49 more rows like it)",
        f"  - {mixed}:53: column 'rating': 'five' is not a whole number"]


def test_skip_invalid_writes_rejects(repo: Path, tmp_path: Path) -> None:
    src = tmp_path / "mixed.csv"
    src.write_text("id,text,rating\nok1,good,5\nbad1,nice,five\nok2,fine,4\nbad2,,3\n", encoding="utf-8")
    result = api.ingest(Workspace(repo), [src], "reviews", skip_invalid=True)
    assert result.version == "v1" and result.total_added == 2 and result.invalid == 2
    assert result.rejects_path == tmp_path / "mixed.csv.rejects.jsonl"
    rejects = [json.loads(line) for line in result.rejects_path.read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (3, "column 'rating': 'five' is not a whole number"), (5, "empty text in 'text'")]
    assert rejects[0]["row"] == {"id": "bad1", "text": "nice", "rating": "five"}
    assert sorted(r["id"] for r in batches.read_rows(Workspace(repo), "reviews")) == ["ok1", "ok2"]


def test_dedupe_across_and_within_batches_and_idempotence(repo: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MIN_SIZE", 0)  # cache even this small data set file
    ws = Workspace(repo)
    first = jsonl(tmp_path / "one.jsonl", reviews(0, 20) + reviews(5, 8))  # 3 duplicates inside
    r1 = api.ingest(ws, [first], "reviews")
    assert r1.total_added == 20 and r1.duplicates == 3
    head = git.head(repo)
    again = api.ingest(ws, [first], "reviews")
    assert again.version is None and "nothing new" in again.message and git.head(repo) == head
    second = jsonl(tmp_path / "two.jsonl", reviews(15, 30))  # 5 already there
    r2 = api.ingest(ws, [second], "reviews")
    assert r2.version == "v2" and r2.total_added == 10 and r2.duplicates == 5
    ids = [r["id"] for r in batches.read_rows(Workspace(repo), "reviews")]
    assert len(ids) == len(set(ids)) == 30
    # versions are appended as text and the parse is cached: a full fresh parse must agree
    fresh = reader.parse_texts(reader.worktree_texts(repo)).dataset("reviews")  # no cache at all
    assert fresh == ws.dataset("reviews")  # this process: its memory
    cache.MEMORY.clear()
    assert fresh == Workspace(repo).dataset("reviews")  # the next process: replays the append-only chain
    shutil.rmtree(repo / ".git/gitops/cache")
    cache.MEMORY.clear()
    assert fresh == Workspace(repo).dataset("reviews")
    # the local key cache is only a cache: without it the versioned shards give the same answer
    (repo / ".git/gitops/keys/reviews.sqlite").unlink()
    assert api.ingest(Workspace(repo), [second], "reviews").version is None


def test_caches_follow_a_reset_of_the_dataset_file(repo: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The parse cache and key index are keyed by content: a reset history is neither stale nor a full re-parse."""
    monkeypatch.setattr(cache, "MIN_SIZE", 0)  # cache even this small data set file

    def fresh() -> object:
        return reader.parse_texts(reader.worktree_texts(repo)).dataset("reviews")  # no cache at all

    def next_process() -> Workspace:
        cache.MEMORY.clear()  # what a new process starts with: the disk cache only
        return Workspace(repo)

    for n in range(3):
        api.ingest(Workspace(repo), [jsonl(tmp_path / f"{n}.jsonl", reviews(n * 10, n * 10 + 10))], "reviews")
    (chain,) = (repo / ".git/gitops/cache").glob("*.chain")
    size = chain.stat().st_size
    git.run(repo, "reset", "-q", "--hard", "HEAD~1")
    assert next_process().dataset("reviews") == fresh()
    assert list(next_process().dataset("reviews").versions) == ["v1", "v2"]
    assert chain.stat().st_size < size  # the v3 line was dropped, not the whole file
    new = jsonl(tmp_path / "new.jsonl", reviews(20, 25) + reviews(100, 103))
    again = api.ingest(Workspace(repo), [new], "reviews")
    assert again.version == "v3" and again.total_added == 8 and again.duplicates == 0  # r20..r24 were in the old v3
    assert next_process().dataset("reviews") == fresh()


def test_splits_are_stable_as_data_grows(repo: Path, tmp_path: Path) -> None:
    api.ingest(Workspace(repo), [jsonl(tmp_path / "v1.jsonl", reviews(0, 300))], "reviews")
    api.ingest(Workspace(repo), [jsonl(tmp_path / "v2.jsonl", reviews(200, 600))], "reviews")
    v1 = {r["id"]: r["split"] for r in batches.read_rows(Workspace(repo), "reviews@v1")}
    v2 = {r["id"]: r["split"] for r in batches.read_rows(Workspace(repo), "reviews@v2")}
    assert all(v2[k] == s for k, s in v1.items())
    test_v1 = {r["id"] for r in batches.read_rows(Workspace(repo), "reviews@v1", "test")}
    assert test_v1 and test_v1 <= {r["id"] for r in batches.read_rows(Workspace(repo), "reviews@v2", "test")}
    counts = {s: sum(1 for x in v2.values() if x == s) for s in ("train", "valid", "test")}
    assert 400 < counts["train"] < 560 and counts["valid"] > 25 and counts["test"] > 25
    # the rule itself: same key -> same split, whatever else is in the batch
    assert keys.split_for(keys.key_hash({"id": "r7"}, ["id"]), {"train": 0.8, "valid": 0.1, "test": 0.1}) == v2["r7"]


def test_read_older_version_and_older_git_rev(repo: Path, tmp_path: Path) -> None:
    api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 10))], "reviews")
    rev1 = git.head(repo)
    api.ingest(Workspace(repo), [jsonl(tmp_path / "b.jsonl", reviews(10, 15))], "reviews")
    assert len(batches.read_rows(Workspace(repo), "reviews@v1")) == 10
    assert len(batches.read_rows(Workspace(repo), "reviews@latest")) == 15
    assert len(batches.read_rows(Workspace(repo), "reviews", rev=rev1)) == 10
    with pytest.raises(NotFoundError, match="no version v2"):
        batches.read_rows(Workspace(repo), "reviews@v2", rev=rev1)
    with pytest.raises(NotFoundError, match="no split 'holdout'"):
        batches.read_rows(Workspace(repo), "reviews", "holdout")
    ws = Workspace(repo)
    assert batches.dataset_md5(ws, "reviews@v1") == batches.dataset_md5(ws, "reviews", rev=rev1)
    assert batches.dataset_md5(ws, "reviews@v1") != batches.dataset_md5(ws, "reviews@v2")


def test_incremental_pointer_equals_dvc_add(repo: Path, tmp_path: Path) -> None:
    # a second data set whose name sorts before 'reviews/' ('-' < '/'): new entries land mid-manifest
    api.create_dataset(Workspace(repo), "reviews-2", COLUMNS, "text", ["id"])
    for n in range(3):
        api.ingest(Workspace(repo), [jsonl(tmp_path / f"{n}.jsonl", reviews(n * 4, n * 4 + 4))], "reviews")
        api.ingest(Workspace(repo), [jsonl(tmp_path / f"{n}.jsonl", reviews(n * 4, n * 4 + 3))], "reviews-2")
    ours = (repo / "data.dvc").read_text()
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        assert dvc_repo.status() == {}  # DVC sees data/ and its cache as matching our pointer
    Dvc(repo).add(str(repo / "data"))  # DVC's full re-walk must record exactly the same tree
    assert (repo / "data.dvc").read_text() == ours


def test_push_reaches_remote_and_a_fresh_clone_reads_without_pull(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(RepoStateError, match="no remote 'origin'"):
        api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 12))], "reviews", push=True)
    assert not (repo / "data").exists()
    origin = tmp_path / "origin.git"
    git.run(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git.run(repo, "remote", "add", "origin", str(origin))
    git.run(repo, "push", "-q", "-u", "origin", "main")
    result = api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 12))], "reviews", push=True)
    assert result.pushed
    assert git.run(origin, "rev-parse", "main").strip() == result.commit
    assert Dvc(repo).missing_on_remote([str(repo / "data.dvc")]) == []
    clone = tmp_path / "clone"
    git.run(tmp_path, "clone", "-q", str(origin), str(clone))
    assert not (clone / "data").exists()
    assert len(batches.read_rows(Workspace(clone), "reviews@v1")) == 12  # served by DVC from the remote
    # an ingest on that clone pulls what it needs (key shards, manifest) and keeps the old batches
    git.run(clone, "config", "user.name", "Other")
    git.run(clone, "config", "user.email", "o@example.com")
    r2 = api.ingest(Workspace(clone), [jsonl(tmp_path / "b.jsonl", reviews(6, 20))], "reviews")
    assert r2.total_added == 8
    assert len(batches.read_rows(Workspace(clone), "reviews")) == 20


def test_refuses_dirty_dataset_file(repo: Path, tmp_path: Path) -> None:
    (repo / "registry/datasets/reviews.yaml").write_text("# edited\n" + (repo / "registry/datasets/reviews.yaml")
                                                         .read_text())
    with pytest.raises(RepoStateError, match="uncommitted changes"):
        api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 2))], "reviews")


def test_cli_create_ingest_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_home(monkeypatch, tmp_path)
    root = make_repo(tmp_path / "repo")
    monkeypatch.chdir(root)
    runner = CliRunner()
    out = runner.invoke(main, ["dataset", "create", "reviews", "--column", "id:string", "--column", "text:string",
                               "--column", "rating:int", "--text-field", "text", "--key", "id",
                               "--split", "train=0.5", "--split", "test=0.5"])
    assert out.exit_code == 0, out.output
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,rating\na,x,1\nb,y,oops\n")
    out = runner.invoke(main, ["ingest", str(bad), "--dataset", "reviews"])
    assert out.exit_code == 1 and f"{bad}:3: column 'rating'" in out.output
    out = runner.invoke(main, ["ingest", str(bad), "--dataset", "reviews", "--skip-invalid"])
    assert out.exit_code == 0 and "Reviews v1: +1 rows" in out.output
    out = runner.invoke(main, ["ingest", str(bad), "--dataset", "reviews", "--skip-invalid"])
    assert out.exit_code == 0 and "Nothing new" in out.output
    out = runner.invoke(main, ["dataset", "show", "reviews", "--json"])
    data = json.loads(out.output)
    assert data["splits"] == {"train": 0.5, "test": 0.5} and data["versions"]["v1"]["rows"] == 1
    out = runner.invoke(main, ["dataset", "show", "reviews"])
    assert "v1" in out.output and "b000001-" in out.output
    out = runner.invoke(main, ["dataset", "show", "nope"])
    assert out.exit_code == 1 and "data set 'nope' does not exist" in out.output


def test_every_data_command_has_help_with_an_example() -> None:
    import click

    from gitops.cli import data as data_cli

    commands = [data_cli.ingest_cmd, data_cli.dataset_group, *data_cli.dataset_group.commands.values()]
    for cmd in commands:
        assert cmd.help and "\b" in cmd.help and "gitops " in cmd.help, cmd.name
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{cmd.name} {param.name}"


def test_one_ingest_at_a_time(repo: Path, tmp_path: Path) -> None:
    with Workspace(repo).writing("ingest"), pytest.raises(RepoStateError, match="another ingest is running"):
        api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 2))], "reviews")
    assert api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 2))], "reviews").version == "v1"


def test_parquet_and_csv_problems_name_their_row(repo: Path, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq_file = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["ok", "ok"], "rating": [1.5, 2.0]}), pq_file)
    with pytest.raises(DataError, match=r"bad\.parquet: row 1: column 'rating': 1\.5 is not a whole number"):
        api.ingest(Workspace(repo), [pq_file], "reviews")
    csv_file = tmp_path / "short.csv"
    csv_file.write_text("id,text,rating\na,fine,1\nb,no rating\n")
    with pytest.raises(DataError, match=r"short\.csv:3: has 2 fields, the header has 3"):
        api.ingest(Workspace(repo), [csv_file], "reviews")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(DataError, match=r"unknown input format '\.txt'"):
        api.ingest(Workspace(repo), [tmp_path / "x.txt"], "reviews")


def test_ingest_in_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    api.ingest(Workspace(repo), [jsonl(tmp_path / "a.jsonl", reviews(0, 5))], "reviews")
    Dvc(repo).push([str(repo / "data.dvc")])
    linked = tmp_path / "linked"
    git.run(repo, "worktree", "add", "-q", "-b", "more-data", str(linked))
    result = api.ingest(Workspace(linked), [jsonl(tmp_path / "b.jsonl", reviews(3, 9))], "reviews")
    assert result.version == "v2" and result.total_added == 4  # dedupe against the pulled key shard
    assert git.run(repo, "rev-parse", "more-data").strip() == result.commit
    assert (repo / ".git/worktrees/linked/gitops/keys/reviews.sqlite").is_file()
    assert len(batches.read_rows(Workspace(linked), "reviews")) == 9
    assert len(batches.read_rows(Workspace(repo), "reviews")) == 5
