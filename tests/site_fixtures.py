"""A demo-shaped registry for the ``gitops site`` tests, built with the registry verbs (real git,
real DVC with a local remote) instead of ``gitops demo`` (no training: seconds, not a minute).

The same moves as the demo: the ``reviews`` data set ingested twice; v1 registered and made
``production``; v2 fine-tuned from v1 on the grown data set; v3 = the ct2 int8 variant of v2 made
``staging``; ``production`` moved v1 -> v3 through a merged pull request (#12). Beside it a
classification model with three variants (two weights, a zero-shot prompt version on the first)
and their results documents, and hostile strings wherever
the registry lets a user write text: descriptions, notes, data rows, sample completions, a
commit author.
"""

from __future__ import annotations

import csv
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.hostile_fixtures import isolated

MODEL = "review-autocomplete"
CLASSIFIER = "sentiment"
DATASET = "reviews"
REPO = "acme/models"
# Each would run script if it reached the page as markup; every one must show as the text it is.
HOSTILE = {
    "script": "<script>document.title='pwned-script'</script>",
    "img": "\"><img src=x onerror=\"document.title='pwned-img'\">",
    "link": "<a href=\"javascript:document.title='pwned-link'\">click</a>",
    "entity": "&lt;b&gt; &amp; stays literal",
}
AUTHOR = "Mal \"&amp;\" O'Reilly"  # git strips < and > from names; quotes and ampersands it keeps
MOVES = [("production", None, "v1"), ("staging", None, "v3"), ("production", "v1", "v3")]  # oldest first


@dataclass
class SiteRepo:
    root: Path
    head: str
    before_results: str  # the commit before the results document was committed


def git(root: Path, *args: str, env: dict | None = None) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


def _weights(base: Path, name: str) -> Path:
    d = base / "weights" / name
    d.mkdir(parents=True)
    (d / "model.safetensors").write_text(f"weights of {name}")
    (d / "config.json").write_text('{"model_type": "opt"}')
    (d / "README.md").write_text(f"# {name}\n\nA model card. {HOSTILE['script']}\n")
    return d


def _batch(base: Path, name: str, rows: list[tuple[str, str]]) -> Path:
    path = base / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"])
        writer.writerows(rows)
    return path


def _results(version: str, baseline: str, alias: str | None, created: str) -> str:
    from gitops.eval.results import (
        Comparison,
        DatasetInfo,
        Delta,
        Environment,
        EvalResults,
        GenerationInfo,
        ModelResult,
        Sample,
    )

    return EvalResults(
        created_at=created, model=MODEL, alias=alias, dataset=DatasetInfo(ref=f"{DATASET}@v2", rows=40),
        generation=GenerationInfo(max_new_tokens=8, samples=2),
        candidate=ModelResult(ref=f"{MODEL}@{version}", version=version, format="hf",
                              metrics={"loss": 0.79, "perplexity": 2.2}),
        baseline=ModelResult(ref=f"{MODEL}@{baseline}", version=baseline, format="hf",
                             metrics={"loss": 0.8, "perplexity": 2.23}),
        comparisons=[Comparison(against="baseline", version=baseline,
                                deltas={"loss": Delta(delta=-0.01, low=-0.02, high=-0.001, unit="rows", units=40)})],
        samples=[Sample(prompt=f"The tour was {HOSTILE['script']}", candidate=f" great {HOSTILE['img']}",
                        baseline=f" fine {HOSTILE['link']}", reference=HOSTILE["entity"]),
                 Sample(prompt="The lamp", candidate=" works.", baseline=" broke.")],
        environment=Environment(device="cpu", threads=1)).to_json()


def build_site_repo(base: Path) -> SiteRepo:
    """The registry described in the module docstring, under ``base``."""
    from gitops import api
    from tests.report_fixtures_cls import classification_results

    root = base / "repo"
    with isolated(base / "home"):
        api.init(root, remote=str(base / "remote"), repo=REPO)

        def ws():  # untyped: a fresh Workspace: git moves below happen outside it
            return api.Workspace.open(root)

        api.create_model(ws(), MODEL, description=f"Review auto-suggest {HOSTILE['img']}", owners=["@acme/ml"],
                         protect={"production": ["@acme/mlops"]},
                         gates=[{"metric": "perplexity", "max_increase_pct": 10}])
        api.create_dataset(ws(), DATASET, {"id": "string", "text": "string"}, text_field="text", key=["id"],
                           description=f"Product reviews {HOSTILE['script']}")
        rows = [(f"r{i}", f"review {i} {HOSTILE[k]}") for i, k in enumerate(HOSTILE)]
        api.ingest(ws(), [_batch(base, "batch-1", rows + [(f"r{i}", f"plain review {i}") for i in range(4, 20)])],
                   DATASET)
        api.register(ws(), MODEL, _weights(base, "v1"), fmt="hf", dataset=f"{DATASET}@v1",
                     metrics={"eval_loss": 0.8, "perplexity": 2.23}, note=HOSTILE["entity"])
        api.set_alias(ws(), MODEL, "production", "v1", note="first release")
        api.ingest(ws(), [_batch(base, "batch-2", [(f"s{i}", f"second batch review {i}") for i in range(20)])],
                   DATASET)
        api.register(ws(), MODEL, _weights(base, "v2"), fmt="hf", parent="v1", dataset=f"{DATASET}@v2",
                     metrics={"eval_loss": 0.79, "perplexity": 2.2}, note=HOSTILE["img"])
        api.register(ws(), MODEL, _weights(base, "v3"), fmt="ct2", parent="v2", quantization="int8",
                     note="int8 of v2")
        with_author = {"GIT_AUTHOR_NAME": AUTHOR, "GIT_AUTHOR_EMAIL": "mal@example.com"}
        os.environ.update(with_author)
        try:
            api.set_alias(ws(), MODEL, "staging", "v3", note=HOSTILE["script"])
        finally:
            for key in with_author:
                os.environ.pop(key)
        git(root, "checkout", "-q", "-b", "promote-v3")
        api.set_alias(ws(), MODEL, "production", "v3", note=HOSTILE["link"])
        git(root, "checkout", "-q", "main")
        git(root, "merge", "-q", "--no-ff", "-m", "Merge pull request #12 from acme/promote-v3", "promote-v3")
        (root / "results-v3.json").write_text(_results("v3", "v1", "production", "2026-01-01T00:00:00Z"))
        before = git(root, "rev-parse", "HEAD")
        block = {"input": "Review: {text}", "label": "rating", "labels": ["neg", "neu", "pos"], "fallback": "neu"}
        api.create_model(ws(), CLASSIFIER, description="Rating classifier", task="classification",
                         classification=block)
        for name in ("v1", "v2"):
            api.register(ws(), CLASSIFIER, _weights(base, f"{CLASSIFIER}-{name}"), fmt="hf")
        prompt = base / "zero-shot.json"  # v3: a zero-shot prompt version on v1 (JSON is YAML)
        prompt.write_text(f'{{"base": "{CLASSIFIER}@v1", "task": "Rate the review.", '
                          '"template": "{task}\\n{sample}\\nLabel:", "generation": {"max_new_tokens": 3}}')
        api.add_prompt(ws(), CLASSIFIER, prompt)
        (root / "results" / "v2").mkdir(parents=True)
        (root / "results" / "v2" / "results.json").write_text(
            _results("v2", "v1", None, "2025-12-31T00:00:00Z"))
        cls = classification_results("v2", "v1", [1, 1, 0, 1, 1, 1, 0, 1, 1, 1] * 3, [1, 0, 0, 1, 0, 1, 0, 1, 0, 1] * 3)
        (root / "results" / "sentiment").mkdir()
        (root / "results" / "sentiment" / "results.json").write_text(cls.to_json())
        git(root, "add", "results")
        git(root, "commit", "-q", "-m", "evaluation results (#13)")
        return SiteRepo(root, git(root, "rev-parse", "HEAD"), before)
