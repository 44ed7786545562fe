"""The declarative train config: schema, defaults, ``--set`` overrides and the config hash.

A config is written by people, so every problem is a :class:`ConfigError` that names the key and,
when it came from the file, its line. The schema is one table (:data:`SCHEMA`) that validation,
defaults, ``--set`` and ``docs/train-config.md`` all follow, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.errors import ConfigError, RegistryError
from gitops.yamlio import LineMap

PRECISIONS = ("fp32", "bf16", "fp16")
_REQUIRED = object()
# PyYAML reads `1e-4` (no dot) as a string; a float field accepts such text when it is a number.
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Field:
    """One leaf of the schema: its type (``int``, ``float``, ``str``, ``list[str]``), default and rules."""

    kind: str
    default: Any = _REQUIRED
    help: str = ""
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nullable: bool = False


SCHEMA: dict[str, Any] = {
    "base_model": Field("str", help="Model to fine-tune: a local directory, a hub id (online), or a registry "
                                    "reference such as `review-autocomplete@production` to continue from."),
    "dataset": Field("str", help="Registry data set reference, e.g. `reviews@latest` or `reviews@v2`."),
    "prompt": {
        "template": Field("str", "{text}", help="`str.format` template over a row's columns; `{text}` is the "
                                                "data set's text field (plain language-model fine-tuning)."),
    },
    "adapter": {
        "type": Field("str", "lora", choices=("lora",), help="Adapter kind; only `lora` for now."),
        "r": Field("int", 8, minimum=1, help="LoRA rank."),
        "alpha": Field("float", 16.0, minimum=0, help="LoRA scaling numerator (`lora_alpha`)."),
        "dropout": Field("float", 0.05, minimum=0, maximum=1, help="Dropout on the LoRA input."),
        "target_modules": Field("list[str]", None, nullable=True,
                                help="Module names to adapt, e.g. `[q_proj, v_proj]`; null lets peft pick "
                                     "its default for the architecture."),
    },
    "trainer": {
        "epochs": Field("int", 1, minimum=1, help="Passes over the train split."),
        "learning_rate": Field("float", 2e-4, minimum=0, help="Peak AdamW learning rate (linear decay to 0)."),
        "batch_size": Field("int", 8, minimum=1, help="Rows per micro-batch on each process."),
        "max_steps": Field("int", None, minimum=1, nullable=True,
                           help="Stop after this many optimizer steps (null: run all epochs)."),
        "seed": Field("int", 42, help="Seed for data order, LoRA init and dropout: same seed, same run."),
        "eval_steps": Field("int", 50, minimum=1,
                            help="Evaluate on the valid split and write a checkpoint every N optimizer steps."),
        "gradient_accumulation_steps": Field("int", 1, minimum=1, help="Micro-batches per optimizer step."),
        "precision": Field("str", "fp32", choices=PRECISIONS,
                           help="`fp32`; `bf16` (CPU or a GPU that supports it); `fp16` (CUDA GPU only)."),
        "max_length": Field("int", 256, minimum=8, help="Tokens per row; longer rows are truncated."),
    },
    "output": {
        "model": Field("str", help="Registry model name the new version is registered under."),
    },
}


@dataclass
class AdapterConfig:
    type: str = "lora"
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    target_modules: list[str] | None = None


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
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    source: str = "<config>"

    def to_dict(self) -> dict[str, Any]:
        """The effective config in the file's shape (what is recorded and hashed)."""
        return {
            "base_model": self.base_model,
            "dataset": self.dataset,
            "prompt": {"template": self.template},
            "adapter": dict(vars(self.adapter)),
            "trainer": dict(vars(self.trainer)),
            "output": {"model": self.output_model},
        }

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the effective config: equal configs, equal hashes."""
        return config_hash(self.to_dict())


def config_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def template_fields(template: str) -> list[str]:
    """Column names a ``str.format`` template uses; a malformed template is a ConfigError."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"prompt.template '{template}' is not a valid format string ({exc})") from None
    bad = [n for n in names if not n or not n.isidentifier()]
    if bad:
        raise ConfigError(f"prompt.template '{template}' must name columns, like '{{text}}'")
    return names


# --- validation ------------------------------------------------------------------------------------

def _where(source: str, node: Any, key: Any) -> str:
    if isinstance(node, LineMap):
        line = node.key_lines.get(key, node.line)
        if line:
            return f"{source}:{line}"
    return source


def _coerce(spec: Field, value: Any, dotted: str) -> tuple[Any, str | None]:
    """(value converted to the field's type, None) or (None, what is wrong)."""
    if value is None:
        if spec.nullable:
            return None, None
        return None, f"{dotted} must not be empty (expected {spec.kind})"
    kind = spec.kind
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif kind == "str":
        ok = isinstance(value, str) and value != ""
    else:  # list[str]; a single name is accepted as a list of one
        value = [value] if isinstance(value, str) else value
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
        value = list(value) if ok else value
    if not ok:
        return None, f"{dotted} must be {_kind_name(kind)}, not {_describe(value)}"
    if spec.choices and value not in spec.choices:
        return None, f"{dotted} must be one of {', '.join(spec.choices)}, not '{value}'"
    if spec.minimum is not None and value < spec.minimum:
        return None, f"{dotted} must be at least {_num(spec.minimum)}, not {value}"
    if spec.maximum is not None and value > spec.maximum:
        return None, f"{dotted} must be at most {_num(spec.maximum)}, not {value}"
    return value, None


def _kind_name(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "str": "a non-empty string",
            "list[str]": "a list of names"}[kind]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return f"a list {value!r}"
    return f"{type(value).__name__} {value!r}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _validate(doc: Any, schema: dict[str, Any], prefix: str, source: str, problems: list[str]) -> dict[str, Any]:
    """Walk ``doc`` against ``schema``; return the defaulted plain dict and collect every problem."""
    out: dict[str, Any] = {}
    if doc is None:
        doc = LineMap()
    if not isinstance(doc, dict):
        what = f"'{prefix.rstrip('.')}'" if prefix else "the config"
        problems.append(f"{source}: {what} must be a mapping with keys: {', '.join(schema)}")
        return _defaults(schema)
    for key in doc:
        if key not in schema:
            allowed = ", ".join(schema)
            problems.append(f"{_where(source, doc, key)}: unknown key '{prefix}{key}' (allowed here: {allowed})")
    for key, spec in schema.items():
        dotted = f"{prefix}{key}"
        if isinstance(spec, dict):
            if key in doc and not isinstance(doc[key], dict) and doc[key] is not None:
                problems.append(f"{_where(source, doc, key)}: '{dotted}' must be a mapping with keys: "
                                f"{', '.join(spec)}")
                out[key] = _defaults(spec)
            else:
                out[key] = _validate(doc.get(key), spec, f"{dotted}.", source, problems)
            continue
        if key not in doc:
            if spec.default is _REQUIRED:
                problems.append(f"{_where(source, doc, None)}: missing required key '{dotted}'")
            out[key] = None if spec.default is _REQUIRED else spec.default
            continue
        value, problem = _coerce(spec, doc[key], dotted)
        if problem:
            problems.append(f"{_where(source, doc, key)}: {problem}")
        out[key] = value
    return out


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: (_defaults(s) if isinstance(s, dict) else (None if s.default is _REQUIRED else s.default))
            for k, s in schema.items()}


def _leaf(dotted: str) -> Field:
    """The schema field a dotted key names; ConfigError naming the key when there is none."""
    node: Any = SCHEMA
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            scope = ".".join(parts[:i]) or "the top level"
            allowed = ", ".join(node) if isinstance(node, dict) else "none (it is a value)"
            raise ConfigError(f"--set {dotted}: unknown key '{dotted}' (allowed in {scope}: {allowed})")
        node = node[part]
    if isinstance(node, dict):
        raise ConfigError(f"--set {dotted}: '{dotted}' is a section; set one of its keys, e.g. "
                          f"{dotted}.{next(iter(node))}=...")
    return node


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
            raise ConfigError(f"--set '{item}' must look like key.path=value, e.g. trainer.learning_rate=1e-4")
        spec = _leaf(dotted)
        try:
            value = yamlio.loads(text, f"--set {dotted}") if text.strip() else None
        except RegistryError as exc:
            if spec.kind != "str":
                raise ConfigError(str(exc)) from None
            value = text
        if spec.kind == "str" and value is not None and not isinstance(value, str):
            value = text.strip()  # `Review: {text}` reads as a mapping in YAML; a str key wants the text
        if isinstance(value, (dict, list)) and spec.kind != "list[str]":
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
    problems: list[str] = []
    data = _validate(doc, SCHEMA, "", source, problems)
    if not problems:
        try:
            template_fields(data["prompt"]["template"])
        except ConfigError as exc:
            problems.append(f"{_where(source, (doc.get('prompt') or {}), 'template')}: {exc}")
    if problems:
        if len(problems) == 1:
            raise ConfigError(problems[0])
        raise ConfigError(f"{source}: {len(problems)} problems in the train config:", problems=problems)
    return TrainConfig(base_model=data["base_model"], dataset=data["dataset"], output_model=data["output"]["model"],
                       template=data["prompt"]["template"], adapter=AdapterConfig(**data["adapter"]),
                       trainer=TrainerConfig(**data["trainer"]), source=source)


def load(path: Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a train config file."""
    try:
        doc = yamlio.load_file(path)
    except RegistryError as exc:  # the YAML layer speaks of registry files; this is a config
        raise ConfigError(str(exc)) from None
    return parse(apply_overrides(doc, list(overrides or [])), str(path))


def from_dict(data: dict[str, Any], source: str = "<config>") -> TrainConfig:
    """Validate a plain dict (a recorded effective config, a test's config)."""
    return parse(yamlio.loads(yamlio.dumps(data), source), source)


def schema_rows() -> list[tuple[str, Field]]:
    """(dotted key, field) for every leaf, in schema order (used to write the docs)."""
    rows: list[tuple[str, Field]] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, spec in node.items():
            if isinstance(spec, dict):
                walk(spec, f"{prefix}{key}.")
            else:
                rows.append((f"{prefix}{key}", spec))

    walk(SCHEMA, "")
    return rows
