"""Every expensive verb checks its references, files and options before its first expensive step.

Each case gives a verb good arguments and one bad LAST argument (a reference that does not exist, an
output that cannot be written, a modified config, a model the judge does not serve...). All cases
run in one fresh interpreter (tests/fail_fast_runner.py), which records what each case imported:
loading a model imports torch, transformers or CTranslate2, so a case that imported none of them
refused before any model loaded. Where a verb's expensive step is not a model (ingest reads files,
judge sends requests), the case checks that step's own marker. The versions' weights are not real
weights: a verb that reached them would fail some other way, so the sentence and the imports tell a
refusal before the expensive step from one after it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import GIT_IDENTITY

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "ctranslate2", "peft", "accelerate", "gguf"}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Run every case (tests/fail_fast_runner.py) once; each test reads its own."""
    work = tmp_path_factory.mktemp("fail-fast")
    home = work / "home"
    home.mkdir()
    env = {**os.environ, **GIT_IDENTITY, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"), "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(ROOT),
           "GITOPS_CACHE_DIR": str(work / "cache"), "XDG_CONFIG_HOME": str(home / ".config")}
    (home / ".gitconfig").write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n")
    for key in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "GITHUB_API_URL"):
        env.pop(key, None)
    proc = subprocess.run([sys.executable, "-m", "tests.fail_fast_runner", str(work)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["setup_heavy"] == [], found["setup_heavy"]  # building the repository loads no model
    return found["cases"]


def refused(case: dict, sentence: str, code: int = 1) -> None:
    """The case exited with ``code``, saying ``sentence``, without a traceback or any heavy import."""
    assert case["exit_code"] == code, case
    assert sentence in case["output"], case["output"]
    assert "Traceback" not in case["output"]
    assert not set(case["imported"]) & HEAVY, f"a model was loaded before the refusal: {case['imported']}"


def test_train_refuses_a_modified_tracked_config_before_the_first_step(cases: dict) -> None:
    case = cases["train-modified-config"]
    refused(case, "cannot train: the work tree has uncommitted changes (train.yaml); commit or stash them first")
    assert not case["run_dirs"]  # the run's work directory, made just before training, was never made


def test_train_refuses_a_missing_output_model_and_base_version_first(cases: dict) -> None:
    refused(cases["train-no-output-model"], "output.model: model 'nobody' does not exist")
    refused(cases["train-no-base-version"], "has no version v9")


def test_compare_resolves_every_variant_before_predicting(cases: dict) -> None:
    refused(cases["compare-last-missing"], "has no version v9")


def test_predict_refuses_an_output_it_cannot_write(cases: dict) -> None:
    refused(cases["predict-bad-out"], "is a file, so")


def test_eval_resolves_the_baseline_and_checks_out_and_alias_first(cases: dict) -> None:
    refused(cases["eval-missing-baseline"], "has no version v9")
    refused(cases["eval-bad-out"], "is a file, so", code=2)
    refused(cases["eval-bad-alias"], "shaped like a version", code=2)
    refused(cases["eval-bad-split"], "--split holdout: data set reviews has splits train, valid, test")


def test_convert_checks_the_alias_and_the_format_before_converting(cases: dict) -> None:
    refused(cases["convert-bad-alias"], "--alias: ")
    refused(cases["convert-ct2"], "is a CTranslate2 version already: convert its parent")


def test_serve_refuses_a_bad_device_before_loading(cases: dict) -> None:
    refused(cases["serve-bad-device"], "Invalid value for '--device'", code=2)


def test_judge_asks_whether_the_model_is_served_before_judging(cases: dict) -> None:
    case = cases["judge-wrong-model"]
    refused(case, "does not serve the model 'nobody'")
    assert case["judge_posts"] == 0  # not one sample sent to a judge that was never going to answer


def test_ingest_finds_every_file_before_reading_the_first(cases: dict) -> None:
    case = cases["ingest-last-missing"]
    refused(case, "missing.csv: file not found")
    assert "validating" not in case["output"]  # the stage that reads and checks the rows never began


def test_register_base_checks_the_work_tree_before_dequantizing(cases: dict) -> None:
    refused(cases["register-base-dirty"], "cannot register a base model: the work tree has uncommitted changes")
    refused(cases["register-base-bad-name"], "--name: ")


def test_demo_refuses_a_used_directory_before_building_anything(cases: dict) -> None:
    refused(cases["demo-used-dir"], "already exists and is not empty")
