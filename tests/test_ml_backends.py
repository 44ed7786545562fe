"""Generation and scoring backends: hf and ct2 behave alike, batching changes nothing."""

from __future__ import annotations

import pytest

from gitops.convert.ct2 import convert_to_ct2
from gitops.errors import ConfigError, NotFoundError
from gitops.ml.backends import Generation, open_backend

PROMPTS = ["This product is", "I regret buying this", "The battery",
           "Worst toaster I have ever owned. The handle is flimsy. Save your"]


@pytest.fixture(scope="module")
def backends(base_model_dir, tmp_path_factory):
    ct2_dir = convert_to_ct2(base_model_dir, tmp_path_factory.mktemp("b") / "f32", "float32")
    hf, ct2 = open_backend(base_model_dir, "hf", threads=1), open_backend(ct2_dir, "ct2", threads=1)
    yield hf, ct2
    hf.close()
    ct2.close()


def test_greedy_generation_matches_across_engines(backends):
    hf, ct2 = backends
    a = hf.generate(PROMPTS, max_new_tokens=30, batch_size=4)
    b = ct2.generate(PROMPTS, max_new_tokens=30, batch_size=4)
    assert all(isinstance(g, Generation) for g in a + b)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.new_tokens for g in a] == [g.new_tokens for g in b]
    assert all(1 <= g.new_tokens <= 30 for g in a)
    assert any(g.new_tokens < 30 for g in a), "no completion ever stopped at </s>"
    assert "</s>" not in "".join(g.text for g in a)  # special tokens are not in the text


@pytest.mark.parametrize("engine", [0, 1])
def test_batching_and_left_padding_change_nothing(backends, engine):
    backend = backends[engine]
    one = backend.generate(PROMPTS, max_new_tokens=10, batch_size=1)
    many = backend.generate(PROMPTS, max_new_tokens=10, batch_size=3)
    assert [g.text for g in one] == [g.text for g in many]
    assert len({g.seconds for g in many[:3]}) == 1  # the time of the batch it ran in
    s1, s4 = backend.score(PROMPTS, batch_size=1), backend.score(PROMPTS, batch_size=4)
    assert [n for _, n in s1] == [n for _, n in s4]
    assert all(abs(a - b) < 1e-3 * a for (a, _), (b, _) in zip(s1, s4))


def test_scores_separate_in_domain_from_noise(backends):
    hf, _ = backends
    [(good, n1), (noise, n2)] = hf.score(["I love this kettle. Highly recommended.",
                                          "Quantum zebra invoices paradox the kettle."])
    assert good / n1 < noise / n2


def test_long_prompt_is_truncated_not_an_error(backends):
    long = " ".join(["The lid is great."] * 60)  # far beyond the 128 positions
    for backend in backends:
        [g] = backend.generate([long], max_new_tokens=5)
        assert g.new_tokens <= 5
        [(nll, n)] = backend.score([long])
        assert n == 127 and nll > 0


def test_open_errors(tmp_path, base_model_dir):
    with pytest.raises(ConfigError, match="Unknown model format 'onnx'"):
        open_backend(base_model_dir, "onnx")
    with pytest.raises(NotFoundError, match="does not exist"):
        open_backend(tmp_path / "nope", "hf")
    with pytest.raises(NotFoundError, match="not a CTranslate2 model"):
        open_backend(base_model_dir, "ct2")
    with pytest.raises(NotFoundError, match=r"no config.json"):
        open_backend(tmp_path, "hf")
    with pytest.raises(NotFoundError, match=r"adapter_config.json"):
        open_backend(base_model_dir, "peft-lora")


def test_bad_call_arguments(backends):
    with pytest.raises(ConfigError, match="at least 1"):
        backends[0].generate(["x"], max_new_tokens=0)
