"""The embedded default base model: a tiny OPT built locally from the shipped demo corpus.

No machine here reaches a model hub, so the toolkit makes its own base model: a byte-level BPE
tokenizer trained on the reviews corpus (OPT conventions: ``</s>`` is both BOS and EOS, ``<pad>``
pads, ``<unk>`` exists because CTranslate2 needs one), a two-layer ``OPTForCausalLM`` and a short
pre-training run so completions are words. The result is an ordinary ``save_pretrained``
directory that the real ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer`` load.

Building is deterministic for a given seed and cached per parameter set; a build goes to a
temporary directory that is renamed into place, under a file lock, so a crash never leaves a half
model and two processes never build the same one twice.

The cache is not trusted blindly: the marker written last holds the md5 of every file of the build,
and every use hashes the files again. A file changed, added or removed since the build (a shared
runner's cache written to by a job that ran a pull request's code, a disk error) is refused with
one sentence naming it; a cache built before manifests existed is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from gitops.core.localcache import build_once, cache_root
from gitops.errors import IntegrityError, TrainError

Progress = Callable[[int, int], None]
"""``progress(done_steps, total_steps)``: called during pre-training so a CLI can draw a bar."""

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, the same layout as OPT's vocabulary
BUILDER_VERSION = 1  # bump when the recipe changes so old caches are not reused
MARKER = "gitops-base-model.json"  # written last; its presence means the build finished


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the built weights; its hash names the cache directory."""

    seed: int = 0
    steps: int = 300
    vocab_size: int = 1024
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    ffn: int = 256
    max_positions: int = 128
    batch_size: int = 32
    lr: float = 3e-3

    def key(self) -> str:
        """Short hash of the recipe, the corpus bytes and the builder version."""
        from gitops.ml.corpus import corpus_path

        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        h.update(corpus_path().read_bytes())
        h.update(str(BUILDER_VERSION).encode())
        return h.hexdigest()[:12]


def default_base_model(cache_dir: Path | None = None, progress: Progress | None = None,
                       *, recipe: Recipe | None = None) -> Path:
    """Path of the embedded default base model, building it on first use.

    Cached under ``cache_dir``, else ``$GITOPS_CACHE_DIR``, else ``~/.cache/gitops``, in a
    directory named after the recipe's hash, so a changed recipe or corpus builds afresh.
    """
    recipe = recipe or Recipe()
    root = cache_root(cache_dir)
    target = root / f"base-model-{recipe.key()}"
    build_once(root, target.name, _verified, lambda tmp: _build(tmp, recipe, progress))
    return target


def build_base_model(out_dir: Path, *, seed: int = 0, steps: int = 300,
                     progress: Progress | None = None) -> Path:
    """Build the tiny OPT base model into ``out_dir`` (created; must be empty or absent)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainError(f"Cannot build the base model into {out_dir}: the directory is not empty.")
    out_dir.mkdir(parents=True, exist_ok=True)
    _build(out_dir, Recipe(seed=seed, steps=steps), progress)
    return out_dir


def _verified(target: Path) -> bool:
    """Whether ``target`` holds a finished build whose files are exactly those its marker lists.
    False: nothing usable is there (absent, unfinished, or built before manifests: rebuild it).
    A finished build whose files changed raises :class:`IntegrityError`."""
    from gitops.adapters.dvcdir import tree_md5s

    try:
        marker = json.loads((target / MARKER).read_text())
        expected = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    found = tree_md5s(target)
    found.pop(MARKER, None)
    if not isinstance(expected, dict) or found == expected:
        return isinstance(expected, dict)
    changed = sorted(r for r in set(found) | set(expected) if found.get(r) != expected.get(r))
    raise IntegrityError(f"The cached base model in {target} does not match the manifest written when it was "
                         f"built ({', '.join(changed[:5])}{' and more' if len(changed) > 5 else ''} changed); "
                         f"refusing to use it: delete {target} to rebuild it.")


def _build(out_dir: Path, recipe: Recipe, progress: Progress | None) -> None:
    """Tokenizer, model, pre-training, save; the marker file is written last."""
    from gitops.ml.corpus import load_corpus

    texts = [row["text"] for row in load_corpus()]
    tokenizer = train_tokenizer(texts, recipe.vocab_size, recipe.max_positions)
    model = _init_model(recipe, len(tokenizer))
    _pretrain(model, tokenizer, texts, recipe, progress)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    from gitops.adapters.dvcdir import tree_md5s

    files = tree_md5s(out_dir)  # the manifest every later use checks (see the module docstring)
    (out_dir / MARKER).write_text(json.dumps({"recipe": asdict(recipe), "key": recipe.key(), "files": files},
                                             indent=2) + "\n")


def train_tokenizer(texts: list[str], vocab_size: int = 1024, max_length: int = 128):
    """A byte-level BPE tokenizer in OPT's conventions, as a ``PreTrainedTokenizerFast``.

    Byte-level means no input is ever out of vocabulary; ``<unk>`` still exists because
    CTranslate2 requires an unknown token. Encoding prepends ``</s>`` as BOS, like OPT. The size
    is rounded up to a multiple of 8 with unused tokens, because CTranslate2's OPT loader pads
    its vocabulary to 8 and the model's embedding rows must match it.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="</s> $A", pair="</s> $A </s> $B", special_tokens=[("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="</s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>",
                                   model_max_length=max_length,
                                   padding_side="left")  # decoder-only generation pads left
    pad = [f"<extra_{i}>" for i in range((-len(fast)) % 8)]
    if pad:
        fast.add_tokens(pad, special_tokens=True)
    return fast


def _init_model(recipe: Recipe, vocab: int):
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    torch.manual_seed(recipe.seed)
    config = OPTConfig(
        vocab_size=vocab, hidden_size=recipe.hidden, word_embed_proj_dim=recipe.hidden,
        num_hidden_layers=recipe.layers, num_attention_heads=recipe.heads, ffn_dim=recipe.ffn,
        max_position_embeddings=recipe.max_positions, dropout=0.0, attention_dropout=0.0,
        pad_token_id=1, bos_token_id=2, eos_token_id=2, tie_word_embeddings=True)
    return OPTForCausalLM(config)


def _pretrain(model, tokenizer, texts: list[str], recipe: Recipe,
              progress: Progress | None) -> None:
    """A short causal-LM run over the corpus: each review is ``</s> text </s>``."""
    import random

    import torch

    ids = [[*tokenizer(t)["input_ids"][:recipe.max_positions - 1], tokenizer.eos_token_id]
           for t in texts]
    rng = random.Random(recipe.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / recipe.steps))
    model.train()
    for step in range(recipe.steps):
        batch = rng.sample(ids, recipe.batch_size)
        input_ids, mask = _right_pad(batch, tokenizer.pad_token_id)
        labels = input_ids.masked_fill(mask == 0, -100)
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        if not torch.isfinite(loss):
            raise TrainError(f"Pre-training the base model diverged at step {step}.")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if progress is not None:
            progress(step + 1, recipe.steps)
    model.eval()


def _right_pad(batch: list[list[int]], pad_id: int):
    import torch

    width = max(len(x) for x in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, seq in enumerate(batch):
        input_ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return input_ids, mask
