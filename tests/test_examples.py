"""The README's seed-004 comparison is reproduced by examples/seed004/run.sh: its files must stay
valid as the config schemas change (a stale example fails here, not in a user's hands)."""

from __future__ import annotations

import re
from pathlib import Path

from gitops import yamlio
from gitops.core.promptspec import parse_prompt
from gitops.core.task import parse_classification
from gitops.train import train_config
from gitops.validation import Problems

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed004"


def test_seed004_configs_are_valid_and_the_script_adds_each_of_them() -> None:
    p = Problems()
    block = (EXAMPLE / "task.yaml").read_text()   # what `gitops model create --classification` wraps
    task = parse_classification(yamlio.loads("classification:\n" + "".join(f"  {line}\n" for line in
                                                                         block.splitlines()), "task.yaml"),
                                "task.yaml", p)
    prompts = sorted(EXAMPLE.glob("*-shot*.yaml"))
    specs = [parse_prompt(yamlio.load_file(f), f.name, p) for f in prompts]
    assert not p, p.messages()
    assert task is not None and task.labels == ["1", "2", "3", "4", "5"]
    assert {s.retrieval.type for s in specs if s} == {"none", "random", "bm25"}
    assert all(s.retrieval.k in (0, 3) for s in specs if s)
    config = train_config.read(EXAMPLE / "lora.yaml")
    assert config.output_model == "ratings" and config.base_model == specs[0].base
    script = (EXAMPLE / "run.sh").read_text()
    added = re.findall(r'gitops prompt add ratings --config "\$here/([\w-]+\.yaml)"', script)
    assert sorted(added) == [f.name for f in prompts]
    assert '"$here/lora.yaml"' in script and "gitops compare ratings@v1 ratings@v2 ratings@v3 ratings@v4" in script
    head = train_config.read(EXAMPLE / "head.yaml")  # ratings@v5: a classification head on the same base
    assert head.is_head and head.output_model == "ratings" and head.base_model == specs[0].base
    assert '"$here/head.yaml"' in script and "ratings@v4 ratings@v5 --dataset" in script
