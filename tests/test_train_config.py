"""Train config validation: unknown keys and wrong types name key and line; --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops.errors import ConfigError
from gitops.train import train_config as config

GOOD = """\
base_model: ./base
dataset: reviews@latest
prompt:
  template: "{text}"
adapter:
  r: 4
trainer:
  learning_rate: 1e-4
  epochs: 2
output:
  model: review-autocomplete
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(text)
    return path


def test_defaults_fill_everything_but_the_three_required_keys(tmp_path: Path) -> None:
    cfg = config.read(write(tmp_path, GOOD))
    assert cfg.trainer.learning_rate == 1e-4  # PyYAML reads 1e-4 as text; a float field takes it
    assert cfg.trainer.epochs == 2 and cfg.adapter.r == 4
    assert cfg.trainer.batch_size == 8 and cfg.trainer.precision == "fp32" and cfg.adapter.alpha == 16.0
    assert cfg.to_dict()["output"] == {"model": "review-autocomplete"}
    with pytest.raises(ConfigError) as err:
        config.read(write(tmp_path, "trainer:\n  epochs: 1\n"))
    text = str(err.value)
    for key in ("base_model", "dataset", "output.model"):
        assert f"missing required key '{key}'" in text


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  epochs: 2\n", "  epochs: 2\n  lr: 0.1\n"))
    with pytest.raises(ConfigError) as err:
        config.read(path)
    assert str(err.value).startswith(f"{path}:10: unknown key 'trainer.lr'")
    assert "learning_rate" in str(err.value)  # the allowed keys are listed


def test_wrong_types_name_key_and_line(tmp_path: Path) -> None:
    bad = GOOD.replace("  r: 4", "  r: four").replace("epochs: 2", "epochs: 2.5") + "extra: 1\n"
    with pytest.raises(ConfigError) as err:
        config.read(write(tmp_path, bad))
    problems = err.value.problems
    assert any(p.endswith(":6: adapter.r must be an integer, not str 'four'") for p in problems), problems
    assert any(":9: trainer.epochs must be an integer" in p for p in problems), problems
    assert any(":12: unknown key 'extra'" in p for p in problems), problems
    with pytest.raises(ConfigError, match=r":7: 'trainer' must be a mapping"):
        config.read(write(tmp_path, GOOD.replace("trainer:\n  learning_rate: 1e-4\n  epochs: 2\n", "trainer: 3\n")))
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp16, not 'fp8'"):
        config.read(write(tmp_path, GOOD), ["trainer.precision=fp8"])
    with pytest.raises(ConfigError, match=r"adapter.dropout must be at most 1"):
        config.read(write(tmp_path, GOOD), ["adapter.dropout=1.5"])


def test_set_overrides_any_key_with_type_checks(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    cfg = config.read(path, ["trainer.learning_rate=3e-4", "trainer.max_steps=10", "adapter.target_modules=[q_proj]",
                             "output.model=other", "prompt.template=Review: {text}"])
    assert cfg.trainer.learning_rate == 3e-4 and cfg.trainer.max_steps == 10
    assert cfg.adapter.target_modules == ["q_proj"] and cfg.output_model == "other"
    assert cfg.template == "Review: {text}"
    with pytest.raises(ConfigError, match=r"--set trainer\.lr: unknown key 'trainer\.lr'"):
        config.read(path, ["trainer.lr=1"])
    with pytest.raises(ConfigError, match=r"trainer\.epochs must be an integer, not str 'many'"):
        config.read(path, ["trainer.epochs=many"])
    with pytest.raises(ConfigError, match=r"must look like key.path=value"):
        config.read(path, ["trainer.epochs"])
    with pytest.raises(ConfigError, match="'trainer' is a section"):
        config.read(path, ["trainer=1"])
    with pytest.raises(ConfigError, match=r"prompt.template .* not a valid format string"):
        config.read(path, ["prompt.template=oops {"])


def test_config_hash_is_canonical(tmp_path: Path) -> None:
    a = config.read(write(tmp_path, GOOD))
    reordered = "output:\n  model: review-autocomplete\n" + GOOD.replace("output:\n  model: review-autocomplete\n", "")
    b = config.read(write(tmp_path, reordered))
    assert a.config_hash() == b.config_hash() and len(a.config_hash()) == 64
    c = config.read(write(tmp_path, GOOD), ["trainer.seed=1"])
    assert c.config_hash() != a.config_hash()


def test_docs_describe_every_key() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "train-config.md").read_text()
    for key, _ in config.schema_rows():
        assert f"`{key}`" in docs, key
