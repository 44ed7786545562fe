"""A row's split is a function of its key alone, whatever batch it arrives in.

The rule (gitops/data/keys.py, README "what a data set version records"): sha256 of the key values
JSON-encoded as a compact list (``ensure_ascii=False``), its first 32 hex digits are the key hash;
the first 16 of those, read as an integer and divided by 2**64, fall into the split whose
cumulative fraction (in the data set file's order) first exceeds them. The test recomputes the rule
itself and ingests the same keys, in different batch make-ups, into two data sets through the CLI.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_gitops

SPLITS = {"train": 0.6, "valid": 0.25, "test": 0.15}  # not the default, so the fractions must be read


def documented_split(key_values: list, splits: dict[str, float]) -> str:
    """The split rule, written from its description (not imported from gitops)."""
    text = json.dumps(key_values, ensure_ascii=False, separators=(",", ":"))
    khash = hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
    point = int(khash[:16], 16) / 2**64
    cumulative = 0.0
    for name, fraction in splits.items():
        cumulative += fraction
        if point < cumulative:
            return name
    return list(splits)[-1]


def make_rows(n: int) -> list[dict]:
    """Rows with a composite key (string, int): non-ASCII ids (ensure_ascii matters) and ints of
    both signs (``1`` and ``"1"`` must hash differently)."""
    ids = ["a", "é", "日本", "🙂", "x y", "1", "z" * 30]
    return [{"id": f"{ids[i % len(ids)]}-{i // len(ids)}", "n": (i * 7919) % 1000 - 500, "text": f"row {i}"}
            for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def gitops(*args: str) -> str:
    result = run_gitops(*args)
    assert result.exit_code == 0, f"gitops {' '.join(args)}: {result.stderr}"
    return result.stdout


def ingest_in_batches(root: Path, dataset: str, batches: list[list[dict]], scratch: Path) -> None:
    for i, rows in enumerate(batches):
        gitops("ingest", str(write_jsonl(scratch / f"{dataset}-{i}.jsonl", rows)), "--dataset", dataset,
               "-C", str(root))


def stored_splits(root: Path, dataset: str) -> dict[tuple, str]:
    """(id, n) -> split of every row in the data set's batch files, as written on disk."""
    meta = yaml.safe_load((root / "registry" / "datasets" / f"{dataset}.yaml").read_text(encoding="utf-8"))
    out: dict[tuple, str] = {}
    for version in meta["versions"].values():
        for line in (root / version["batch"]).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert (row["id"], row["n"]) not in out, f"{row['id']} stored twice"
            out[(row["id"], row["n"])] = row["split"]
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    gitops("init", str(root), "--remote", str(tmp_path / "remote"))
    for name in ("batched", "whole"):
        gitops("dataset", "create", name, "--column", "id:string", "--column", "n:int", "--column", "text:string",
               "--text-field", "text", "--key", "id", "--key", "n",
               *[a for s, f in SPLITS.items() for a in ("--split", f"{s}={f}")], "-C", str(root))
    return root


def test_every_split_is_the_rule_applied_to_the_key_in_any_batch_make_up(repo: Path, tmp_path: Path) -> None:
    rows = make_rows(240)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    # "batched": shuffled rows in batches of 1, 13, 60 and 166; "whole": reversed, 200 then 240
    # (the second batch repeats 200 keys, which are dropped as duplicates)
    sizes, start, batched = [1, 13, 60, 166], 0, []
    for size in sizes:
        batched.append(shuffled[start:start + size])
        start += size
    ingest_in_batches(repo, "batched", batched, tmp_path)
    ingest_in_batches(repo, "whole", [rows[::-1][:200], rows[::-1]], tmp_path)

    expected = {(r["id"], r["n"]): documented_split([r["id"], r["n"]], SPLITS) for r in rows}
    assert set(expected.values()) == set(SPLITS)  # the keys reach every split, so the check has teeth
    for dataset in ("batched", "whole"):
        stored = stored_splits(repo, dataset)
        assert set(stored) == set(expected), dataset
        wrong = {k: (v, expected[k]) for k, v in stored.items() if v != expected[k]}
        assert not wrong, f"{dataset}: {len(wrong)} rows not in their key's split, e.g. {next(iter(wrong.items()))}"
    # row by row, the two batch make-ups agree
    assert stored_splits(repo, "batched") == stored_splits(repo, "whole")

