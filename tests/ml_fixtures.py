"""Shared ML fixtures: the embedded default base model, built once per test session.

Other test files import these (``from ml_fixtures import base_model_dir  # noqa: F401``).
Set ``GITOPS_TEST_CACHE_DIR`` to keep the built model between sessions (it is keyed by its
recipe hash, so a changed recipe still rebuilds).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ml_cache_dir(tmp_path_factory) -> Path:
    env = os.environ.get("GITOPS_TEST_CACHE_DIR")
    return Path(env) if env else tmp_path_factory.getbasetemp() / "gitops-cache"


@pytest.fixture(scope="session")
def base_model_dir(ml_cache_dir) -> Path:
    import torch

    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from threads
    from gitops.ml.basemodel import default_base_model

    return default_base_model(ml_cache_dir)
