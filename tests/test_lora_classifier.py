"""A LoRA classifier that answers with labels (issue 20, item 2), on the real toy model.

The case the issue measured: reviews longer than ``trainer.max_length`` and a short LoRA. Before
the fix a classification row was the review, a space and the label, cut at ``max_length`` from
the end (so a long row lost its label) and learned whole (the label one token of many): the
fine-tune learned to continue reviews and every output was invalid (100% on the toy here, as on
SmolLM2 in the issue). Now the row keeps its label and end token and loses the middle of its input,
and the loss covers the label and end token alone; the same short run answers with labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitops.ml.textformat import Pair
from gitops.train.lora import _collate, _encode
from tests.eval_fixtures import _isolate

LABELS = ["terrible", "poor", "okay", "fine", "great"]   # one toy token each (the toy never saw a digit)
TASK = ('input: "Review: {text}\\nVerdict:"\nlabel: verdict\nlabels: [' + ", ".join(f'"{x}"' for x in LABELS)
        + ']\nfallback: "okay"\n')
WORDS = {"terrible": "broken awful refund", "poor": "flimsy slow disappointing", "okay": "average plain usual",
         "fine": "decent solid pleasant", "great": "excellent superb love"}
FILLER = "I bought it last month for the kitchen and used it every day since then at home"
STEPS, MAX_LENGTH = 20, 32


def long_rows(n: int) -> list[dict[str, str]]:
    """Reviews of about 40 toy tokens (longer than MAX_LENGTH), their verdict's words at the start."""
    return [{"id": f"r{i:03d}", "text": f"{WORDS[LABELS[i % 5]]} item {i}. {FILLER}.", "verdict": LABELS[i % 5]}
            for i in range(n)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, ml_cache_dir: Path, base_model_dir: Path):
    """A toy repository with long reviews and a 20-step LoRA fine-tune of a classification model
    (peft-lora on the registered toy base), its test rows predicted by free decoding."""
    import os

    import torch

    from gitops import api

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("loracls")
    (tmp / "home").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        _isolate(mp, tmp / "home", Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or ml_cache_dir))
        root = api.init(tmp / "repo", remote=str(tmp / "remote")).root
        mp.chdir(root)
        data = tmp / "reviews.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in long_rows(200)))
        (tmp / "task.yaml").write_text(TASK)
        api.create_dataset(api.Workspace.open(root), "reviews", {"id": "string", "text": "string",
                                                                 "verdict": "string"}, "text", ["id"])
        api.ingest(api.Workspace.open(root), [data], "reviews")
        api.create_model(api.Workspace.open(root), "base")
        api.register(api.Workspace.open(root), "base", base_model_dir, fmt="hf")
        api.create_model(api.Workspace.open(root), "verdicts", task="classification", classification=tmp / "task.yaml")
        cfg = {"base_model": "base@v1", "dataset": "reviews@v1", "output": {"model": "verdicts"},
               "adapter": {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["all-linear"]},
               "trainer": {"max_steps": STEPS, "batch_size": 8, "max_length": MAX_LENGTH, "learning_rate": 1e-2,
                           "eval_steps": STEPS, "seed": 3}}
        (tmp / "lora.yaml").write_text(json.dumps(cfg))
        run = api.train(api.Workspace.open(root), tmp / "lora.yaml", threads=1)
        result = api.predict(api.Workspace.open(root), f"verdicts@{run.version}", "reviews@v1", split="all",
                             limit=60, threads=1)
        yield root, run, result


def test_a_short_lora_on_long_rows_answers_with_labels(trained) -> None:
    """Before the fix: 100% invalid (every label cut off; `bench/lora_classifier.py --model toy
    --labels words --target-modules all-linear --steps 20 --max-length 32` on the old code)."""
    _, run, result = trained
    assert run.config["prompt"]["loss"] == "response" and run.format == "peft-lora"
    scores = result.scores
    assert scores.rows > 20 and scores.invalid_rate <= 0.2, [p["raw_output"] for p in result.predictions[:5]]
    assert sum(p["raw_output"].strip() in LABELS for p in result.predictions) >= 0.8 * scores.rows
    assert all(p["completion_tokens"] <= 2 for p in result.predictions)   # " label" then the end token: it stops


def test_probabilities_come_with_free_decoding(trained) -> None:
    _, _, result = trained
    for p in result.predictions:
        probs = p["probabilities"]
        assert list(probs) == LABELS and sum(probs.values()) == pytest.approx(1.0)
    assert result.scores.log_loss is not None and result.scores.ece is not None


def toy_tokenizer(base_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base_model_dir)


def test_a_long_row_keeps_its_label_and_end_token_and_loses_its_inputs_middle(base_model_dir: Path) -> None:
    tok = toy_tokenizer(base_model_dir)
    row = long_rows(1)[0]
    pair: Pair = (f"Review: {row['text']}\nVerdict:", f" {row['verdict']}")
    full = tok(pair[0] + pair[1])["input_ids"] + [tok.eos_token_id]
    assert len(full) > MAX_LENGTH
    [(ids, context)] = _encode(tok, [pair], MAX_LENGTH, response_only=True)
    label = tok(" " + row["verdict"], add_special_tokens=False)["input_ids"]
    assert len(ids) == MAX_LENGTH and ids[-1] == tok.eos_token_id and ids[-1 - len(label):-1] == label
    assert ids[0] == full[0] and tok.decode(ids[context - 8:context]).endswith("\nVerdict:")  # the start and the end
    batch = _collate(1)([(ids, context)])
    learned = [t for t in batch["labels"][0].tolist() if t != -100]
    assert learned == [*label, tok.eos_token_id]                    # the loss: the label and the end token
    [(whole, none)] = _encode(tok, [pair], MAX_LENGTH)               # loss: all (other prompt/response configs)
    assert whole == ids and none == 0
    [(plain, _)] = _encode(tok, [pair[0] + pair[1]], MAX_LENGTH)      # plain text is still cut at its end
    assert plain == full[:MAX_LENGTH]


def test_loss_response_needs_a_response() -> None:
    from gitops.errors import ConfigError
    from gitops.train.train_config import from_dict

    cfg = {"base_model": "b", "dataset": "d@v1", "output": {"model": "m"}, "prompt": {"loss": "response"}}
    with pytest.raises(ConfigError, match=r"prompt.loss is response but prompt.response is not set"):
        from_dict(cfg)
    assert from_dict({**cfg, "prompt": {"response": "{text}", "loss": "response"}}).to_dict()["prompt"]["loss"] \
        == "response"
    assert "loss" not in from_dict({**cfg, "prompt": {}}).to_dict()["prompt"]   # older configs keep their hash
