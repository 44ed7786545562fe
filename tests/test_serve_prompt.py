"""`gitops serve` of prompt versions (issue 12 item 2, "served"), against a real repository.

The toy ratings repository (tests/prompt_fixtures.py): ``ratings@v1`` zero-shot and ``ratings@v2``
few-shot bm25 k=2, both prompt versions on the toy base ``ratings-base@v2``, and ``ratings@v3`` the
toy weights as a version of its own. ``gitops serve ratings@production --follow`` runs as its own
process; the real ``openai`` client asks. Each served completion at temperature 0 is compared with
what ``gitops predict`` (an independent path: batch rendering over the data set) wrote for the same
row, and swaps between prompt and weights versions run while requests flow.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gitops import api
from gitops.core.workspace import Workspace
from gitops.data import batches
from tests.conftest import run_gitops
from tests.prompt_fixtures import BASE, DATA, MODEL, write_prompt
from tests.serve_fixtures import live_server, make_version
from tests.test_serve_cli import Server, free_port
from tests.test_serve_swap import Clients

REF = f"{MODEL}@production"
ROWS = 4


def openai_client(url: str):
    from openai import OpenAI

    return OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def predicted(repo: Path, version: str, out: Path) -> list[dict]:
    """``gitops predict`` of the first test rows: what the served completions must equal."""
    res = run_gitops("predict", f"{MODEL}@{version}", "--dataset", f"{DATA}@v1", "--limit", str(ROWS),
                     "--out", str(out), cwd=repo)
    assert res.exit_code == 0, res.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def move(repo: Path, version: str) -> None:
    api.set_alias(Workspace.open(repo), MODEL, "production", version)


def check_served_equals_predict(server: Server, repo: Path, version: str, tmp_path: Path) -> list[dict]:
    rows = batches.read_rows(Workspace.open(repo), f"{DATA}@v1", "test")[:ROWS]
    expected = predicted(repo, version, tmp_path / f"{version}.jsonl")
    client = openai_client(server.url)
    for row, want in zip(rows, expected, strict=True):
        assert want["key"] == row["id"]
        # no max_tokens: the prompt version's generation settings are the defaults (predict's too)
        resp = client.completions.create(model=MODEL, prompt=row["text"], temperature=0)
        choice = resp.choices[0]
        assert resp.model == f"{MODEL}@{version}"
        assert choice.text == want["raw_output"], (row, want)
        assert choice.classification == {"label": want["prediction"], "matched": want["matched"]}
        assert resp.usage.prompt_tokens == want["prompt_tokens"]  # the rendered prompt's tokens
        assert resp.usage.completion_tokens == want["completion_tokens"]
    return expected


def check_chat_takes_the_last_user_message(server: Server, repo: Path, want: dict) -> None:
    """/v1/chat/completions: the last user message is the sample (what predict rendered for the row)."""
    text = next(r["text"] for r in batches.read_rows(Workspace.open(repo), f"{DATA}@v1", "test")
                if r["id"] == want["key"])
    messages = [{"role": "system", "content": "You rate reviews."}, {"role": "user", "content": "awful broken"},
                {"role": "assistant", "content": "1"}, {"role": "user", "content": text}]
    client = openai_client(server.url)
    resp = client.chat.completions.create(model=MODEL, messages=messages, temperature=0)
    assert resp.object == "chat.completion" and resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == want["raw_output"]
    assert resp.choices[0].classification == {"label": want["prediction"], "matched": want["matched"]}
    assert resp.usage.prompt_tokens == want["prompt_tokens"]
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want["raw_output"]
    assert chunks[-1].choices[0].finish_reason and chunks[-1].choices[0].classification["label"] == want["prediction"]


def test_served_prompt_versions_answer_as_predict_and_swap_with_weights(toy_ratings_repo: Path,
                                                                         tmp_path: Path):
    repo = toy_ratings_repo
    move(repo, "v2")  # few-shot bm25 k=2
    server = Server(repo, free_port(), "--follow", "--poll", "1", secret=None, ref=REF)
    try:
        ready = server.wait_ready(f"{MODEL}@v2")
        assert (ready["format"], ready["base"]) == ("prompt", f"{BASE}@v2")
        few = check_served_equals_predict(server, repo, "v2", tmp_path)
        check_chat_takes_the_last_user_message(server, repo, few[0])

        # a request's own settings override the version's: 1 token instead of the config's 3
        short = openai_client(server.url).completions.create(model=MODEL, prompt="good solid", max_tokens=1,
                                                             temperature=0)
        assert short.usage.completion_tokens <= 1 and short.choices[0].finish_reason in ("length", "stop")

        move(repo, "v1")  # zero-shot
        server.wait_ready(f"{MODEL}@v1", timeout=60)
        zero = check_served_equals_predict(server, repo, "v1", tmp_path)
        assert all(f["prompt_tokens"] > z["prompt_tokens"] for f, z in zip(few, zero, strict=True))  # examples
        assert any(f["raw_output"] for f in few + zero)  # the toy base says something to compare

        with Clients(server.url, 4, model=MODEL, prompt="excellent superb love item") as clients:
            clients.wait_all_served(f"{MODEL}@v1", timeout=60)
            move(repo, "v3")  # prompt version -> weights version
            assert server.wait_ready(f"{MODEL}@v3", timeout=60)["format"] == "hf"
            clients.wait_all_served(f"{MODEL}@v3", timeout=60)
            from openai import BadRequestError

            with pytest.raises(BadRequestError, match="no chat template"):  # a weights version chats by template
                openai_client(server.url).chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": "hi"}])
            move(repo, "v2")  # and back to a (few-shot) prompt version
            server.wait_ready(f"{MODEL}@v2", timeout=60)
            clients.wait_all_served(f"{MODEL}@v2", timeout=60)
        requests = [r for log in clients.log for r in log]
        assert [r for r in requests if r[2] != 200] == []  # zero dropped across both swaps
        assert {r[3] for r in requests} == {f"{MODEL}@v1", f"{MODEL}@v3", f"{MODEL}@v2"}
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["swaps"] == 3 and ready["last_error"] is None
    finally:
        server.stop()
        assert "Traceback" not in server.logs()


@pytest.fixture
def pairs_repo(toy_ratings_repo: Path, tmp_path: Path) -> Path:
    """A second classification model whose input template names two columns, with one zero-shot
    prompt version aliased production."""
    repo = toy_ratings_repo
    block = tmp_path / "pairs-task.yaml"
    block.write_text('input: "Item {id}: {text}"\nlabel: rating\nlabels: ["1", "2", "3", "4", "5"]\nfallback: "3"\n')
    config = write_prompt(tmp_path / "pairs.yaml", base=f"{BASE}@v2", template="{task}\n{sample}\nRating:",
                          retrieval=None, example=None, dataset=None)
    for args in (("model", "create", "pairs", "--task", "classification", "--classification", str(block)),
                 ("prompt", "add", "pairs", "--config", str(config)),
                 ("alias", "set", "pairs", "production", "v1")):
        res = run_gitops(*args, cwd=repo)
        assert res.exit_code == 0, (args, res.stderr)
    return repo


def test_a_multi_column_task_takes_a_json_row_and_refuses_plain_text(pairs_repo: Path,
                                                                      base_model_dir: Path):
    from openai import BadRequestError
    from transformers import AutoTokenizer

    from gitops.ml.tokens import prompt_ids

    server = Server(pairs_repo, free_port(), secret=None, ref="pairs@production")
    try:
        server.wait_ready("pairs@v1")
        client = openai_client(server.url)
        with pytest.raises(BadRequestError) as plain:
            client.completions.create(model="pairs", prompt="good solid pleasant", temperature=0)
        error = plain.value.body
        assert error["param"] == "prompt" and "id, text" in error["message"] and "JSON object" in error["message"]
        with pytest.raises(BadRequestError) as missing:
            client.completions.create(model="pairs", prompt=json.dumps({"id": "r001"}), temperature=0)
        assert "no column 'text'" in missing.value.body["message"]
        row = json.dumps({"id": "r001", "text": "good solid pleasant"})
        resp = client.completions.create(model="pairs", prompt=row, temperature=0)
        assert resp.model == "pairs@v1" and resp.choices[0].classification["label"] in list("12345")
        rendered = "Rate the review from 1 to 5.\nItem r001: good solid pleasant\nRating:"
        assert resp.usage.prompt_tokens == len(prompt_ids(AutoTokenizer.from_pretrained(base_model_dir), rendered))
    finally:
        server.stop()
        assert "Traceback" not in server.logs()


CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


def test_chat_runs_a_weights_version_through_its_chat_template(toy_ct2: Path, tmp_path: Path):
    chatty = make_version(toy_ct2, tmp_path / "chatty", "toy@v1")
    config = chatty / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "chat_template": CHAT_TEMPLATE}))
    with live_server({"toy@v1": chatty}) as live:
        client = openai_client(live.url)
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "The chocolate tour was"}]
        chat = client.chat.completions.create(model="toy", messages=messages, max_tokens=8, temperature=0)
        plain = client.completions.create(model="toy", prompt="system: Be brief.\nuser: The chocolate tour was\n"
                                          "assistant:", max_tokens=8, temperature=0)
        assert chat.object == "chat.completion" and chat.id.startswith("chatcmpl-") and chat.model == "toy@v1"
        assert chat.choices[0].message.content == plain.choices[0].text and plain.choices[0].text
        assert chat.usage == plain.usage and chat.choices[0].finish_reason == plain.choices[0].finish_reason
        assert "classification" not in chat.choices[0].model_extra  # only a prompt version reads a label
        chunks = list(client.chat.completions.create(model="toy", messages=messages, max_tokens=8, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].usage == plain.usage
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == plain.choices[0].text
        for body, param in [({"messages": [{"role": "system", "content": "x"}]}, "messages"),
                            ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0]"),
                            ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
                            ({"messages": [{"role": "user", "content": "x"}], "prompt": "x"}, "prompt"),
                            ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs")]:
            r = live.client.post("/v1/chat/completions", json={"model": "toy", **body})
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_random_examples_for_a_served_row_follow_its_text(ratings_repo: Path):
    """A served row has no key columns: random retrieval seeds with its text, so the same text gets
    the same examples and different texts different ones (not one fixed draw for every request)."""
    from gitops.core.promptspec import Retrieval
    from gitops.core.task import ClassificationTask
    from gitops.predict.retrieval import build_retriever

    task = ClassificationTask("Review: {text}", "rating", list("12345"), "3")
    found = build_retriever(Workspace.open(ratings_repo), f"{DATA}@v1", Retrieval("random", 3), task.render)
    texts = [f"served review number {i}" for i in range(8)]
    draws = [[e["id"] for e in ex] for ex in found.retrieve_many([{"text": t} for t in texts])]
    assert draws == [[e["id"] for e in ex] for ex in found.retrieve_many([{"text": t} for t in texts])]
    assert len({tuple(d) for d in draws}) > 1 and all(len(d) == 3 for d in draws)


def test_a_prompt_version_serve_cannot_run_is_refused_before_starting(toy_ratings_repo: Path,
                                                                       tmp_path: Path):
    import subprocess
    import sys

    from tests.test_serve_cli import env

    repo = toy_ratings_repo
    config = write_prompt(tmp_path / "notes.yaml", base=f"{BASE}@v2", template="{task}\n{sample}", retrieval=None,
                          example=None, dataset=None)
    for args in (("model", "create", "notes"), ("prompt", "add", "notes", "--config", str(config)),
                 ("alias", "set", "notes", "production", "v1")):
        res = run_gitops(*args, cwd=repo)
        assert res.exit_code == 0, (args, res.stderr)
    out = subprocess.run([sys.executable, "-m", "gitops", "serve", "notes@production", "-C", str(repo), "--port",
                          str(free_port())], env=env(), capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1 and "notes@v1 is a prompt version of a model with task" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") <= 2, out.stderr
