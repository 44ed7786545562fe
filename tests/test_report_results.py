"""The results document: JSON round trip, self-checking dataclasses, and clear errors for bad documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gitops.core.schema import Version
from gitops.errors import EvalError, GitopsError, NotFoundError
from gitops.eval.results import (
    SCHEMA_VERSION,
    CurvePoint,
    DatasetInfo,
    Environment,
    EvalResults,
    GateResult,
    GenerationInfo,
    ModelResult,
    ResultsError,
    Sample,
)

GOLDEN = Path(__file__).parent / "golden"


def load_doc(name: str = "results-v3.json") -> dict:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def error_for(doc: object) -> str:
    with pytest.raises(ResultsError) as info:
        EvalResults.from_dict(doc, "results.json")
    assert isinstance(info.value, GitopsError) and isinstance(info.value, EvalError)
    return str(info.value)


@pytest.mark.parametrize("name", ["results-v3.json", "results-v2.json", "results-first.json", "results-ct2.json"])
def test_round_trip_is_exact(name, tmp_path):
    text = (GOLDEN / name).read_text(encoding="utf-8")
    results = EvalResults.from_json(text, name)
    assert results.to_json() == text
    results.save(tmp_path / "again.json")
    assert EvalResults.load(tmp_path / "again.json") == results


def test_document_shape_and_derived_verdict():
    doc = load_doc()
    assert next(iter(doc)) == "schema_version" and doc["schema_version"] == SCHEMA_VERSION
    assert doc["verdict"] == "pass"
    assert EvalResults.from_dict(load_doc("results-v2.json")).verdict == "fail"
    first = EvalResults.from_dict(load_doc("results-first.json"))
    assert first.baseline is None and first.alias is None
    assert [g.metric for g in first.failed_gates] == ["latency_p95_ms"]


def test_wrong_or_missing_schema_version():
    doc = load_doc()
    doc["schema_version"] = 1  # a document from before intervals and parents
    assert error_for(doc) == ("results.json has schema_version 1, but this gitops reads only version 2; "
                              "use the gitops version that wrote it")
    doc["schema_version"] = True
    assert "schema_version true" in error_for(doc)
    del doc["schema_version"]
    assert error_for(doc) == "results.json has no schema_version; it is not a gitops results document"
    assert error_for([1, 2]) == "results.json must be a JSON object (a gitops results document)"


def test_missing_unknown_and_mistyped_keys_name_the_path():
    doc = load_doc()
    del doc["candidate"]["md5"]      # optional: fine
    EvalResults.from_dict(doc)
    del doc["candidate"]["ref"]
    assert error_for(doc) == "results.json: candidate.ref is missing"
    doc = load_doc()
    doc["baseline"]["lineage"]["branch"] = "main"
    assert error_for(doc).startswith("results.json: baseline.lineage.branch is not a known key of Lineage")
    doc = load_doc()
    doc["candidate"]["metrics"]["loss"] = "low"
    assert error_for(doc) == 'results.json: candidate.metrics.loss must be a finite number or null, not "low"'
    doc = load_doc()
    doc["samples"][1]["candidate"] = 7
    assert error_for(doc) == "results.json: samples[1].candidate must be a string, not 7"
    doc = load_doc()
    doc["generation"]["greedy"] = "yes"
    assert error_for(doc) == 'results.json: generation.greedy must be true or false, not "yes"'
    doc = load_doc()
    doc["dataset"]["rows"] = True   # a bool is not a row count
    assert "dataset.rows must be a whole number" in error_for(doc)
    doc = load_doc()
    doc["gates"][0]["bound"] = "ceiling"
    assert "gates[0] bound 'ceiling' is not one of max, min" in error_for(doc)
    doc = load_doc()
    doc["candidate"]["training_curve"] = {"step": 1}
    assert "candidate.training_curve must be a list" in error_for(doc)


def test_value_rules_on_the_whole_document_read_as_a_sentence():
    doc = load_doc("results-first.json")
    doc["samples"][0]["baseline"] = "b"
    assert error_for(doc) == "results.json: samples carry baseline completions, but there is no baseline"


def test_hand_edited_verdict_is_caught():
    doc = load_doc("results-v2.json")
    doc["verdict"] = "pass"
    assert error_for(doc) == "results.json: verdict says \"pass\", but the gates say 'fail'"


def test_not_json_and_missing_file(tmp_path):
    with pytest.raises(ResultsError, match=r"r.json:1: not valid JSON \(.*, column 2\)"):
        EvalResults.from_json("{oops", "r.json")
    with pytest.raises(ResultsError, match="not valid JSON"):
        EvalResults.from_json('{"schema_version": 1, "x": NaN', "r.json")
    with pytest.raises(NotFoundError, match="does not exist"):
        EvalResults.load(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ResultsError, match="cannot read results file"):
        EvalResults.load(tmp_path / "bin.json")


def test_dataclasses_check_themselves_when_built_in_code():
    with pytest.raises(ResultsError, match=r"CurvePoint.train_loss must be a finite number or null"):
        CurvePoint(step=1, train_loss=float("nan"))
    with pytest.raises(ResultsError, match=r"ModelResult.metrics.loss must be a finite number or null"):
        ModelResult(ref="m@v1", version="v1", format="hf", metrics={"loss": float("inf")})
    with pytest.raises(ResultsError, match="is skipped, so it must count as passed"):
        GateResult(metric="loss", bound="max", threshold=1, passed=False, message="", skipped=True)
    # ints become floats, so the JSON never depends on how a number was produced
    assert ModelResult(ref="m@v1", version="v1", format="hf", metrics={"loss": 2}).metrics["loss"] == 2.0
    candidate = ModelResult(ref="m@v1", version="v1", format="hf")
    with pytest.raises(ResultsError, match="samples carry baseline completions"):
        EvalResults(created_at="now", model="m", dataset=DatasetInfo("d@v1"), generation=GenerationInfo(8),
                    candidate=candidate, environment=Environment("cpu"),
                    samples=[Sample(prompt="p", candidate="c", baseline="b")])


def test_model_result_from_registry_version_copies_lineage():
    version = Version(id="v3", format="ct2", path="models/m/v3", md5="a" * 32, quantization="int8",
                      parent="v2", base_model="tiny", dataset="reviews@v2", config_hash="h", commit="c0ffee",
                      created_at="2026-11-22T00:00:00Z", author="Ana")
    result = ModelResult.from_version("m@v3", version, {"loss": 1.5})
    assert (result.version, result.format, result.quantization, result.md5) == ("v3", "ct2", "int8", "a" * 32)
    assert result.lineage.parent == "v2" and result.lineage.dataset == "reviews@v2"
    assert result.lineage.author == "Ana" and result.training_curve == []


def test_environment_collect_reads_metadata_only():
    env = Environment.collect("cpu")
    assert env.device == "cpu" and env.python and env.gitops
    assert env.torch is None or env.torch[0].isdigit()
    # Reading versions and rendering a report must not import the heavy libraries.
    code = ("import sys; from gitops.eval.results import Environment, EvalResults; "
            "from gitops.report.render import report_from_files; Environment.collect('cpu'); "
            f"report_from_files([{str(GOLDEN / 'results-v3.json')!r}]); "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'ctranslate2', 'dvc') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent,
                   env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
