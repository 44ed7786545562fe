"""A LoRA version stores its adapter only and is merged into its base on demand (issue 10 §3).

Real components throughout: a GitOps repo with a local DVC remote, the toy base registered as a
base version, real LoRA training through ``gitops train``, real peft merges, real CTranslate2.
One repository per module: the training runs are the expensive part.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from gitops import yamlio
from tests.conftest import run_gitops
from tests.train_fixtures import tiny_config

pytestmark = pytest.mark.slow
MODEL = "review-autocomplete"
BASE = "tiny-base"
ADAPTER_ONLY = {"adapter_config.json", "adapter_model.safetensors", "metrics.json", "loss_curve.json",
                "train_config.yaml", "README.md"}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def lora_repo(tmp_path_factory: pytest.TempPathFactory, base_model_dir: Path):
    """A repo with the toy base registered as ``tiny-base@v1``, reviews@v1, and ``MODEL@v1``: a LoRA
    run on that base (so a peft-lora version)."""
    from gitops import api
    from gitops.ml.corpus import load_corpus, write_csv

    tmp = tmp_path_factory.mktemp("lora")
    ws = api.Workspace(api.init(tmp / "repo", remote=str(tmp / "remote")).root)
    api.create_model(ws, MODEL, description="review autocompletion")
    api.create_dataset(ws, "reviews", {"id": "string", "product": "string", "rating": "int", "text": "string"},
                       "text", ["id"])
    api.ingest(ws, [write_csv(load_corpus()[:120], tmp / "batch-1.csv")], "reviews")
    api.register_base(ws, str(base_model_dir), name=BASE)
    config = tmp / "train.yaml"
    config.write_text(yamlio.dumps({**tiny_config(base_model_dir, max_steps=4, learning_rate=2e-2),
                                    "base_model": f"{BASE}@v1"}))
    run = api.train(api.Workspace(ws.root), config)
    assert run.version == "v1" and run.format == "peft-lora"
    return ws.root, config


def _registry(root: Path):
    from gitops.core.workspace import Workspace

    return Workspace(root).registry()


def test_a_lora_version_stores_the_adapter_alone_pinned_to_its_base(lora_repo) -> None:
    root, _ = lora_repo
    registry = _registry(root)
    base, v1 = registry.models[BASE].versions["v1"], registry.models[MODEL].versions["v1"]
    assert v1.format == "peft-lora" and v1.base_model == f"{BASE}@v1" and v1.base_md5 == base.md5
    stored = root / v1.path
    assert {p.name for p in stored.iterdir()} == ADAPTER_ONLY  # no weights of the base, no tokenizer
    assert _dir_bytes(stored) < 0.2 * _dir_bytes(root / base.path)
    adapter_config = json.loads((stored / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == f"{BASE}@v1"  # no machine-local cache path
    text = (root / "registry" / MODEL / "model.yaml").read_text()
    assert f"base_md5: {base.md5}" in text
    shown = run_gitops("show", MODEL, cwd=root)
    assert shown.exit_code == 0 and f"peft-lora on {BASE}@v1" in shown.stdout, shown.stderr
    shown = run_gitops("show", f"{MODEL}@v1", cwd=root)
    assert f"base_model: {BASE}@v1" in shown.stdout and f"base_md5: {base.md5}" in shown.stdout
    assert run_gitops("alias", "set", MODEL, "lora-test", "v1", cwd=root).exit_code == 0
    history = run_gitops("history", MODEL, "lora-test", cwd=root).stdout
    assert f"none -> v1 (peft-lora on {BASE}@v1)" in history
    event = json.loads(run_gitops("history", MODEL, "lora-test", "--json", cwd=root).stdout)[0]
    assert (event["new_format"], event["new_base"]) == ("peft-lora", f"{BASE}@v1")


def test_eval_and_convert_use_the_merged_weights_and_agree_with_a_merge_by_hand(lora_repo, base_model_dir,
                                                                                 tmp_path) -> None:
    """The merge by hand, registered the old way (a merged hf copy), scores what the peft-lora
    version scores; so does its CTranslate2 float32 conversion, which is a full model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gitops import api
    from gitops.core import merged as merge_cache
    from gitops.core.localcache import cache_root

    root, _ = lora_repo
    ws = api.Workspace(root)
    v1 = ws.registry().models[MODEL].versions["v1"]
    entry = cache_root() / f"lora-{merge_cache.merge_key(v1.base_md5, v1.md5)}"
    by_hand = tmp_path / "merged"
    base = AutoModelForCausalLM.from_pretrained(str(root / ws.registry().models[BASE].versions["v1"].path))
    PeftModel.from_pretrained(base, str(root / v1.path)).merge_and_unload().save_pretrained(str(by_hand))
    AutoTokenizer.from_pretrained(str(base_model_dir)).save_pretrained(str(by_hand))
    old = api.register(ws, MODEL, by_hand, fmt="hf", parent="v1", base_model=f"{BASE}@v1", dataset=v1.dataset).version
    ws = api.Workspace(root)
    options = api.EvalOptions(max_rows=12, samples=2, max_new_tokens=4, threads=1)
    res = api.evaluate(ws, api.plan_eval(ws, f"{MODEL}@v1", baseline=f"{MODEL}@{old.id}"), options)
    lora, merged = res.candidate.metrics, res.baseline.metrics
    assert (entry / merge_cache.MARKER).is_file()  # eval ran the merged weights from the cache
    assert lora["size_bytes"] < 0.2 * merged["size_bytes"]  # the version's own size: its adapter
    assert lora["perplexity"] == pytest.approx(merged["perplexity"], rel=1e-5)
    assert [s.candidate for s in res.samples] == [s.baseline for s in res.samples]
    options = api.EvalOptions(max_rows=12, samples=0, max_new_tokens=4, threads=1)
    ws = api.Workspace(root)
    untrained = api.evaluate(ws, api.plan_eval(ws, f"{BASE}@v1", baseline=None, dataset=v1.dataset), options)
    assert untrained.candidate.metrics["perplexity"] != pytest.approx(lora["perplexity"], rel=1e-3)

    ct2 = api.convert(api.Workspace(root), f"{MODEL}@v1", quantization="float32")
    assert ct2.format == "ct2" and ct2.parent == "v1"
    assert (root / ct2.path / "model.bin").stat().st_size > 0.8 * _dir_bytes(by_hand / "model.safetensors")
    ws = api.Workspace(root)
    res = api.evaluate(ws, api.plan_eval(ws, f"{MODEL}@{ct2.id}", baseline=None), options)
    assert res.candidate.metrics["perplexity"] == pytest.approx(lora["perplexity"], rel=1e-4)


def test_the_merge_cache_is_reused_and_a_bad_entry_is_never_used(lora_repo) -> None:
    from gitops.core import materialize, merged
    from gitops.core.workspace import Workspace

    root, _ = lora_repo
    ws = Workspace(root)
    v1 = ws.registry().models[MODEL].versions["v1"]
    first = materialize.loadable(ws, MODEL, v1)
    builds = merged.BUILDS["count"]
    marker = first.weights / merged.MARKER
    stamp = marker.stat().st_mtime_ns
    again = materialize.loadable(Workspace(root), MODEL, v1)
    assert again.weights == first.weights and again.format == "hf"
    assert merged.BUILDS["count"] == builds and marker.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert first.weights.name == f"lora-{v1.base_md5[:32]}-{v1.md5[:32]}"

    weights = first.weights / "model.safetensors"
    good = weights.read_bytes()
    os.chmod(weights, 0o644)
    weights.write_bytes(good[:-64] + bytes(64))  # tampered in place: same size, other bytes
    rebuilt = materialize.loadable(Workspace(root), MODEL, v1)
    assert merged.BUILDS["count"] == builds + 1 and (rebuilt.weights / "model.safetensors").read_bytes() == good

    marker = rebuilt.weights / merged.MARKER
    marker.unlink()  # an unfinished entry (a build that crashed before its marker)
    materialize.loadable(Workspace(root), MODEL, v1)
    assert merged.BUILDS["count"] == builds + 2 and marker.is_file()


def test_check_names_a_pin_that_does_not_match_its_base(lora_repo, tmp_path: Path) -> None:
    import shutil
    import subprocess

    root, _ = lora_repo
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    assert run_gitops("check", cwd=copy).exit_code == 0
    base_md5 = _registry(root).models[MODEL].versions["v1"].base_md5
    model_yaml = copy / "registry" / MODEL / "model.yaml"
    model_yaml.write_text(model_yaml.read_text().replace(f"base_md5: {base_md5}", f"base_md5: {'1' * 32}.dir"))
    subprocess.run(["git", "commit", "-qam", "edit the pin"], cwd=copy, check=True)
    res = run_gitops("check", cwd=copy)
    assert res.exit_code == 1
    assert f"version v1: base_md5 {'1' * 32}.dir is not the md5 of {BASE}@v1 ({base_md5})" in res.stdout + res.stderr


def test_a_base_that_changed_under_an_adapter_is_refused(lora_repo) -> None:
    from gitops.core import materialize
    from gitops.core.workspace import Workspace
    from gitops.errors import IntegrityError

    root, _ = lora_repo
    ws = Workspace(root)
    v1 = ws.registry().models[MODEL].versions["v1"]
    moved = dataclasses.replace(v1, base_md5="0" * 32 + ".dir")
    with pytest.raises(IntegrityError, match=r"was trained on tiny-base@v1 with md5 0{32}\.dir"):
        materialize.loadable(ws, MODEL, moved)


def test_training_on_a_lora_version_stacks_a_pinned_adapter(lora_repo) -> None:
    from gitops import api
    from gitops.core import materialize

    root, config = lora_repo
    ws = api.Workspace(root)
    run = api.train(ws, config, [f"base_model={MODEL}@v1"])
    registry = _registry(root)
    v1, new = registry.models[MODEL].versions["v1"], registry.models[MODEL].versions[run.version]
    assert new.format == "peft-lora" and new.parent == "v1" and new.base_model == f"{MODEL}@v1"
    assert new.base_md5 == v1.md5
    loaded = materialize.loadable(api.Workspace(root), MODEL, new)
    parent = materialize.loadable(api.Workspace(root), MODEL, v1)
    assert loaded.format == "hf" and loaded.weights != parent.weights
    assert (loaded.weights / "config.json").is_file()


def test_init_links_the_dvc_cache_so_registered_weights_are_stored_once(gitops_repo: Path, tmp_path: Path) -> None:
    """``gitops init`` picks a cache.type that links on this file system (ext4 here: hardlink first),
    and ``gitops register`` honours it: a version's weight file is the cache object itself."""
    from gitops import api
    from gitops.adapters.dvc import DvcConfig

    types = DvcConfig(gitops_repo).link_types
    assert types[0] in ("reflink", "hardlink") and types[-1] == "copy"
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / "model.safetensors").write_bytes(os.urandom(1 << 20))
    ws = api.Workspace(gitops_repo)
    api.create_model(ws, "m", description="link test")
    version = api.register(ws, "m", weights, fmt="hf").version
    stored = gitops_repo / version.path / "model.safetensors"
    digest = __import__("hashlib").md5(stored.read_bytes()).hexdigest()
    cached = gitops_repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    if types[0] == "hardlink":
        assert os.path.samefile(stored, cached) and stored.stat().st_nlink == 2
    else:  # a reflink shares blocks, not the inode
        assert cached.is_file() and not os.path.samefile(stored, cached)


def test_two_processes_merging_at_once_build_one_entry(lora_repo, tmp_path: Path) -> None:
    """The lock and the rename: both get the same finished entry, one of them built it, and no
    temporary directory is left behind."""
    import subprocess
    import sys

    from gitops.core.workspace import Workspace
    from tests.train_fixtures import subprocess_env

    root, _ = lora_repo
    registry = Workspace(root).registry()
    v1, base = registry.models[MODEL].versions["v1"], registry.models[BASE].versions["v1"]
    script = ("import sys; from gitops.core import merged; "
              "p = merged.merged_dir(sys.argv[1], sys.argv[2], sys.argv[3]); print(p, merged.BUILDS['count'])")
    key = "concurrent-test"
    env = {**subprocess_env(), "GITOPS_CACHE_DIR": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, "-c", script, key, str(root / base.path), str(root / v1.path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    paths, builds = zip(*(out.split() for out, _ in outs))
    assert paths[0] == paths[1] == str(tmp_path / "cache" / f"lora-{key}")
    assert sorted(builds) == ["0", "1"]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"lora-{key}", f"lora-{key}.lock"]
