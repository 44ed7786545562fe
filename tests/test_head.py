"""Head versions (issue 20 item 1): a classification head on the frozen, pinned toy base.

One repository per module (a real git repo, DVC with a local remote): the ratings data set (200
reviews whose words say their rating), the toy base registered as ``ratings-base@v1``, the
classification model ``ratings`` with ``v1`` a zero-shot prompt version and ``v2`` a head trained by
``gitops train``. Every check runs the real CLI or the library on the real toy model; the
probabilities of predict are checked against an independent, unbatched forward pass of the base.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops import api
from gitops.core.workspace import Workspace
from gitops.data import batches
from tests.conftest import git_state, run_gitops
from tests.eval_fixtures import _isolate
from tests.prompt_fixtures import TASK_BLOCK, review_rows

MODEL, BASE, DATA = "ratings", "ratings-base", "reviews"
LABELS = ["1", "2", "3", "4", "5"]
HEAD = {"base_model": f"{BASE}@v1", "dataset": f"{DATA}@v1", "adapter": {"type": "head"},
        "head": {"type": "mlp", "hidden": 16, "epochs": 60, "patience": 60}, "output": {"model": MODEL}}


@dataclass
class HeadRepo:
    root: Path
    cache: Path  # the machine-local cache the module's embeddings go to (fresh: counts are exact)
    tmp: Path
    first: dict  # what the first `gitops train` printed and registered

    def config(self, name: str, **changes: object) -> Path:
        doc = json.loads(json.dumps(HEAD))
        for key, value in changes.items():
            section, _, leaf = key.partition(".")
            if leaf:
                doc.setdefault(section, {})[leaf] = value
            else:
                doc[section] = value
        path = self.tmp / f"{name}.yaml"
        path.write_text(json.dumps(doc))
        return path


@pytest.fixture(scope="module")
def head_repo(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path) -> HeadRepo:
    import torch

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("head")
    (tmp / "home").mkdir()
    cache = tmp / "cache"
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp / "home", cache)
        root = api.init(tmp / "repo", remote=str(tmp / "remote")).root
        rows = review_rows(200)
        (tmp / "one.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:150]))
        (tmp / "two.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[150:]))
        (tmp / "task.yaml").write_text(TASK_BLOCK)
        (tmp / "zero.yaml").write_text(json.dumps({"base": f"{BASE}@v1", "task": "Rate the review from 1 to 5.",
                                                   "template": "{task}\n{sample}\nRating:",
                                                   "generation": {"max_new_tokens": 3}}))
        for args in (("dataset", "create", DATA, "--column", "id:string", "--column", "text:string", "--column",
                      "rating:string", "--text-field", "text", "--key", "id"),
                     ("ingest", str(tmp / "one.jsonl"), "--dataset", DATA),
                     ("model", "create", BASE), ("register", BASE, str(base_model_dir), "--format", "hf"),
                     ("model", "create", MODEL, "--task", "classification", "--classification", str(tmp / "task.yaml")),
                     ("prompt", "add", MODEL, "--config", str(tmp / "zero.yaml"))):
            res = run_gitops(*args, cwd=root)
            assert res.exit_code == 0, (args, res.stdout, res.stderr)
        repo = HeadRepo(root, cache, tmp, {})
        res = run_gitops("train", str(repo.config("head")), "--threads", "1", cwd=root)
        assert res.exit_code == 0, res.stderr
        repo.first = {"stdout": res.stdout, "version": Workspace.open(root).registry().model(MODEL).versions["v2"]}
    return repo


@pytest.fixture(autouse=True)
def module_cache(head_repo: HeadRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(head_repo.cache))


def split_rows(repo: HeadRepo, ref: str, *splits: str) -> list[dict]:
    return [r for r in batches.read_rows(Workspace.open(repo.root), ref) if r["split"] in splits]


def predicted(repo: HeadRepo, ref: str, name: str, *extra: str) -> list[dict]:
    out = repo.tmp / name
    res = run_gitops("predict", ref, "--dataset", f"{DATA}@v1", "--out", str(out), *extra, cwd=repo.root)
    assert res.exit_code == 0, res.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_head_version_stores_kilobytes_pinned_to_its_base(head_repo: HeadRepo) -> None:
    ws = Workspace.open(head_repo.root)
    version = head_repo.first["version"]
    base = ws.registry().model(BASE).versions["v1"]
    assert (version.format, version.base_model, version.base_md5) == ("head", f"{BASE}@v1", base.md5)
    rows = split_rows(head_repo, f"{DATA}@v1", "train", "valid")
    assert f"embedded {len(rows)} row(s) with the base, 0 from the cache" in head_repo.first["stdout"]
    files = ws.root / version.path
    assert sorted(p.name for p in files.iterdir()) == ["README.md", "head.json", "head.safetensors",
                                                       "loss_curve.json", "metrics.json", "train_config.yaml"]
    assert sum(p.stat().st_size for p in files.iterdir()) < 64 * 1024  # the base (MBs) is not stored
    assert (ws.root / f"{version.path}.dvc").is_file()  # in DVC like every version
    spec = json.loads((files / "head.json").read_text())
    assert spec["labels"] == LABELS and spec["base_model"] == f"{BASE}@v1" and spec["base_md5"] == base.md5
    assert (spec["pooling"], spec["layer"], spec["type"], spec["hidden"]) == ("last", -1, "mlp", 16)
    assert spec["template"] == "Review: {text}"
    assert version.config["prompt"] == {"template": "Review: {text}"} and version.config["adapter"] == {"type": "head"}
    assert version.metrics["train_rows"] + version.metrics["valid_rows"] == len(rows)
    assert version.metrics["eval_accuracy"] > 0.8  # the words say the rating: the head learns them
    shown = run_gitops("show", MODEL, cwd=head_repo.root)
    assert shown.exit_code == 0 and f"head on {BASE}@v1" in shown.stdout  # nothing without its base


def test_predict_gives_every_label_a_probability_and_is_never_invalid(head_repo: HeadRepo) -> None:
    head = predicted(head_repo, f"{MODEL}@v2", "head.jsonl")
    zero = predicted(head_repo, f"{MODEL}@v1", "zero.jsonl")
    assert [p["key"] for p in head] == [p["key"] for p in zero]
    for p in head:
        probs = p["probabilities"]
        assert list(probs) == LABELS and sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
        assert p["prediction"] == max(probs, key=probs.get) == p["raw_output"]
        assert p["matched"] is True and p["completion_tokens"] == 0 and p["prompt_tokens"] > 0
    accuracy = {name: sum(p["prediction"] == p["label"] for p in rows) / len(rows)
                for name, rows in (("head", head), ("zero", zero))}
    assert accuracy["head"] >= 0.9 > accuracy["zero"]
    import csv

    out = head_repo.tmp / "head.csv"
    res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=head_repo.root)
    assert res.exit_code == 0, res.stderr
    table = list(csv.DictReader(out.open()))  # a table cell holds the probabilities as JSON text
    assert [json.loads(r["probabilities"]) for r in table] == [p["probabilities"] for p in head]
    import pyarrow.parquet as pq

    out = head_repo.tmp / "head.parquet"
    res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=head_repo.root)
    assert res.exit_code == 0, res.stderr
    stored = [json.loads(r["probabilities"]) for r in pq.read_table(out).to_pylist()]
    assert stored == [p["probabilities"] for p in head]


def test_the_probabilities_are_the_heads_on_an_unbatched_forward_pass(head_repo: HeadRepo,
                                                                     base_model_dir: Path) -> None:
    """Independent of gitops' batching, padding and pooling: one row at a time through transformers,
    the last token's final hidden state, the head's weights applied by hand with numpy."""
    import numpy as np
    import torch
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    head = predicted(head_repo, f"{MODEL}@v2", "again.jsonl")
    files = head_repo.root / head_repo.first["version"].path
    w = load_file(str(files / "head.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(base_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(base_model_dir)
    texts = {r["id"]: f"Review: {r['text']}" for r in split_rows(head_repo, f"{DATA}@v1", "test")}
    for p in head:
        with torch.no_grad():
            hidden = model.get_decoder()(torch.tensor([tok(texts[p["key"]])["input_ids"]])).last_hidden_state
        x = (hidden[0, -1].numpy() - w["mean"]) / w["scale"]
        h = x @ w["net.0.weight"].T + w["net.0.bias"]
        h = 0.5 * h * (1 + np.vectorize(__import__("math").erf)(h / np.sqrt(2)))  # GELU
        logits = (h @ w["net.3.weight"].T + w["net.3.bias"]).astype(np.float64)
        want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert list(p["probabilities"].values()) == pytest.approx(list(want), abs=1e-4)


def test_pooling_and_layers_read_the_hidden_state_they_name(base_model_dir: Path) -> None:
    """layer 1 of the 2-layer toy is its first block's output (the forward stops there), -1 the
    decoder's output, mean the average over the real tokens; padding in a batch changes nothing."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gitops.errors import ConfigError
    from gitops.ml.embed import Embedder, Pooling

    model = AutoModelForCausalLM.from_pretrained(base_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(base_model_dir)
    texts = ["Review: good solid pleasant item number 8", "Review: awful"]
    with torch.no_grad():
        states = [model.get_decoder()(torch.tensor([tok(t)["input_ids"]]), output_hidden_states=True) for t in texts]
    for pooling, layer, want in (("last", -1, [s.last_hidden_state[0, -1] for s in states]),
                                 ("last", 1, [s.hidden_states[1][0, -1] for s in states]),
                                 ("mean", -2, [s.hidden_states[1][0].mean(0) for s in states]),
                                 ("mean", -1, [s.last_hidden_state[0].mean(0) for s in states])):
        got = Embedder(model, tok, Pooling(pooling, layer, 64)).embed(texts, batch_size=2)  # one padded batch
        for row, expected in zip(got, want, strict=True):
            assert row.tolist() == pytest.approx(expected.tolist(), abs=1e-5), (pooling, layer)
    ran = []
    hook = model.get_decoder().layers[1].register_forward_hook(lambda *a: ran.append(1))
    Embedder(model, tok, Pooling("last", 1, 64)).embed(texts)
    hook.remove()
    assert ran == []  # the block after the chosen layer never ran
    for layer in (3, -3, 0):
        with pytest.raises(ConfigError, match=r"has 2 layers|3 layers|layers"):
            Embedder(model, tok, Pooling("last", layer, 64))


@pytest.mark.parametrize("change, key", [
    ({"gitops_head": 2}, "gitops head description"), ({"labels": ["1"]}, "'labels'"),
    ({"labels": ["1", "1"]}, "'labels'"), ({"dim": 10**9}, "'dim'"), ({"type": "forest"}, "'type'"),
    ({"type": "mlp", "hidden": 60000, "dim": 60000}, "'hidden'"), ({"pooling": "max"}, "'pooling'"),
    ({"base_md5": ""}, "'base_md5'"), ({"layer": True}, "'layer'"),
])
def test_a_head_json_that_is_not_one_is_refused(tmp_path: Path, change: dict, key: str) -> None:
    from gitops.errors import ConfigError
    from gitops.ml.classhead import read_spec

    good = {"gitops_head": 1, "labels": LABELS, "type": "linear", "hidden": None, "dim": 64, "pooling": "last",
            "layer": -1, "max_length": 256, "template": "Review: {text}", "template_md5": "a" * 32,
            "base_model": f"{BASE}@v1", "base_md5": "b" * 32 + ".dir"}
    (tmp_path / "head.json").write_text(json.dumps(good))
    assert read_spec(tmp_path).labels == LABELS
    (tmp_path / "head.json").write_text(json.dumps({**good, **change}))
    with pytest.raises(ConfigError, match=f"head.json.*{key}|{key}"):
        read_spec(tmp_path)


def test_the_cache_key_misses_on_template_base_and_data_and_hits_on_the_same(base_model_dir: Path,
                                                                              tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gitops.ml import embcache
    from gitops.ml.embed import Embedder, Pooling

    model = AutoModelForCausalLM.from_pretrained(base_model_dir).eval()
    tok = AutoTokenizer.from_pretrained(base_model_dir)
    embedder = Embedder(model, tok, Pooling("last", -1, 64))
    texts = [f"Review: {r['text']}" for r in review_rows(12)]
    key = embcache.EmbedKey("a" * 32, embcache.template_md5("Review: {text}"), "last", -1, 64)

    def run(k: embcache.EmbedKey, dataset: str, rows: list[str]) -> embcache.Embeddings:
        return embcache.embeddings(k, dataset, rows, lambda t: embedder.embed(t), cache_dir=tmp_path)

    first = run(key, "reviews-v1md5", texts)
    assert (first.embedded, first.reused) == (12, 0) and first.vectors.shape == (12, embedder.dim)
    again = run(key, "reviews-v1md5", texts)
    assert (again.embedded, again.reused) == (0, 12) and (again.vectors == first.vectors).all()
    other_template = embcache.EmbedKey(key.base_md5, embcache.template_md5("Text: {text}"), "last", -1, 64)
    other_base = embcache.EmbedKey("b" * 32, key.template_md5, "last", -1, 64)
    other_pooling = embcache.EmbedKey(key.base_md5, key.template_md5, "mean", -1, 64)
    for changed in (other_template, other_base, other_pooling):
        assert run(changed, "reviews-v1md5", texts).embedded == 12
    grown = run(key, "reviews-v2md5", [*texts, "Review: a new row", "Review: another new row"])
    assert (grown.embedded, grown.reused) == (2, 12)  # a new data set version: only its new rows
    assert (grown.vectors[:12] == first.vectors).all()
    # a tampered entry is never used: it is rebuilt (the old rows from the v1 entry, the new ones embedded)
    vectors = grown.entry / embcache.VECTORS
    vectors.write_bytes(vectors.read_bytes()[:-8] + b"\0" * 8)
    rebuilt = run(key, "reviews-v2md5", [*texts, "Review: a new row", "Review: another new row"])
    assert (rebuilt.embedded, rebuilt.reused) == (2, 12) and (rebuilt.vectors == grown.vectors).all()


def test_retraining_after_a_new_batch_embeds_only_the_new_rows(head_repo: HeadRepo) -> None:
    root = head_repo.root
    before = split_rows(head_repo, f"{DATA}@v1", "train", "valid")
    same = run_gitops("train", str(head_repo.config("same", **{"head.epochs": 5})), "--threads", "1", cwd=root)
    assert same.exit_code == 0, same.stderr
    assert f"embedded 0 row(s) with the base, {len(before)} from the cache" in same.stdout  # v1 again: all cached
    res = run_gitops("ingest", str(head_repo.tmp / "two.jsonl"), "--dataset", DATA, cwd=root)
    assert res.exit_code == 0, res.stderr
    after = split_rows(head_repo, f"{DATA}@v2", "train", "valid")
    grown = run_gitops("train", str(head_repo.config("grown", dataset=f"{DATA}@v2")), "--threads", "1", cwd=root)
    assert grown.exit_code == 0, grown.stderr
    new = len(after) - len(before)
    assert 0 < new < len(after)
    assert f"embedded {new} row(s) with the base, {len(before)} from the cache" in grown.stdout
    model = Workspace.open(root).registry().model(MODEL)
    latest = model.latest()
    assert latest.dataset == f"{DATA}@v2" and latest.metrics["embedded_rows"] == new


def test_compare_eval_and_report_treat_a_head_as_a_variant(head_repo: HeadRepo) -> None:
    from gitops.eval.results import EvalResults

    root = head_repo.root
    res = run_gitops("compare", f"{MODEL}@v1", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--json", cwd=root)
    assert res.exit_code == 0, res.stderr
    table = json.loads(res.stdout)
    _zero, head = table["variants"]
    assert head["kind"] == "head mlp, last of layer -1" and head["invalid_rate"] == 0.0
    low, _high = head["delta_vs_first_ci"]
    assert low > 0  # the head beats zero-shot by an interval that excludes 0
    out = head_repo.tmp / "results.json"
    res = run_gitops("eval", f"{MODEL}@v2", "--baseline", f"{MODEL}@v1", "--dataset", f"{DATA}@v1", "--out",
                     str(out), cwd=root)
    assert res.exit_code == 0, res.stderr
    doc = EvalResults.load(out)
    assert (doc.candidate.format, doc.baseline.format) == ("head", "prompt")
    assert doc.candidate.metrics["accuracy"] == pytest.approx(head["accuracy"])
    assert doc.candidate.training_curve and doc.candidate.metrics["invalid_rate"] == 0.0
    report = run_gitops("report", str(out), cwd=root)
    assert report.exit_code == 0, report.stderr
    assert f"| {MODEL}@v2 | head mlp, last of layer -1 | {head['accuracy']:.1%}" in report.stdout


def test_a_head_whose_base_or_template_changed_is_refused(head_repo: HeadRepo) -> None:
    root = head_repo.root
    base_file, task_file = root / f"registry/{BASE}/model.yaml", root / f"registry/{MODEL}/model.yaml"
    texts = {p: p.read_text() for p in (base_file, task_file)}
    pinned = head_repo.first["version"].base_md5
    out = head_repo.tmp / "refused.jsonl"
    try:
        assert f"md5: {pinned}" in texts[base_file]
        base_file.write_text(texts[base_file].replace(f"md5: {pinned}", "md5: " + "a" * 32 + ".dir"))
        res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=root)
        assert res.exit_code == 1 and "refusing to run the head on other weights" in res.stderr
        assert "Traceback" not in res.stderr and not out.exists()
        base_file.write_text(texts[base_file])
        assert "Review: {text}" in texts[task_file]
        task_file.write_text(texts[task_file].replace("Review: {text}", "Text: {text}", 1))
        res = run_gitops("predict", f"{MODEL}@v2", "--dataset", f"{DATA}@v1", "--out", str(out), cwd=root)
        # the version's recorded task block (task_md5) refuses first, as for every variant; the
        # head's own record of its template is the second lock on the same door
        assert res.exit_code == 1 and f"{MODEL}@v2 was added with another classification block" in res.stderr
        assert not out.exists()
    finally:
        for path, text in texts.items():
            path.write_text(text)


@pytest.mark.parametrize("changes, needle", [
    ({"base_model": "gitops/tiny-opt"}, "the base must be a registry version"),
    ({"output": {"model": BASE}}, f"output.model '{BASE}' has task"),
    ({"head.layer": 5}, "head.layer 5: ratings-base@v1 has 2 layers"),
    ({"head.layer": 0}, "head.layer 0 would pool the token embeddings"),
    ({"head.pooling": "max"}, "head.pooling must be one of last, mean"),
    ({"head": {"type": "linear"}, "adapter": {"type": "lora"}}, "a head section is set but adapter.type is 'lora'"),
    ({"adapter": {"type": "head", "head": True}}, "adapter.head: true goes with type: lora"),
])
def test_bad_head_configs_are_refused_before_anything_is_written(head_repo: HeadRepo, changes: dict,
                                                                 needle: str) -> None:
    before = git_state(head_repo.root)
    res = run_gitops("train", str(head_repo.config("bad", **changes)), cwd=head_repo.root)
    assert res.exit_code == 1 and needle in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and git_state(head_repo.root) == before


def test_serve_answers_a_head_version_as_predict_does(head_repo: HeadRepo) -> None:
    from openai import OpenAI

    from tests.test_serve_cli import Server, free_port

    root = head_repo.root
    api.set_alias(Workspace.open(root), MODEL, "production", "v2")
    want = predicted(head_repo, f"{MODEL}@v2", "served.jsonl", "--limit", "4")
    texts = {r["id"]: r["text"] for r in split_rows(head_repo, f"{DATA}@v1", "test")}
    server = Server(root, free_port(), secret=None, ref=f"{MODEL}@production")
    try:
        ready = server.wait_ready(f"{MODEL}@v2", timeout=300)  # a loaded CI machine starts torch slowly
        assert (ready["format"], ready["base"]) == ("head", f"{BASE}@v1")
        client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        resp = client.completions.create(model=MODEL, prompt=[texts[p["key"]] for p in want], temperature=0)
        for choice, p in zip(resp.choices, want, strict=True):
            assert choice.text == p["prediction"] and choice.finish_reason == "stop"
            assert choice.classification["label"] == p["prediction"] and choice.classification["matched"] is True
            assert choice.classification["probabilities"] == pytest.approx(p["probabilities"], abs=1e-6)
        assert resp.usage.prompt_tokens == sum(p["prompt_tokens"] for p in want) and resp.usage.completion_tokens == 0
        chat = client.chat.completions.create(model=MODEL,
                                              messages=[{"role": "user", "content": texts[want[0]["key"]]}])
        assert chat.choices[0].message.content == want[0]["prediction"]
        chunks = list(client.completions.create(model=MODEL, prompt=texts[want[1]["key"]], stream=True))
        assert "".join(c.choices[0].text for c in chunks if c.choices) == want[1]["prediction"]
    finally:
        server.stop()
        assert "Traceback" not in server.logs()


def test_lora_plus_head_trains_the_base_with_the_head_and_runs_merged(head_repo: HeadRepo,
                                                                      base_model_dir: Path) -> None:
    """The next rung: LoRA layers trained together with the head. The version stores both; predict
    runs the base with the adapter merged in, checked against peft's own merge and the head by hand."""
    import numpy as np
    import torch
    from peft import PeftModel
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = head_repo.root
    cfg = head_repo.config("lora-head", adapter={"type": "lora", "head": True, "r": 4, "alpha": 8, "dropout": 0.0,
                                                 "target_modules": ["q_proj", "v_proj"]},
                           trainer={"epochs": 3, "batch_size": 16, "learning_rate": 0.02, "seed": 7},
                           head={"type": "linear", "epochs": 2, "patience": 3})  # a weak frozen start to improve on
    res = run_gitops("train", str(cfg), "--threads", "1", cwd=root)
    assert res.exit_code == 0, res.stderr
    assert "frozen head: valid loss" in res.stdout and "then LoRA + head for" in res.stdout
    version = Workspace.open(root).registry().model(MODEL).latest()
    assert (version.format, version.base_model, version.config["adapter"]["head"]) == ("head", f"{BASE}@v1", True)
    assert version.metrics["best_epoch"] >= 1 and version.metrics["eval_loss"] < version.metrics["frozen_eval_loss"]
    files = root / version.path
    assert {"adapter_config.json", "adapter_model.safetensors", "head.json", "head.safetensors"} <= {
        p.name for p in files.iterdir()}
    assert json.loads((files / "head.json").read_text())["adapter"] is True
    lora = load_file(str(files / "adapter_model.safetensors"))
    assert any(np.abs(v).max() > 0 for k, v in lora.items() if "lora_B" in k)  # the base's layers did train
    got = predicted(head_repo, f"{MODEL}@{version.id}", "lora-head.jsonl", "--limit", "5")
    assert all(p["matched"] and sum(p["probabilities"].values()) == pytest.approx(1.0) for p in got)
    tok = AutoTokenizer.from_pretrained(base_model_dir)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model_dir), str(files))
    merged = merged.merge_and_unload().eval()
    w = load_file(str(files / "head.safetensors"))
    texts = {r["id"]: f"Review: {r['text']}" for r in split_rows(head_repo, f"{DATA}@v1", "test")}
    for p in got:
        with torch.no_grad():
            hidden = merged.get_decoder()(torch.tensor([tok(texts[p["key"]])["input_ids"]])).last_hidden_state
        logits = (((hidden[0, -1].numpy() - w["mean"]) / w["scale"]) @ w["net.0.weight"].T + w["net.0.bias"])
        want = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert list(p["probabilities"].values()) == pytest.approx(list(want), abs=1e-4)
    compared = run_gitops("compare", f"{MODEL}@v2", f"{MODEL}@{version.id}", "--dataset", f"{DATA}@v1", "--json",
                          cwd=root)
    assert compared.exit_code == 0, compared.stderr
    assert json.loads(compared.stdout)["variants"][1]["kind"] == "LoRA + head linear, last of layer -1"
