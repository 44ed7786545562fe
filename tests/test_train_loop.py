"""Real training steps on the tiny embedded model: outputs, determinism, resume after SIGKILL,
and a 2-process run under ``accelerate launch``."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gitops.train import train_config as config
from gitops.train.lora import train_model
from tests.train_fixtures import PYTHON, subprocess_env, tiny_config

pytestmark = pytest.mark.slow


def _run(base: Path, texts: list[str], out: Path, **trainer: object):
    cfg = config.from_dict(tiny_config(base, **trainer))
    return train_model(texts[:64], texts[64:], base, cfg, out)


def test_training_writes_adapter_merged_metrics_and_curve(base_model_dir: Path, review_texts: list[str],
                                                          tmp_path: Path) -> None:
    from peft import PeftConfig
    from transformers import AutoModelForCausalLM

    seen: list[int] = []
    cfg = config.from_dict(tiny_config(base_model_dir))
    result = train_model(review_texts[:64], review_texts[64:], base_model_dir, cfg, tmp_path,
                         progress=lambda step, total, last: seen.append(step))
    assert result.steps == 6 and seen == [1, 2, 3, 4, 5, 6]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"train_loss", "eval_loss", "perplexity", "tokens_per_s", "wall_time_s", "steps"}
    assert metrics["steps"] == 6 and metrics["tokens_per_s"] > 0
    assert math.isclose(metrics["perplexity"], math.exp(metrics["eval_loss"]), rel_tol=1e-4)
    curve = json.loads((tmp_path / "loss_curve.json").read_text())
    assert [row["step"] for row in curve] == [2, 4, 6]
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["eval_loss"]) for row in curve)
    assert curve[-1]["eval_loss"] < curve[0]["eval_loss"]  # lr 3e-3 on LoRA: the valid loss goes down
    assert PeftConfig.from_pretrained(str(tmp_path / "adapter")).r == 4
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"))
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert (tmp_path / "merged" / "tokenizer.json").exists()


def test_same_seed_same_run(base_model_dir: Path, review_texts: list[str], tmp_path: Path) -> None:
    a = _run(base_model_dir, review_texts, tmp_path / "a", dropout=0.0)
    b = _run(base_model_dir, review_texts, tmp_path / "b", dropout=0.0)
    assert a.curve == b.curve


def test_bad_precision_and_empty_data_are_train_errors(base_model_dir: Path, tmp_path: Path) -> None:
    import torch

    from gitops.errors import TrainError
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="fp16 needs a CUDA GPU"):
            _run(base_model_dir, ["a review"] * 70, tmp_path, precision="fp16")
    with pytest.raises(TrainError, match="train split is empty"):
        train_model([], [], base_model_dir, config.from_dict(tiny_config(base_model_dir)), tmp_path)
    with pytest.raises(TrainError, match="cannot load base model"):
        train_model(["x y"], [], tmp_path / "nope", config.from_dict(tiny_config(tmp_path / "nope")), tmp_path)


SCRIPT = """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from gitops.train import train_config as config
from gitops.train.lora import train_model

base, out, slow = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "slow"
resume = len(sys.argv) > 4 and sys.argv[4] == "resume"
texts = json.loads(Path(sys.argv[5] if len(sys.argv) > 5 else out.parent / "texts.json").read_text())
cfg = config.from_dict(json.loads((out.parent / "cfg.json").read_text()))
# The test kills this process after the first checkpoint; sleeping between steps gives it time.
progress = (lambda step, total, last: time.sleep(0.5)) if slow else None
r = train_model(texts[:64], texts[64:], base, cfg, out, resume=resume, progress=progress)
if r.is_main_process:
    (out / "result.json").write_text(json.dumps({"steps": r.steps, "resumed_from": r.resumed_from,
                                                 "curve": r.curve, "num_processes": r.num_processes}))
"""


def _prepare(tmp_path: Path, base: Path, texts: list[str], **trainer: object) -> Path:
    (tmp_path / "train_script.py").write_text(SCRIPT)
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_config(base, **trainer)))
    return tmp_path / "train_script.py"


def test_resume_after_sigkill_ends_like_an_uninterrupted_run(base_model_dir: Path, review_texts: list[str],
                                                             tmp_path: Path) -> None:
    script = _prepare(tmp_path, base_model_dir, review_texts, max_steps=8, dropout=0.1)
    out = tmp_path / "run"
    proc = subprocess.Popen([PYTHON, str(script), str(base_model_dir), str(out), "slow"], env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list((out / "checkpoints").glob("step-*/trainer_state.json")):
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's session: nothing else is in it
        proc.wait()
    assert not (out / "metrics.json").exists(), "the run finished before it was killed"
    killed_at = int(next((out / "checkpoints").glob("step-*")).name.split("-")[1])
    assert killed_at < 8
    done = subprocess.run([PYTHON, str(script), str(base_model_dir), str(out), "fast", "resume"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads((out / "result.json").read_text())
    assert resumed["resumed_from"] == killed_at and resumed["steps"] == 8
    assert json.loads((out / "metrics.json").read_text())["steps"] == 8
    # dropout 0.1 uses the RNG: only restored RNG states make the two runs agree
    full = _run(base_model_dir, review_texts, tmp_path / "full", max_steps=8, dropout=0.1)
    assert [r["step"] for r in resumed["curve"]] == [2, 4, 6, 8]
    for a, b in zip(resumed["curve"], full.curve):
        assert a["step"] == b["step"]
        assert math.isclose(a["train_loss"], b["train_loss"], rel_tol=1e-6), (resumed["curve"], full.curve)
        assert math.isclose(a["eval_loss"], b["eval_loss"], rel_tol=1e-6)


def test_two_process_accelerate_launch(base_model_dir: Path, review_texts: list[str], tmp_path: Path) -> None:
    script = _prepare(tmp_path, base_model_dir, review_texts, max_steps=None, epochs=1, eval_steps=2)
    out = tmp_path / "run"
    # The real launcher. (`--cpu` alone stays single-process without MPI; `--multi_gpu` with no GPU
    # starts 2 gloo processes on the CPU, which is the multi-process path a GPU box takes too.)
    cmd = [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(script), str(base_model_dir), str(out), "fast"]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    # 64 rows, 8 per micro-batch on each of 2 processes: 4 optimizer steps in the epoch
    assert result["num_processes"] == 2 and result["steps"] == 4
    assert [r["step"] for r in result["curve"]] == [2, 4]
    assert all(math.isfinite(r["eval_loss"]) for r in result["curve"])
    assert (out / "merged" / "model.safetensors").exists() and (out / "adapter" / "adapter_config.json").exists()
