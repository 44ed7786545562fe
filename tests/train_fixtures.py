"""Fixtures for the train tests: demo review texts and a tiny train config.

The embedded base model they train on is ``base_model_dir`` of tests/ml_fixtures.py (one per session).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def review_texts() -> list[str]:
    """80 demo review texts: 64 to train on, 16 to validate with."""
    from gitops.ml.corpus import load_corpus

    return [row["text"] for row in load_corpus()[:80]]


def tiny_config(base: Path, dropout: float = 0.0, **trainer: object) -> dict:
    """A config dict that trains in about a second on one CPU core."""
    settings = {"batch_size": 8, "max_length": 32, "eval_steps": 2, "learning_rate": 3e-3, "seed": 7,
                "max_steps": 6, "epochs": 3}
    settings.update(trainer)
    return {"base_model": str(base), "dataset": "reviews@latest", "output": {"model": "review-autocomplete"},
            "adapter": {"r": 4, "alpha": 8, "dropout": dropout, "target_modules": ["q_proj", "v_proj"]},
            "trainer": settings}


def subprocess_env() -> dict[str, str]:
    """Environment for a child python that imports this worktree's gitops, one thread per process."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


PYTHON = sys.executable
