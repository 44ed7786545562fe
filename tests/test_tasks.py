"""Tasks (issue 12, item 1): ``task: classification`` in model.yaml, validated with key and line,
and the extraction rules that turn a raw model output into a label (or the fallback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops import yamlio
from gitops.core.task import (
    ClassificationTask,
    Rule,
    check_columns,
    check_labels,
    parse_classification,
)
from gitops.validation import Problems
from tests.conftest import git_state, run_gitops

MODEL = "ratings"
BLOCK = """\
input: "Review: {text}\\nRating:"
label: rating
labels: ["1", "2", "3", "4", "5"]
fallback: "3"
extract:
  "5": {regex: "\\\\b(5|five)\\\\b"}
  "1": {exact: "one"}
"""


def parse(block_text: str) -> tuple[ClassificationTask | None, Problems]:
    text = "task: classification\nclassification:\n" + "".join("  " + line + "\n" for line in
                                                             block_text.splitlines())
    p = Problems()
    return parse_classification(yamlio.loads(text, "model.yaml"), "model.yaml", p), p


def test_extraction_word_bounded_regex_exact_and_fallback() -> None:
    task, p = parse(BLOCK)
    assert not p and task is not None
    assert task.predict("I'd say 4 stars") == ("4", True)
    assert task.predict("rating: 14") == ("3", False)          # word-bounded: 14 is not 1 or 4
    assert task.predict("FIVE, easily") == ("5", True)        # the regex rule, case-insensitive
    assert task.predict("  One ") == ("1", True)              # exact rule, whole output
    assert task.predict("one of the best") == ("3", False)    # exact means exact: '1' does not match here
    assert task.predict("no idea") == ("3", False)
    assert task.predict("2 or 4") == ("2", True)              # first label in vocabulary order wins
    assert task.render({"text": "great", "rating": "5"}) == "Review: great\nRating:"


def test_round_trip_through_plain_data() -> None:
    task, _ = parse(BLOCK)
    again = ClassificationTask.from_dict(json.loads(json.dumps(task.to_dict())))
    assert again == task and again.extract["5"] == Rule("regex", r"\b(5|five)\b")


@pytest.mark.parametrize("change, needle", [
    (lambda b: b.replace("{text}", "{text!r}"), "slot '{text}' must be a plain column name"),
    (lambda b: b.replace('"Review: {text}\\nRating:"', '"no slot here"'), "names no column"),
    (lambda b: b.replace('fallback: "3"', 'fallback: "9"'), "fallback '9' is not one of the labels"),
    (lambda b: b.replace('"4", "5"', '"4", "4"'), "lists '4' twice"),
    (lambda b: b.replace('["1", "2", "3", "4", "5"]', '["1"]'), "at least two labels"),
    (lambda b: b.replace('"5": {regex', '"7": {regex'), "'7' is not one of the labels"),
    (lambda b: b.replace("(5|five)", "(5|five"), "does not compile"),
    (lambda b: b.replace("{exact:", "{fuzzy:"), "must be {regex: '...'} or {exact: '...'}"),
    (lambda b: b.replace("label: rating\n", ""), "missing the required key 'label'"),
    (lambda b: b + "colour: blue\n", "unknown key 'colour' in classification"),
])
def test_bad_blocks_name_key_and_line(change, needle) -> None:
    task, p = parse(change(BLOCK))
    assert task is None
    assert any(needle in m for m in p.messages()), p.messages()
    assert all(problem.line is not None for problem in p)


def test_columns_and_label_coverage() -> None:
    task, _ = parse(BLOCK)
    assert check_columns(task, {"text": "string", "rating": "string"}, "reviews@v1") is None
    assert "names column 'text', which reviews@v1 does not have" in check_columns(task, ["body", "rating"],
                                                                                   "reviews@v1")
    assert "label column 'rating'" in check_columns(task, ["text", "stars"], "reviews@v1")
    assert check_labels(task, ["1", 5, "3"], "reviews@v1") is None
    assert "do not cover reviews@v1: it has '0', '6'" in check_labels(task, ["1", "6", "0"], "reviews@v1")


@pytest.fixture
def block_file(tmp_path: Path) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(BLOCK)
    return path


def test_model_create_with_a_classification_task(gitops_repo: Path, block_file: Path) -> None:
    res = run_gitops("model", "create", MODEL, "--task", "classification", "--classification", str(block_file),
                     cwd=gitops_repo)
    assert res.exit_code == 0, res.stderr
    shown = run_gitops("show", MODEL, "--json", cwd=gitops_repo)
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["task"] == "classification"
    assert data["classification"]["labels"] == ["1", "2", "3", "4", "5"]
    assert data["classification"]["extract"]["1"] == {"exact": "one"}
    # a second read (from the content cache) gives the same task
    assert json.loads(run_gitops("show", MODEL, "--json", cwd=gitops_repo).stdout) == data


def test_classification_without_its_block_is_refused(gitops_repo: Path) -> None:
    before = git_state(gitops_repo)
    res = run_gitops("model", "create", MODEL, "--task", "classification", cwd=gitops_repo)
    assert res.exit_code == 1 and "needs a 'classification' mapping" in res.stderr
    assert "Traceback" not in res.stderr
    assert git_state(gitops_repo) == before and not (gitops_repo / "registry" / MODEL).exists()


def test_hand_edited_bad_block_names_file_and_line(gitops_repo: Path, block_file: Path) -> None:
    assert run_gitops("model", "create", MODEL, "--task", "classification", "--classification",
                      str(block_file), cwd=gitops_repo).exit_code == 0
    path = gitops_repo / "registry" / MODEL / "model.yaml"
    path.write_text(path.read_text().replace("fallback: '3'", "fallback: '0'"))
    res = run_gitops("show", cwd=gitops_repo)
    assert res.exit_code == 1, res.stdout
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "fallback" in t)
    assert f"registry/{MODEL}/model.yaml:{line}" in res.stderr and "fallback '0'" in res.stderr


def test_a_block_without_task_classification_is_refused(gitops_repo: Path, block_file: Path) -> None:
    res = run_gitops("model", "create", MODEL, "--classification", str(block_file), cwd=gitops_repo)
    assert res.exit_code == 1 and "needs 'task: classification'" in res.stderr
