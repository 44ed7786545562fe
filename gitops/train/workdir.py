"""Where a training run keeps its work: one directory per effective config, ignored by git."""

from __future__ import annotations

from pathlib import Path

from gitops.train.train_config import TrainConfig

RUNS_DIR = ".gitops/runs"


def work_dir(root: Path, cfg: TrainConfig) -> Path:
    """The run's work dir: one per effective config, so ``--resume`` finds the run it continues.
    It ignores itself in git (a ``.gitignore`` of ``*``)."""
    runs = root / RUNS_DIR
    runs.mkdir(parents=True, exist_ok=True)
    ignore = runs / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return runs / f"{cfg.output_model}-{cfg.config_hash()[:12]}"
