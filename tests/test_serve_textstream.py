"""Streaming detokenization and stop strings, on the toy model's real byte-level BPE tokenizer."""

from __future__ import annotations

import pytest

from gitops.serve.textstream import TextStream

TEXTS = ["The chocolate tour was excellent, I would go again.",
         "Crème brûlée 🍫 — naïve café, 10/10 ✓",  # multi-byte characters split over byte tokens
         "  two  spaces\nand a newline"]


@pytest.fixture(scope="module")
def tok(base_model_dir):
    from gitops.ml.loading import load_tokenizer

    return load_tokenizer(base_model_dir)


def run(tok, text: str, stop=()) -> tuple[list[str], TextStream]:
    stream = TextStream(lambda ids: tok.decode(ids, skip_special_tokens=True), stop)
    pieces = []
    for token in tok(text, add_special_tokens=False)["input_ids"]:
        pieces.append(stream.push(token))
        if stream.stopped:
            break
    pieces.append(stream.finish())
    return pieces, stream


@pytest.mark.parametrize("text", TEXTS)
def test_pieces_add_up_to_the_full_decode(tok, text):
    pieces, stream = run(tok, text)
    assert "".join(pieces) == stream.text == text
    assert not any("\ufffd" in p for p in pieces)  # a split character is never shown half-made
    assert sum(1 for p in pieces if p) > 3  # it streams: many non-empty pieces, not one blob


def test_stop_string_cuts_and_is_never_streamed(tok):
    text = TEXTS[0]
    pieces, stream = run(tok, text, stop=["would go"])
    assert stream.stopped and stream.text == "The chocolate tour was excellent, I "
    assert "".join(pieces) == stream.text
    assert not any("would" in p for p in pieces)  # held back while it might become the stop string


def test_a_prefix_of_a_stop_string_is_released_when_it_turns_out_not_to_be_one(tok):
    pieces, stream = run(tok, TEXTS[0], stop=["was great"])
    assert not stream.stopped and "".join(pieces) == TEXTS[0]
    was_at = next(i for i, p in enumerate(pieces) if "was" in p)
    assert "excellent" in pieces[was_at]  # "was" waited for the next token before it was shown


def test_stop_string_inside_a_multibyte_run(tok):
    _, stream = run(tok, TEXTS[1], stop=["🍫"])
    assert stream.stopped and stream.text == "Crème brûlée "
