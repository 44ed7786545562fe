"""Shared-prefix reuse (issue 20, item 5) on the real toy model: the shared instruction of a batch
runs once (CTranslate2's static prompt, a kept transformers KV cache), the backend reports the
prefix it reused, and the answers equal the unsplit run's: greedy text identical, label scores to
1e-4 (float32 on both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.ml import choices
from gitops.ml.prefix import MAX_PREFIXES, MIN_PREFIX, PrefixPlanner, common_prefix

INSTRUCTION = "Rate the review from 1 to 5. Answer with one digit only.\n\nReview: "
TEXTS = ["excellent superb love item 3", "awful broken refund", "ok", "good solid pleasant thing", "poor flimsy"]
PROMPTS = [INSTRUCTION + t + "\nRating:" for t in TEXTS]
LABEL_SETS = [["1", "2", "3", "4", "5"],        # " 5" is two toy tokens: the shared-context path (hf)
              ["one", "bad", "the", "broken"],  # one token each: the next-token path
              ["one", "two words", "5"]]        # mixed lengths: every (prompt, label) sequence scored


@pytest.fixture(scope="module", params=["hf", "ct2"])
def backend(request, base_model_dir: Path, tmp_path_factory):
    from gitops.ml.backends import open_backend

    path = base_model_dir
    if request.param == "ct2":
        from gitops.convert.ct2 import convert_to_ct2

        path = convert_to_ct2(base_model_dir, tmp_path_factory.mktemp("ct2") / "m", "float32")
    with open_backend(path, request.param, threads=1) as b:
        yield b


def both_ways(backend, run):
    """``run()`` unsplit, then with a fresh planner: (plain answer, reused answer, the planner)."""
    backend.prefixes = PrefixPlanner(enabled=False)
    plain = run()
    backend.prefixes = PrefixPlanner()
    return plain, run(), backend.prefixes


def instruction_tokens(backend) -> int:
    return len(backend.encode(INSTRUCTION.rstrip()))


def test_generation_reuses_the_instruction_and_answers_the_same(backend) -> None:
    plain, reused, planner = both_ways(backend, lambda: [g.text for g in backend.generate(PROMPTS, max_new_tokens=6)])
    assert reused == plain
    assert planner.stats.calls == 1 and planner.stats.last >= instruction_tokens(backend) - 1
    # a later, smaller batch takes the remembered prefix from the cache (the engine skips it entirely)
    assert [g.text for g in backend.generate(PROMPTS[1:3], max_new_tokens=6)] == plain[1:3]
    assert planner.stats.calls == 2 and planner.stats.last == len(next(iter(planner.known)))


@pytest.mark.parametrize("labels", LABEL_SETS)
def test_label_scores_agree_with_and_without_prefix_reuse(backend, labels: list[str]) -> None:
    plain, reused, planner = both_ways(backend, lambda: choices.score_labels(backend, PROMPTS, labels))
    flat = lambda rows: [s for row in rows for s, _ in row]  # noqa: E731
    assert flat(reused) == pytest.approx(flat(plain), abs=1e-4)
    assert [[n for _, n in row] for row in reused] == [[n for _, n in row] for row in plain]
    probs = [choices.probabilities(row) for row in reused]
    assert [p for row in probs for p in row] == pytest.approx(
        [p for row in plain for p in choices.probabilities(row)], abs=1e-4)
    if backend.fmt == "ct2" and labels == LABEL_SETS[2]:
        assert planner.stats.calls == 0      # whole sequences go to score_batch, which takes no static prompt
    else:
        assert planner.stats.calls >= 1 and planner.stats.saved_tokens >= instruction_tokens(backend)


def test_the_planner_splits_only_what_every_row_shares() -> None:
    p = PrefixPlanner()
    shared = list(range(100, 100 + MIN_PREFIX + 4))
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 5]]) == 1
    assert p.split([[*shared, 1, 2], [*shared, 3]]) == tuple(shared)
    assert p.split([[*shared, 1, 2], [*shared, 1, 3]]) == tuple(shared)   # the remembered prefix, not a longer one
    assert p.split([[*shared, 9]]) == tuple(shared)                        # one row takes a remembered prefix
    assert p.split([shared]) == ()                                         # ... keeping a token of its own
    assert p.split([[5] * 20]) == ()                                       # one row alone never starts one
    assert p.split([[*shared[:-1], 7, 1], [*shared[:-1], 8]]) == tuple(shared[:-1])  # a new one when it no longer fits
    assert p.split([[1] * (MIN_PREFIX - 1) + [2], [1] * (MIN_PREFIX - 1) + [3]]) == ()  # too short to matter
    assert p.split([[*shared, 1], [*shared, 2]], own=2) == tuple(shared[:-1])  # the last `own` tokens stay out
    p.enabled = False
    assert p.split([[*shared, 1], [*shared, 2]]) == ()
    q = PrefixPlanner()
    for i in range(MAX_PREFIXES + 3):
        head = [i] * MIN_PREFIX
        assert q.split([[*head, 1], [*head, 2]]) == tuple(head)
        q.engine_may_cache(tuple(head))
    assert len(q.known) == MAX_PREFIXES and len(q.engine_cached) == MAX_PREFIXES   # bounded memory
    assert not q.engine_may_cache((99,) * MIN_PREFIX) and q.engine_may_cache((0,) * MIN_PREFIX)
