"""``gitops train`` with ``adapter: {type: lora, head: true}``: LoRA layers and a classification head
trained together, the rung after a frozen head (seed 004: frozen first; train the weights when the
frozen base is not enough).

The head is first fitted on the frozen base's cached embeddings exactly as ``adapter: {type: head}``
fits it (:mod:`gitops.train.head_train`): a warm start, and the model the joint training must beat.
Then LoRA layers (``adapter.r``, ``alpha``, ``dropout``, ``target_modules``) are put on the base and
trained with the head on the same pooled hidden state and the same loss (cross-entropy, the
``head.class_weights``), ``trainer.epochs`` (or ``trainer.max_steps``) over the train split in
batches of ``trainer.batch_size``, AdamW with ``trainer.learning_rate`` for the LoRA layers and
``head.learning_rate`` for the head; after every epoch the valid split's loss decides, and the best
state (the warm start included: LoRA's B matrices start at zero, so step 0 is the frozen head) is
what is stored. The standardization of the head's input stays the frozen base's.

The version is format ``head`` like a frozen head, with the adapter beside the head:
``adapter_config.json`` and ``adapter_model.safetensors`` (megabytes), pinned to the base version by
md5; whatever runs it loads the adapter merged into its base (the merge cache of
:mod:`gitops.core.merged`), then the head.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path
from typing import Any

from gitops.core.materialize import loadable
from gitops.core.workspace import Workspace
from gitops.data import batches
from gitops.errors import ConfigError, TrainError
from gitops.ml import classhead as headmod
from gitops.ml import embcache
from gitops.ml.embed import Pooling
from gitops.train import head_train
from gitops.train.head_train import HeadRun, Progress
from gitops.train.train_config import TrainConfig

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def train_lora_head(ws: Workspace, cfg: TrainConfig, *, alias: str | None = None, push: bool = False,
                    threads: int | None = None, progress: Progress | None = None) -> HeadRun:
    """Warm start (a frozen head), then LoRA + head together; register the best as format ``head``."""
    from gitops.eval.evaluate import default_threads

    t0 = time.perf_counter()
    model, task = head_train.classification_model(ws, cfg.output_model)
    dataset, dversion = batches.resolve(ws, cfg.dataset)
    label = f"{dataset.name}@{dversion.id}"
    train_rows, valid_rows = head_train.labelled_rows(ws, dataset, dversion, task, label)
    base_name, base = head_train.base_version(ws, cfg)
    loaded = loadable(ws, base_name, base)
    cfg.dataset, cfg.base_model, cfg.gguf_file = label, f"{base_name}@{base.id}", None
    cfg.template, cfg.response, cfg.chat = task.input, None, False
    pooling = Pooling(cfg.head.pooling, cfg.head.layer, cfg.head.max_length)
    rows = train_rows + valid_rows
    texts = [task.render(r) for r in rows]
    threads = threads or default_threads()
    vectors = head_train.embed_rows(loaded, pooling, task, f"{dataset.name}-{dversion.md5.removesuffix('.dir')}",
                                texts, cfg, threads, progress)
    warm = head_train.fit_head(cfg, task, rows, len(train_rows), vectors.vectors)
    index = {name: i for i, name in enumerate(task.labels)}
    y = [index[str(r[task.label])] for r in rows]
    n = len(train_rows)
    joint = finetune(loaded.weights, pooling, texts[:n], y[:n], texts[n:], y[n:], warm, cfg, threads, progress)
    spec = headmod.HeadSpec(labels=list(task.labels), type=cfg.head.type,
                            hidden=cfg.head.hidden if cfg.head.type == "mlp" else None,
                            dim=int(vectors.vectors.shape[1]), pooling=pooling, template=task.input,
                            template_md5=embcache.template_md5(task.input), base_model=cfg.base_model,
                            base_md5=base.md5, adapter=True)
    metrics = {"train_loss": round(joint["train_loss"], 6), "eval_loss": round(joint["eval_loss"], 6),
               "eval_accuracy": round(joint["eval_accuracy"], 6), "frozen_eval_loss": round(warm.eval_loss, 6),
               "frozen_eval_accuracy": round(warm.eval_accuracy, 6), "epochs": joint["epochs"],
               "best_epoch": joint["best_epoch"], "steps": joint["steps"], "train_rows": n,
               "valid_rows": len(valid_rows), "embedded_rows": vectors.embedded, "cached_rows": vectors.reused,
               "embed_s": round(vectors.seconds, 3), "fit_s": round(warm.seconds + joint["seconds"], 3),
               "wall_time_s": round(time.perf_counter() - t0, 3)}
    run = HeadRun(model=model.name, version="", dataset=cfg.dataset, base_model=cfg.base_model, base_md5=base.md5,
                  config=cfg.to_dict(), config_hash=cfg.config_hash(), metrics=metrics, path="",
                  embedded=vectors.embedded, cached=vectors.reused, curve=joint["curve"])
    extra = lambda release: _save_adapter(joint["model"], release, cfg.base_model)  # noqa: E731
    return head_train.register_head(ws, cfg, run, joint["head"], spec, alias=alias, push=push, extra=extra)


def finetune(weights: Path, pooling: Pooling, train_texts: list[str], y_train: list[int], valid_texts: list[str],
             y_valid: list[int], warm: headmod.Fitted, cfg: TrainConfig, threads: int,
             progress: Progress | None = None) -> dict[str, Any]:
    """LoRA on the base at ``weights`` trained together with ``warm``'s head; the best epoch by valid
    loss (epoch 0: the warm start) is kept. Returns the peft model, the head, the curve and scores."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    from gitops.ml.embed import Embedder
    from gitops.train.lora import target_modules
    from gitops.train.modelio import load_base

    torch.set_num_threads(threads)
    torch.manual_seed(cfg.trainer.seed)
    base, tokenizer = load_base(weights)
    a = cfg.adapter
    try:
        peft = get_peft_model(base, LoraConfig(task_type=TaskType.CAUSAL_LM, r=a.r, lora_alpha=a.alpha,
                                               lora_dropout=a.dropout, target_modules=target_modules(base,
                                                                                                    a.target_modules)))
    except ValueError as exc:
        raise TrainError(f"adapter config does not fit the base model: {exc}") from None
    embedder = Embedder(peft.base_model.model, tokenizer, pooling, cfg.base_model)
    head = copy.deepcopy(warm.head)
    ids_train, ids_valid = ([embedder.encode(t) for t in texts] for texts in (train_texts, valid_texts))
    yt, yv = torch.tensor(y_train), torch.tensor(y_valid)
    loss_of = torch.nn.CrossEntropyLoss(weight=headmod.class_weights(yt, int(head.net[-1].out_features),
                                                                     cfg.head.class_weights))
    opt = torch.optim.AdamW([{"params": [p for p in peft.parameters() if p.requires_grad],
                              "lr": cfg.trainer.learning_rate},
                             {"params": head.net.parameters(), "lr": cfg.head.learning_rate}],
                            weight_decay=cfg.head.weight_decay)
    batch = cfg.trainer.batch_size
    total = math.ceil(len(ids_train) / batch) * cfg.trainer.epochs
    total = min(total, cfg.trainer.max_steps or total)
    generator = torch.Generator().manual_seed(cfg.trainer.seed)

    def valid() -> tuple[float, float]:
        peft.eval()
        head.net.eval()
        with torch.no_grad():
            logits = torch.cat([head.logits(embedder.pooled(ids_valid[i:i + batch]))
                                for i in range(0, len(ids_valid), batch)])
        return float(loss_of(logits, yv)), float((logits.argmax(-1) == yv).double().mean())

    t0 = time.perf_counter()
    best_loss, best_acc = valid()
    best = (copy.deepcopy(get_peft_model_state_dict(peft)), copy.deepcopy(head.net.state_dict()))
    out: dict[str, Any] = {"curve": [{"step": 0, "train_loss": None, "eval_loss": best_loss}], "best_epoch": 0,
                           "train_loss": warm.train_loss, "eval_loss": best_loss, "eval_accuracy": best_acc,
                           "epochs": 0, "steps": 0}
    waited, steps = 0, 0
    for epoch in range(1, cfg.trainer.epochs + 1):
        peft.train()
        head.net.train()
        order = torch.randperm(len(ids_train), generator=generator).tolist()
        seen, total_loss = 0, 0.0
        for start in range(0, len(order), batch):
            if steps >= total:
                break
            index = order[start:start + batch]
            loss = loss_of(head.logits(embedder.pooled([ids_train[i] for i in index])), yt[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            seen, total_loss = seen + len(index), total_loss + loss.item() * len(index)
            if progress is not None:
                progress(steps, total, {})
        loss_v, acc_v = valid()
        out["curve"].append({"step": steps, "train_loss": total_loss / max(seen, 1), "eval_loss": loss_v})
        out["epochs"], out["steps"] = epoch, steps
        if loss_v < best_loss - 1e-7:
            best_loss, waited = loss_v, 0
            best = (copy.deepcopy(get_peft_model_state_dict(peft)), copy.deepcopy(head.net.state_dict()))
            out.update(best_epoch=epoch, train_loss=total_loss / max(seen, 1), eval_loss=loss_v, eval_accuracy=acc_v)
        else:
            waited += 1
        if waited >= cfg.head.patience or steps >= total:
            break
    set_peft_model_state_dict(peft, best[0])
    head.net.load_state_dict(best[1])
    head.net.eval()
    out.update(model=peft, head=head, seconds=time.perf_counter() - t0)
    return out


def _save_adapter(peft: Any, release: Path, base_ref: str) -> None:
    """The adapter's two files beside the head; its config names the registry base, not a cache path."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        peft.save_pretrained(tmp)
        for name in ADAPTER_FILES:
            if not (Path(tmp) / name).is_file():
                raise ConfigError(f"peft saved no {name}; cannot store the adapter")
            shutil.copy2(Path(tmp) / name, release / name)
    path = release / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_ref
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
