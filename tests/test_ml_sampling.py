"""Backend.generate_tokens: what serving needs from both engines (per-row limits, a per-token
callback that can end a row, OpenAI sampling with a seed), checked on the toy model."""

from __future__ import annotations

import pytest

from gitops.errors import ConfigError
from gitops.ml.backends import Sampling, open_backend

PROMPTS = ["The chocolate tour was excellent,", "Bad kettle", "I regret buying this"]


@pytest.fixture(scope="module", params=["ct2", "hf"])
def backend(request, base_model_dir, toy_ct2):
    path = toy_ct2 if request.param == "ct2" else base_model_dir
    with open_backend(path, request.param, threads=1) as b:
        yield b


def ids(backend) -> list[list[int]]:
    return [backend.encode(p) for p in PROMPTS]


def test_greedy_tokens_match_generate(backend):
    new = backend.generate_tokens(ids(backend), [20, 20, 20])
    assert [backend.decode(t) for t in new] == [g.text for g in backend.generate(PROMPTS, max_new_tokens=20)]


def test_rows_have_their_own_limits_and_the_callback_sees_every_token(backend):
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
    new = backend.generate_tokens(ids(backend), [3, 1, 20],
                                  on_token=lambda row, token: seen[row].append(token) or False)
    assert len(new[0]) == 3 and len(new[1]) == 1 and 1 <= len(new[2]) <= 20
    assert seen == dict(enumerate(new))  # in order, end token never passed on
    assert all(backend.tokenizer.eos_token_id not in row for row in new)


def test_callback_ends_only_its_row(backend):
    full = backend.generate_tokens(ids(backend), [12, 12, 12])
    new = backend.generate_tokens(ids(backend), [12, 12, 12], on_token=lambda row, token: row == 1)
    assert len(new[1]) == 1 and new[1] == full[1][:1]
    assert new[0] == full[0] and new[2] == full[2]


def test_seeded_sampling_is_reproducible_whatever_the_batch(backend):
    hot = Sampling(temperature=1.0, top_p=0.95, seed=1234)
    alone = backend.generate_tokens(ids(backend)[:1], [15], sampling=hot)
    batched = backend.generate_tokens(ids(backend)[::-1], [15, 15, 15], sampling=hot)
    assert batched[2] == alone[0]
    others = {tuple(backend.generate_tokens(ids(backend)[:1], [15], sampling=Sampling(1.0, 0.95, s))[0])
              for s in range(6)}
    assert len(others) > 1  # the seed matters: this is sampling, not greedy in disguise
    greedy = backend.generate_tokens(ids(backend)[:1], [15])
    assert backend.generate_tokens(ids(backend)[:1], [15], sampling=Sampling(1.0, 1e-6, 5)) == greedy


def test_unseeded_sampling_differs_from_greedy(backend):
    hot = Sampling(temperature=1.5)
    greedy = backend.generate_tokens(ids(backend), [15, 15, 15])
    assert any(backend.generate_tokens(ids(backend), [15, 15, 15], sampling=hot) != greedy for _ in range(3))


def test_bad_arguments(backend):
    with pytest.raises(ConfigError, match="one max_new_tokens per row"):
        backend.generate_tokens(ids(backend), [5])
    with pytest.raises(ConfigError, match="at least 1"):
        backend.generate_tokens(ids(backend)[:1], [0])
    with pytest.raises(ConfigError, match="the model has 128"):
        backend.generate_tokens(ids(backend)[:1], [127])
