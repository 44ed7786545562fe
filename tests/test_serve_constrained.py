"""``gitops serve`` == ``gitops predict`` for every prompt config (issue 20, "also found"): a version
with ``generation: {constrain: labels}`` is served constrained (it used to decode freely), a
request is normalised as the data set's rows were at ingest, and ``chat: true`` renders the prompt
through the base's chat template, in predict and serve alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gitops.core.workspace import Workspace
from gitops.data import batches
from tests.conftest import run_gitops
from tests.prompt_fixtures import BASE, DATA, MODEL, write_prompt
from tests.test_serve_cli import Server, free_port
from tests.test_serve_prompt import openai_client

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


def _predict(repo: Path, version: str, out: Path, *extra: str) -> list[dict]:
    res = run_gitops("predict", f"{MODEL}@{version}", "--dataset", f"{DATA}@v1", "--split", "all", "--out", str(out),
                     *(extra or ("--limit", "24")), cwd=repo)
    assert res.exit_code == 0, res.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_constrained_prompt_version_is_served_constrained(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """ratings@v4 is v1 (zero-shot) with generation.constrain: labels. On the rows where the two
    decodings disagree, the server answers what predict's constrained run wrote, not a free decoding."""
    repo = toy_ratings_repo
    config = write_prompt(tmp_path / "c.yaml", base=f"{BASE}@v2", template="{task}\n{sample}\nRating:", retrieval=None,
                          example=None, dataset=None, generation={"max_new_tokens": 3, "constrain": "labels"})
    for args in (("prompt", "add", MODEL, "--config", str(config)), ("alias", "set", MODEL, "production", "v4")):
        assert run_gitops(*args, cwd=repo).exit_code == 0, args
    free = _predict(repo, "v1", tmp_path / "free.jsonl")
    constrained = _predict(repo, "v4", tmp_path / "constrained.jsonl")
    differ = [(f, c) for f, c in zip(free, constrained, strict=True) if f["prediction"] != c["prediction"]][:4]
    assert differ, "the toy's two decodings agree on every row: nothing to tell them apart"
    texts = {r["id"]: r["text"] for r in batches.read_rows(Workspace.open(repo), f"{DATA}@v1")}
    server = Server(repo, free_port(), secret=None, ref=f"{MODEL}@production")
    try:
        server.wait_ready(f"{MODEL}@v4")
        client = openai_client(server.url)
        for f, c in differ:
            resp = client.completions.create(model=MODEL, prompt=texts[c["key"]], temperature=0)
            choice = resp.choices[0]
            assert choice.text == c["raw_output"] == c["prediction"] != f["prediction"]
            assert choice.classification["label"] == c["prediction"] and choice.classification["matched"]
            assert choice.classification["probabilities"] == pytest.approx(c["probabilities"], abs=1e-6)
            assert resp.usage.prompt_tokens == c["prompt_tokens"] and choice.finish_reason == "stop"
        f, c = differ[0]
        chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": texts[c["key"]]}])
        assert chat.choices[0].message.content == c["raw_output"]
        chunks = list(client.completions.create(model=MODEL, prompt=texts[c["key"]], stream=True))
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == c["raw_output"]
        assert chunks[-1].choices[0].classification["label"] == c["prediction"]
    finally:
        server.stop()
        assert "Traceback" not in server.logs()


def test_requests_and_input_files_are_normalised_as_the_data_set_was(toy_ratings_repo: Path, tmp_path: Path) -> None:
    """A data set ingested with html_unescape and collapse_whitespace: a request (or a --input row)
    written the way the raw data was is read as its ingested row was."""
    from gitops.predict.prompter import open_prompter
    from gitops.serve import prompted
    from gitops.serve.engine import open_model
    from gitops.serve.protocol import CompletionRequest
    from gitops.serve.source import Resolved

    repo = toy_ratings_repo
    raw = tmp_path / "messy.jsonl"
    raw.write_text("".join(json.dumps({"id": f"m{i}", "text": f"good &amp;  solid\n  item {i}", "rating": "4"}) + "\n"
                           for i in range(12)))
    for args in (("dataset", "create", "messy", "--column", "id:string", "--column", "text:string", "--column",
                  "rating:string", "--text-field", "text", "--key", "id", "--normalize", "html_unescape",
                  "--normalize", "collapse_whitespace"),
                 ("ingest", str(raw), "--dataset", "messy"),
                 ("prompt", "add", MODEL, "--config", str(write_prompt(
                     tmp_path / "m.yaml", base=f"{BASE}@v2", dataset="messy@v1", retrieval={"type": "random", "k": 1},
                     example=None)))):
        assert run_gitops(*args, cwd=repo).exit_code == 0, args
    ws = Workspace.open(repo)
    stored = batches.read_rows(ws, "messy@v1")[0]["text"]
    assert stored.startswith("good & solid item ")
    new = tmp_path / "new.csv"
    new.write_text('text\n"good &amp;  solid\n  item 0"\n')
    out = tmp_path / "o.jsonl"
    res = run_gitops("predict", f"{MODEL}@v4", "--input", str(new), "--out", str(out), cwd=repo)
    assert res.exit_code == 0, res.stderr
    assert json.loads(out.read_text())["input"] == "Review: good & solid item 0"
    model, version = ws.registry().resolve(f"{MODEL}@v4")
    prompter = open_prompter(ws, model.classification, version.config)
    loaded = open_model(Resolved(f"{MODEL}@v4", f"{MODEL}@v4", version.md5, _base_dir(ws), "hf", prompt=prompter))
    try:
        from gitops.ml.backends import GREEDY

        req = CompletionRequest(model=MODEL, prompts=("good &amp;  solid\n  item 0",), max_tokens=3, sampling=GREEDY,
                                stop=(), stream=False, include_usage=False)
        rendered = prompted.render(loaded, req).prompts[0]
        assert rendered.endswith("Review: good & solid item 0\nRating:")
        assert rendered == prompter.render_many([{"text": "good & solid item 0"}])[0]   # a served row: no key
    finally:
        loaded.backend.close()


def _base_dir(ws: Workspace) -> Path:
    from gitops.core.materialize import loadable

    model, version = ws.registry().resolve(f"{BASE}@v2")
    return loadable(ws, model.name, version).weights


def test_a_chat_prompt_version_renders_through_the_bases_chat_template(toy_ratings_repo: Path,
                                                                        base_model_dir: Path,
                                                                        tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    repo = toy_ratings_repo
    chatty = tmp_path / "chatty"
    shutil.copytree(base_model_dir, chatty)
    cfg = chatty / "tokenizer_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "chat_template": CHAT_TEMPLATE}))
    plain = write_prompt(tmp_path / "plain.yaml", base=f"{BASE}@v2", template="{task}\n{sample}", retrieval=None,
                         example=None, dataset=None, chat=True)
    for args in (("register", BASE, str(chatty), "--format", "hf"),
                 ("prompt", "add", MODEL, "--config", str(write_prompt(
                     tmp_path / "chat.yaml", base=f"{BASE}@v3", template="{task}\n{sample}", retrieval=None,
                     example=None, dataset=None, chat=True))),
                 ("prompt", "add", MODEL, "--config", str(plain))):
        assert run_gitops(*args, cwd=repo).exit_code == 0, args
    rows = _predict(repo, "v4", tmp_path / "chat.jsonl", "--limit", "3")
    tok = AutoTokenizer.from_pretrained(chatty)
    for r in rows:
        user = f"Rate the review from 1 to 5.\n{r['input']}"
        text = tok.apply_chat_template([{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
        assert text.endswith("assistant:")
        assert r["prompt_tokens"] == len(tok(text, add_special_tokens=False)["input_ids"])
    no_template = run_gitops("predict", f"{MODEL}@v5", "--dataset", f"{DATA}@v1", "--limit", "2", "--out",
                             str(tmp_path / "x.jsonl"), cwd=repo)
    assert no_template.exit_code == 1 and "chat: true, but its base's tokenizer has no chat template" in \
        no_template.stderr
