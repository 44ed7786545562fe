"""A classification head on a frozen base: the torch head, its training, its files, its answers.

The head reads the pooled hidden state of a row (:mod:`gitops.ml.embed`), standardized by the train
split's mean and standard deviation, through one linear layer (``linear``) or a hidden layer with
GELU and dropout (``mlp``), to one logit per label. Training is plain AdamW over mini-batches of the
cached vectors, cross-entropy weighted by ``n / (labels x count)`` per label (``balanced``: a rare
label counts as much as a common one), early stopping on the valid split's loss (the best epoch is
kept). Seeded: the same vectors and settings give the same head.

A head version's files: ``head.safetensors`` (the layers, ``mean`` and ``scale``) and ``head.json``
(:class:`HeadSpec`: labels in task order, head shape, pooling, layer, token limit, the input
template and its md5, the base version and its md5). Kilobytes: the base is not stored.

torch is imported inside the functions that use it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import jsonio
from gitops.errors import ConfigError, GitopsError
from gitops.ml.embed import POOLINGS, Embedder, Pooling

SPEC_FILE, WEIGHTS_FILE = "head.json", "head.safetensors"
SPEC_VERSION = 1
HEAD_TYPES = ("linear", "mlp")
MAX_SPEC_BYTES = 1024 * 1024
MAX_DIM = 1 << 16
MAX_LABELS = 1000
MAX_WEIGHTS = 1 << 26  # a head is kilobytes to megabytes; a head.json asking for more is not one


@dataclass(frozen=True)
class HeadSpec:
    """``head.json``: everything needed to read a head's answers besides its weights."""

    labels: list[str]
    type: str
    hidden: int | None
    dim: int
    pooling: Pooling
    template: str
    template_md5: str
    base_model: str
    base_md5: str
    adapter: bool = False  # LoRA layers trained with the head are stored beside it (the base merged with them)

    def to_dict(self) -> dict[str, Any]:
        return {"gitops_head": SPEC_VERSION, "labels": list(self.labels), "type": self.type, "hidden": self.hidden,
                "dim": self.dim, **self.pooling.to_dict(), "template": self.template,
                "template_md5": self.template_md5, "base_model": self.base_model, "base_md5": self.base_md5,
                "adapter": self.adapter}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> HeadSpec:
        """Validate a loaded ``head.json``; ConfigError naming ``source`` and the key."""
        def bad(key: str, what: str) -> ConfigError:
            return ConfigError(f"{source}: '{key}' must be {what}")

        if not isinstance(data, dict) or data.get("gitops_head") != SPEC_VERSION:
            raise ConfigError(f"{source} is not a gitops head description (gitops_head: {SPEC_VERSION})")
        labels = data.get("labels")
        if (not isinstance(labels, list) or not 2 <= len(labels) <= MAX_LABELS
                or not all(isinstance(v, str) and v for v in labels) or len(set(labels)) != len(labels)):
            raise bad("labels", f"a list of 2 to {MAX_LABELS} distinct labels")
        if data.get("type") not in HEAD_TYPES:
            raise bad("type", " or ".join(HEAD_TYPES))
        ints: dict[str, Any] = {k: data.get(k) for k in ("dim", "layer", "max_length")}
        for key, value in ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_DIM:
                raise bad(key, f"an integer of at most {MAX_DIM}")
        if ints["dim"] < 1 or ints["max_length"] < 1:
            raise bad("dim", "positive, and so must max_length")
        hidden = data.get("hidden")
        if data["type"] == "mlp" and (not isinstance(hidden, int) or isinstance(hidden, bool)
                                      or not 1 <= hidden <= MAX_DIM):
            raise bad("hidden", f"1 to {MAX_DIM} for an mlp head")
        if ints["dim"] * (hidden if data["type"] == "mlp" else len(labels)) > MAX_WEIGHTS:
            raise bad("hidden", f"small enough for at most {MAX_WEIGHTS:,} weights in the first layer")
        if data.get("pooling") not in POOLINGS:
            raise bad("pooling", " or ".join(POOLINGS))
        for key in ("template", "template_md5", "base_model", "base_md5"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise bad(key, "a non-empty string")
        return cls(labels=list(labels), type=data["type"], hidden=hidden if data["type"] == "mlp" else None,
                   dim=ints["dim"], pooling=Pooling(data["pooling"], ints["layer"], ints["max_length"]),
                   template=data["template"], template_md5=data["template_md5"], base_model=data["base_model"],
                   base_md5=data["base_md5"], adapter=data.get("adapter") is True)


def read_spec(head_dir: Path) -> HeadSpec:
    """The validated ``head.json`` of a head version's directory."""
    path = Path(head_dir) / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"{head_dir} has no {SPEC_FILE}; it is not a head version")
    try:
        data = jsonio.load_file(path, MAX_SPEC_BYTES)
    except GitopsError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return HeadSpec.from_dict(data, str(path))


@dataclass(frozen=True)
class FitSettings:
    """How a head is trained (the ``head`` section of a train config, and the seed)."""

    type: str = "linear"
    hidden: int = 256
    epochs: int = 200
    patience: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    dropout: float = 0.1
    class_weights: str = "balanced"
    seed: int = 42


@dataclass
class Head:
    """A head's layers and the standardization of its input (torch objects)."""

    net: Any
    mean: Any
    scale: Any

    def logits(self, x: Any) -> Any:
        return self.net((x - self.mean) / self.scale)

    def probabilities(self, vectors: Any) -> Any:
        """Softmax over the labels of each row of ``vectors`` (numpy, rows x dim), float64 rows summing to 1."""
        import torch

        self.net.eval()
        with torch.inference_mode():
            logits = self.logits(torch.as_tensor(vectors, dtype=torch.float32)).double()
        return torch.softmax(logits, dim=-1).numpy()


@dataclass
class Fitted:
    """A trained head and how its training went (per-epoch curve, the best epoch, valid scores)."""

    head: Head
    curve: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    epochs: int = 0
    train_loss: float = math.nan
    eval_loss: float = math.nan
    eval_accuracy: float = math.nan
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time while fitting: the wall time a quiet machine would take


def build_net(dim: int, labels: int, kind: str, hidden: int | None, dropout: float = 0.0) -> Any:
    import torch

    if kind == "linear":
        return torch.nn.Sequential(torch.nn.Linear(dim, labels))
    return torch.nn.Sequential(torch.nn.Linear(dim, int(hidden or 1)), torch.nn.GELU(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(int(hidden or 1), labels))


def class_weights(y: Any, labels: int, how: str) -> Any:
    """Per-label loss weights: ``balanced`` n / (present labels x count), 0 for a label absent from
    train; ``none`` all ones."""
    import torch

    counts = torch.bincount(torch.as_tensor(y), minlength=labels).double()
    if how == "none":
        return torch.ones(labels)
    present = int((counts > 0).sum())
    weights = torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def fit(x_train: Any, y_train: Any, x_valid: Any, y_valid: Any, labels: int, s: FitSettings) -> Fitted:
    """Train a head on vectors ``x_*`` (numpy, rows x dim) and label indexes ``y_*``; early stopping on
    the valid loss (weighted like the train loss), the best epoch's weights kept. On one CPU thread:
    a head's steps are far too small to share, and spare threads only spin (worse on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit(x_train, y_train, x_valid, y_valid, labels, s)
    finally:
        torch.set_num_threads(threads)


def _fit(x_train: Any, y_train: Any, x_valid: Any, y_valid: Any, labels: int, s: FitSettings) -> Fitted:
    import numpy as np
    import torch

    t0, cpu0 = time.perf_counter(), time.process_time()
    torch.manual_seed(s.seed)
    generator = torch.Generator().manual_seed(s.seed)
    xt = torch.as_tensor(np.asarray(x_train, dtype=np.float32))
    xv = torch.as_tensor(np.asarray(x_valid, dtype=np.float32))
    yt, yv = torch.as_tensor(np.asarray(y_train, dtype=np.int64)), torch.as_tensor(np.asarray(y_valid, dtype=np.int64))
    mean = xt.mean(0)
    scale = xt.std(0, unbiased=False).clamp(min=1e-6) if len(xt) > 1 else torch.ones(xt.shape[1])
    head = Head(build_net(xt.shape[1], labels, s.type, s.hidden, s.dropout), mean, scale)
    xt, xv = (xt - mean) / scale, (xv - mean) / scale
    loss_of = torch.nn.CrossEntropyLoss(weight=class_weights(yt, labels, s.class_weights))
    opt = torch.optim.AdamW(head.net.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
    out = Fitted(head)
    best, best_state, waited = math.inf, None, 0
    for epoch in range(1, s.epochs + 1):
        head.net.train()
        order = torch.randperm(len(xt), generator=generator)
        total = 0.0
        for start in range(0, len(xt), s.batch_size):
            index = order[start:start + s.batch_size]
            loss = loss_of(head.net(xt[index]), yt[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(index)
        head.net.eval()
        with torch.no_grad():
            logits = head.net(xv)
            valid_loss = float(loss_of(logits, yv))
            accuracy = float((logits.argmax(-1) == yv).double().mean())
        out.curve.append({"step": epoch, "train_loss": total / len(xt), "eval_loss": valid_loss})
        out.epochs = epoch
        if valid_loss < best - 1e-7:
            best, waited = valid_loss, 0
            best_state = copy.deepcopy(head.net.state_dict())
            out.best_epoch, out.train_loss, out.eval_loss = epoch, total / len(xt), valid_loss
            out.eval_accuracy = accuracy
        else:
            waited += 1
            if waited >= s.patience:
                break
    if best_state is not None:
        head.net.load_state_dict(best_state)
    head.net.eval()
    out.seconds, out.cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    return out


def save(head: Head, spec: HeadSpec, out_dir: Path) -> None:
    """``head.safetensors`` and ``head.json`` into ``out_dir``."""
    import json

    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().contiguous() for k, v in head.net.state_dict().items()}
    tensors.update(mean=head.mean.contiguous(), scale=head.scale.contiguous())
    save_file(tensors, str(Path(out_dir) / WEIGHTS_FILE))
    (Path(out_dir) / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")


def load(head_dir: Path) -> tuple[Head, HeadSpec]:
    """A head version's head and spec, from its (verified) directory."""
    from safetensors.torch import load_file

    spec = read_spec(head_dir)
    path = Path(head_dir) / WEIGHTS_FILE
    net = build_net(spec.dim, len(spec.labels), spec.type, spec.hidden)
    try:
        tensors = load_file(str(path))
        net.load_state_dict({k.removeprefix("net."): v for k, v in tensors.items() if k.startswith("net.")})
        mean, scale = tensors["mean"], tensors["scale"]
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise ConfigError(f"{path} does not hold the {spec.type} head {SPEC_FILE} describes "
                          f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if tuple(mean.shape) != (spec.dim,) or tuple(scale.shape) != (spec.dim,):
        raise ConfigError(f"{path}: mean and scale must have {spec.dim} values, as {SPEC_FILE} says")
    net.eval()
    return Head(net, mean, scale), spec


class HeadClassifier:
    """A head version ready to answer: its base's embedder and its head. One forward pass of the
    base per batch of rows, a probability per label per row."""

    def __init__(self, embedder: Embedder, head: Head, spec: HeadSpec) -> None:
        if embedder.dim != spec.dim:
            raise ConfigError(f"the head reads vectors of {spec.dim} values, but its base {spec.base_model} "
                              f"makes {embedder.dim}")
        self.embedder, self.head, self.spec = embedder, head, spec

    @property
    def labels(self) -> list[str]:
        return self.spec.labels

    def encode(self, text: str) -> list[int]:
        return self.embedder.encode(text)

    def probabilities(self, batch: list[list[int]]) -> list[list[float]]:
        """Per row of ids: the probability of each label, in task order."""
        return [[float(p) for p in row] for row in self.head.probabilities(self.embedder.embed_ids(batch))]

    def close(self) -> None:
        """The base belongs to whoever opened it (a shared backend): nothing of its own to release."""


def classifier_for(backend: Any, head: Head, spec: HeadSpec) -> HeadClassifier:
    """A :class:`HeadClassifier` over an opened backend of the head's base (an hf one: ct2 has no
    hidden states to read)."""
    if getattr(backend, "model", None) is None:
        raise ConfigError(f"the head's base {spec.base_model} runs on {getattr(backend, 'fmt', '') or 'an engine'} "
                          "without hidden states; a head needs its hf weights")
    return HeadClassifier(Embedder(backend.model, backend.tokenizer, spec.pooling, spec.base_model), head, spec)
