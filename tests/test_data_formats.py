"""Data as users have it: pandas' TSV (BOM, unnamed index column), any delimiter, the team's own
split column, text normalisation. Real git, real DVC, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops import yamlio
from gitops.core.workspace import Workspace
from gitops.data import batches, normalize, rows
from gitops.errors import DataError
from tests.conftest import run_gitops
from tests.data_fixtures import isolate_home, make_repo

CREATE = ("dataset", "create", "reviews", "--column", "id:string", "--column", "text:string",
          "--column", "rating:int", "--text-field", "text", "--key", "id")

# What pandas writes with ``df.to_csv("export.tsv", sep="\t", encoding="utf-8-sig")``: a byte order
# mark, an empty first header cell over the index column, quotes around a field holding a tab or a quote.
# Key hashes (the fallback rule): r3 r6 r7 -> train, r12 -> test, r5 -> valid, r4 -> test.
EXPORT = ("\ufeff\tid\ttext\trating\tsplit\n"
          "0\tr0\tGreat &amp; cheap\t5\ttest\n"          # the team put r0 in test (its hash says train)
          "1\tr1\t  Broke after a week  \t1\tvalid\n"
          "2\tr2\t\"They said \"\"fine\"\"\tthen left\"\t3\ttest\n"
          "3\tr3\tIt&#39;s ok\t3\t\n"                    # no split named: the key hash decides (train)
          "4\tr4\tWould buy again\t5\ttrain\n"           # named train although its hash says test
          "5\tr5\tToo small\t2\t\n"                       # hash: valid
          "6\tr6\tFits well\t4\t\n"
          "7\tr7\tArrived late\t2\t\n"
          "8\tr12\tSolid build\t4\t\n"                    # hash: test
          "9\tr9\tNice colour\t4\t valid \n"
          "10\t r7 \tArrived late, again\t1\t\n")        # ' r7 ' is r7 once stripped: a duplicate

# A later export, semicolon-delimited in a .txt file, that disagrees with the first about r0 and r12.
LATER = ("id;text;rating;split\n"
         "r0;Great & cheap;5;train\n"          # known key (test): dropped, the split stays test
         "r12;Solid build;4;valid\n"           # known key (test): dropped, stays test
         "r3;It's ok;3;\n"                     # known key, no split named: a plain duplicate
         "r2;Same again;3;test\n"              # known key, the same split named: a plain duplicate
         "r13;Brand new row;5;test\n"
         "r29;Another new row;4;\n")           # hash: valid


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_home(monkeypatch, tmp_path)
    return make_repo(tmp_path / "repo", remote=tmp_path / "dvc-remote")


def _ids(root: Path, split: str) -> set[str]:
    return {r["id"] for r in batches.read_rows(Workspace(root), "reviews", split)}


def test_pandas_tsv_keeps_the_teams_holdout_through_the_cli(repo: Path, tmp_path: Path) -> None:
    created = run_gitops(*CREATE, "--split-column", "split", "--normalize", "html_unescape",
                         "--normalize", "strip", cwd=repo)
    assert created.exit_code == 0, created.stderr
    export = tmp_path / "export.tsv"
    export.write_bytes(EXPORT.encode("utf-8"))
    first = run_gitops("ingest", str(export), "--dataset", "reviews", cwd=repo)
    assert first.exit_code == 0, first.stderr
    assert "Reviews v1: +10 rows (train 4, valid 3, test 3; 5 kept the split named in 'split')" in first.stdout
    assert "Dropped 1 duplicate rows." in first.stderr
    assert _ids(repo, "test") == {"r0", "r2", "r12"}
    assert _ids(repo, "valid") == {"r1", "r5", "r9"}
    assert _ids(repo, "train") == {"r3", "r4", "r6", "r7"}
    stored = {r["id"]: r for r in batches.read_rows(Workspace(repo), "reviews")}
    assert set(stored["r0"]) == {"id", "text", "rating", "split"}  # no index column, no second split key
    assert stored["r0"]["text"] == "Great & cheap" and stored["r3"]["text"] == "It's ok"
    assert stored["r1"]["text"] == "Broke after a week"  # stripped
    assert stored["r2"]["text"] == 'They said "fine"\tthen left'
    assert stored["r7"]["text"] == "Arrived late"  # the first of the two r7 rows

    later = tmp_path / "later.txt"
    later.write_text(LATER, encoding="utf-8")
    second = run_gitops("ingest", str(later), "--delimiter", ";", "--dataset", "reviews", cwd=repo)
    assert second.exit_code == 0, second.stderr
    assert "Dropped 4 duplicate rows." in second.stderr
    assert ("2 of the dropped rows named another split than the one their key already has; a key's split "
            "never changes") in second.stderr
    assert _ids(repo, "test") == {"r0", "r2", "r12", "r13"}
    assert _ids(repo, "valid") == {"r1", "r5", "r9", "r29"}

    doc = yamlio.loads((repo / "registry/datasets/reviews.yaml").read_text(), "reviews.yaml")
    assert doc["split_column"] == "split" and doc["normalize"] == ["html_unescape", "strip"]
    for vid in ("v1", "v2"):
        assert doc["versions"][vid]["normalize"] == ["html_unescape", "strip"]
        assert doc["versions"][vid]["split_column"] == "split"
    shown = run_gitops("dataset", "show", "reviews", cwd=repo)
    assert "split column 'split' decides first" in shown.stdout and "normalize: html_unescape, strip" in shown.stdout


def test_an_unknown_split_value_is_a_row_error(repo: Path, tmp_path: Path) -> None:
    assert run_gitops(*CREATE, "--split-column", "split", cwd=repo).exit_code == 0
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\ttext\trating\tsplit\nr1\tfine\t1\ttest\nr2\tfine too\t2\tholdout\n", encoding="utf-8")
    result = run_gitops("ingest", str(bad), "--dataset", "reviews", cwd=repo)
    assert result.exit_code == 1
    assert (f"1 invalid row in {bad} (first at {bad}:3: column 'split': 'holdout' is not a split of this data "
            "set (train, valid, test; leave it empty to split by key hash)); nothing was ingested") in result.stderr
    assert not (repo / "data").exists()
    skipped = run_gitops("ingest", str(bad), "--dataset", "reviews", "--skip-invalid", cwd=repo)
    assert skipped.exit_code == 0 and _ids(repo, "test") == {"r1"}


def test_json_lines_with_a_bom_and_a_split_column(repo: Path, tmp_path: Path) -> None:
    assert run_gitops(*CREATE, "--split-column", "split", cwd=repo).exit_code == 0
    src = tmp_path / "rows.jsonl"
    lines = [{"id": "r0", "text": "a", "rating": 1, "split": "valid"}, {"id": "r4", "text": "b", "rating": 2},
             {"id": "r6", "text": "c", "rating": 3, "split": None}, {"id": "r7", "text": "d", "rating": 4, "split": 7}]
    src.write_text("\ufeff" + "".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    result = run_gitops("ingest", str(src), "--dataset", "reviews", "--skip-invalid", cwd=repo)
    assert result.exit_code == 0, result.stderr
    rejects = [json.loads(x) for x in (tmp_path / "rows.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [(4, "column 'split': '7' is not a split name")]
    assert _ids(repo, "valid") == {"r0"} and _ids(repo, "test") == {"r4"} and _ids(repo, "train") == {"r6"}


def test_header_cells_and_delimiters(tmp_path: Path) -> None:
    middle = tmp_path / "gap.csv"
    middle.write_text("id,,text\n1,2,3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"gap.csv: header cell 2 is empty; name every column \(only the first"):
        rows.read_file(middle)
    index_only = tmp_path / "one.csv"
    index_only.write_text(",id,text\n0,a,b\n1,c\n", encoding="utf-8")
    got = rows.read_file(index_only)
    assert got[0].values == {"id": "a", "text": "b"} and got[0].from_text
    assert got[1].values is None and got[1].problem == "has 2 fields, the header has 3"
    psv = tmp_path / "x.psv"
    psv.write_text("id|text\na|b, c\n", encoding="utf-8")
    assert rows.read_file(psv)[0].values == {"id": "a", "text": "b, c"}
    assert rows.file_format(tmp_path / "x.txt", "\t") == ("delimited", "\t")
    assert rows.file_format(tmp_path / "x.jsonl", ";") == ("jsonl", None)  # a delimiter is for text files
    with pytest.raises(DataError, match=r"unknown input format '.txt'"):
        rows.file_format(tmp_path / "x.txt")
    assert rows.parse_delimiter("tab") == rows.parse_delimiter("\\t") == "\t"
    for bad in ("ab", '"', "x", "\n", ""):
        with pytest.raises(DataError, match="must be one character"):
            rows.parse_delimiter(bad)


def test_normalisation_applies_before_dedupe_and_is_recorded(repo: Path, tmp_path: Path) -> None:
    """With the text as the key, two rows that differ only in entities and spaces are one row."""
    ws = Workspace(repo)
    from gitops import api

    api.create_dataset(ws, "texts", {"text": "string"}, "text", ["text"],
                       normalize=["html_unescape", "collapse_whitespace", "strip"])
    src = tmp_path / "t.csv"
    src.write_text('text\n"Fish &amp; chips"\n" Fish  &  chips "\n"Fish\n&amp;\tchips"\nOther\n', encoding="utf-8")
    result = api.ingest(ws, [src], "texts")
    assert result.total_added == 2 and result.duplicates == 2
    assert sorted(r["text"] for r in batches.read_rows(Workspace(repo), "texts")) == ["Fish & chips", "Other"]
    assert Workspace(repo).dataset("texts").versions["v1"].normalize == ["html_unescape", "collapse_whitespace",
                                                                          "strip"]


def test_normalisation_steps() -> None:
    clean = normalize.normalizer(["html_unescape", "nfc", "collapse_whitespace", "strip"])
    assert clean(" Caf\u0065\u0301 &lt;3&nbsp;\n\n ok ") == "Caf\u00e9 <3 ok"
    assert normalize.normalizer([]) is None
    assert normalize.STEPS["strip"]("\u00a0x\u2003") == "x"  # Unicode spaces, too


@pytest.mark.parametrize("header,message", [
    ("normalize: [strip, lowercase]\n", "normalize step 'lowercase' is not one of html_unescape, strip"),
    ("normalize: strip\n", "normalize must be a list of steps"),
    ("split_column: id\n", "split_column 'id' must not be one of the columns"),
    ("split_column: 3\n", "split_column must be the name of the input column"),
])
def test_schema_refuses_bad_split_column_and_normalize(header: str, message: str) -> None:
    from gitops.core import schema
    from gitops.validation import Problems

    text = f"name: d\ncolumns:\n  id: string\n  text: string\ntext_field: text\nkey: id\n{header}"
    problems = Problems()
    assert schema.parse_dataset(yamlio.loads(text, "d.yaml"), "d.yaml", "d", problems) is None
    assert [p.line for p in problems] == [7] and message in problems[0].message


def test_a_column_named_split_is_refused(repo: Path) -> None:
    result = run_gitops("dataset", "create", "d", "--column", "text:string", "--column", "split:string",
                        "--text-field", "text", "--key", "text", cwd=repo)
    assert result.exit_code == 1
    assert "column 'split' is reserved" in result.stderr and "split_column" in result.stderr
