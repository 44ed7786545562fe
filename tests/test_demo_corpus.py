"""The shipped demo corpus: regenerable, well-formed, splits into disjoint batches."""

from __future__ import annotations

import csv
import json

import pytest

from gitops.errors import DataError
from gitops.ml import corpus


def test_shipped_csv_matches_generator_and_schema():
    rows = corpus.load_corpus()
    assert rows == corpus.generate()  # the committed file is exactly what the seed produces
    assert 2500 <= len(rows) <= 3500 and corpus.corpus_path().stat().st_size < 600_000
    assert len({r["id"] for r in rows}) == len(rows) and len({r["text"] for r in rows}) == len(rows)
    for r in rows:
        assert r["rating"] in (1, 2, 3, 4, 5) and 8 <= len(r["text"].split()) <= 30
        assert r["product"] in corpus.PRODUCTS


def test_tone_agrees_with_rating():
    rows = corpus.load_corpus()
    neg = [r for r in rows if r["rating"] <= 2]
    pos = [r for r in rows if r["rating"] >= 4]
    assert not any("Highly recommended" in r["text"] for r in neg)
    assert not any("Do not buy it" in r["text"] for r in pos)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_write_batches_disjoint(tmp_path, fmt):
    paths = corpus.write_batches(tmp_path, n=3, rows_per_batch=50, fmt=fmt)
    assert [p.name for p in paths] == [f"batch-{i}.{fmt}" for i in (1, 2, 3)]
    ids = [_ids(p, fmt) for p in paths]
    assert all(len(x) == 50 for x in ids)
    assert len(set().union(*ids)) == 150


def test_write_batches_rejects_bad_args(tmp_path):
    with pytest.raises(DataError, match="format"):
        corpus.write_batches(tmp_path, fmt="xlsx")
    with pytest.raises(DataError, match="too few"):
        corpus.write_batches(tmp_path, n=2, rows_per_batch=2000)


def _ids(path, fmt):
    if fmt == "csv":
        with path.open(newline="") as fh:
            return {r["id"] for r in csv.DictReader(fh)}
    if fmt == "jsonl":
        return {json.loads(line)["id"] for line in path.read_text().splitlines()}
    import pyarrow.parquet as pq

    return set(pq.read_table(path).column("id").to_pylist())


def test_write_batches_rejects_more_batches_than_rows(tmp_path):
    with pytest.raises(DataError, match="too few"):
        corpus.write_batches(tmp_path, n=5000)
