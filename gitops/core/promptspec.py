"""The config of a prompt version (``gitops prompt add MODEL --config prompt.yaml``).

A prompt version holds no weights: it is a base model version, a template and a retrieval rule.
::

    base: ratings-base@v1          # MODEL@REF of a registered version; pinned to vN and its md5
    dataset: reviews@v1            # the data set version retrieval draws from (its train split only)
    task: "Rate the review from 1 to 5."
    template: "{task}\\n\\n{context}{sample}"
    example: "Review: {text}\\nRating: {rating}\\n\\n"   # one retrieved row, over its columns
    retrieval: {type: bm25, k: 3}  # none | random (seed) | bm25 | semantic (embedder: a path or hub id)
    generation: {max_new_tokens: 4, temperature: 0}   # constrain: labels (optional)
    chat: false                    # true: the rendered prompt is the user's turn of the base's chat template
    calibrate: content-free        # optional: contextual calibration of the labels' probabilities

``generation.constrain: labels`` scores every label of the task as the prompt's continuation and
predicts the likeliest instead of generating (:mod:`gitops.ml.choices`). ``calibrate: content-free``
(contextual calibration, Zhao et al. 2021) divides each row's label probabilities by those the same
prompt gives content-free inputs ("N/A", "", "[MASK]") and predicts the likeliest after that
(:mod:`gitops.predict.calibration`); it implies label scoring.

Template slots: ``{sample}`` (the row, rendered by the model's task input template; required),
``{task}`` (the instruction) and ``{context}`` (the retrieved examples, required when ``k`` > 0).
Pure Python, like :mod:`gitops.core.task`: this is read by registry commands.

A prompt version runs its reviewed file (:func:`stored_config`): ``models/MODEL/vN.prompt.yaml``,
whose md5 the version records, validated exactly as ``gitops prompt add`` validates a config (plus
what pinning adds: ``base_md5``, a semantic embedder's ``embedder_md5``), and equal to the copy in
``model.yaml``. A hand-edited copy that differs from the file is refused, never run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.core import refs
from gitops.core.records import Version
from gitops.core.task import template_slots
from gitops.errors import GitopsError, IntegrityError, RegistryError, shown
from gitops.validation import REQUIRED, Check, Field, Key, Problems, Record, validate
from gitops.yamlio import LineMap

PROMPT_KEYS = ("base", "dataset", "task", "template", "example", "retrieval", "generation", "chat", "calibrate")
RETRIEVAL_TYPES = ("none", "random", "bm25", "semantic")
RETRIEVAL_KEYS = ("type", "k", "embedder", "revision", "seed")
GENERATION_KEYS = ("max_new_tokens", "temperature", "constrain")
MIN_TEMPERATURE = 1e-4  # the server's floor too (gitops.serve.protocol)
CONSTRAIN_VALUES = ("labels",)
CALIBRATE_VALUES = ("content-free",)
TEMPLATE_SLOTS = ("sample", "task", "context")
MAX_K = 64
MAX_NEW_TOKENS = 512
MAX_TEXT_CHARS = 16 * 1024
# What parse_prompt accepts, for docs/reference.md (tests/test_reference.py holds them together).
PROMPT_REFERENCE = (
    Key("base", "string", REQUIRED, "ratings-base@v1", "The base model version it runs on (pinned to vN and md5)."),
    Key("dataset", "string", "none", "reviews@v1", "The data set version retrieval draws from (its train split)."),
    Key("task", "string", '""', "Rate the review from 1 to 5.", "The instruction, the template's `{task}`."),
    Key("template", "string", REQUIRED, "{task}\n\n{context}{sample}\nRating:",
        "The prompt: `{sample}` (the row), `{task}`, `{context}` (the examples; needed when k > 0)."),
    Key("example", "string", "none", "Review: {text}\nRating: {rating}\n\n", "How one retrieved row reads."),
    Key("retrieval", "mapping", "`{type: none}`", None, "Few-shot examples (below)."),
    Key("retrieval.type", "string", "`none`", "semantic", "One of " + ", ".join(RETRIEVAL_TYPES) + "."),
    Key("retrieval.k", "integer", "0 (none), 3 (others)", 3, f"Examples per prompt, 0 to {MAX_K}."),
    Key("retrieval.embedder", "string", "none", "sentence-transformers/all-MiniLM-L6-v2",
        "semantic only: a sentence-transformers directory or hub id (pinned by md5)."),
    Key("retrieval.revision", "string", "none", "main", "semantic only: the hub id's branch, tag or commit."),
    Key("retrieval.seed", "integer", "0", 0, "The seed of random retrieval."),
    Key("chat", "boolean", "false", True, "Render the prompt through the base's chat template, as the user's turn."),
    Key("calibrate", "string", "none", "content-free",
        "`content-free`: divide the labels' probabilities by those of content-free inputs (implies label scoring)."),
    Key("generation", "mapping", "`{max_new_tokens: 8, temperature: 0}`", None, "Decoding (below)."),
    Key("generation.max_new_tokens", "integer", "8", 4, f"Tokens generated per row, 1 to {MAX_NEW_TOKENS}."),
    Key("generation.temperature", "number", "0", 0, "0 (greedy) to 2."),
    Key("generation.constrain", "string", "none", "labels",
        "`labels`: score every label as the continuation and predict the likeliest."),
)
MAX_PROMPT_BYTES = 256 * 1024  # a prompt config file, as given to prompt add or stored in git
PINNED_KEYS = ("base_md5",)  # what pinning adds to a stored config
_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")


@dataclass
class Retrieval:
    type: str = "none"
    k: int = 0
    embedder: str | None = None   # a local directory or a hub id (org/name)
    seed: int = 0
    revision: str | None = None   # a hub id's branch, tag or commit (pinned to the commit when added)
    embedder_md5: str | None = None  # set in stored configs: the md5 of the embedder's files


@dataclass
class PromptSpec:
    """A validated prompt config (``base`` as written; pinning happens at ``prompt add``)."""

    base: str
    template: str
    task: str = ""
    dataset: str | None = None
    example: str | None = None
    retrieval: Retrieval = field(default_factory=Retrieval)
    max_new_tokens: int = 8
    temperature: float = 0.0
    constrain: str | None = None   # "labels": decoding constrained to the task's labels
    base_md5: str | None = None    # a stored config's pinned base (None in a config given to prompt add)
    chat: bool = False             # the prompt goes through the base's chat template, as the user's turn
    calibrate: str | None = None   # "content-free": contextual calibration of the labels' probabilities

    def example_slots(self) -> list[str]:
        return template_slots(self.example) if self.example else []


def _int_rule(low: int, high: int, text: str) -> Check:
    return Check(lambda v: None if isinstance(v, int) and not isinstance(v, bool) and low <= v <= high else
                 f" must be a whole number from {low} to {text}", "{path}{why}", "integer")


def _temperature_problem(t: Any) -> str | None:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 2 \
            or 0 < t < MIN_TEMPERATURE:  # below it a float32 engine divides by zero (NaN, pad tokens)
        return f" must be 0 (greedy) or a number from {MIN_TEMPERATURE:g} to 2"
    return None


_UNKNOWN = "unknown key '{key}' in {record} (allowed: {allowed})"
GENERATION_SPEC = Record({
    "max_new_tokens": Field(_int_rule(1, MAX_NEW_TOKENS, str(MAX_NEW_TOKENS)), 8),
    "temperature": Field(Check(_temperature_problem, "{path}{why}", "number", convert=float), 0.0),
    "constrain": Field(Check(lambda v: None if v in CONSTRAIN_VALUES else "must be", "{path} must be 'labels' "
                             "(score each label of the task, predict the likeliest) or absent, not '{shown}'",
                             nullable=True)),
}, unknown=_UNKNOWN, not_mapping="generation must be a mapping like {{max_new_tokens: 4, temperature: 0}}",
   partial=True)


def _retrieval_spec(stored: bool) -> Record:
    """The keys of ``retrieval:`` each on its own (what they need of each other: :func:`_retrieval`)."""
    fields = {
        "type": Field(Check(lambda v: None if v in RETRIEVAL_TYPES else "not one", "retrieval type '{shown}' is not "
                            "one of " + ", ".join(RETRIEVAL_TYPES)), "none"),
        "k": Field(_int_rule(0, MAX_K, str(MAX_K))),
        "embedder": Field(Check(lambda v: None, nullable=True)),
        "revision": Field(Check(lambda v: None if isinstance(v, str) and 0 < len(v) <= 128 else _REVISION, "{why}",
                                nullable=True)),
        "seed": Field(_int_rule(0, 2**32 - 1, "2**32-1"), 0),
    }
    if stored:
        fields["embedder_md5"] = Field(Check(lambda v: None, nullable=True))
    return Record(fields, unknown=_UNKNOWN, not_mapping="retrieval must be a mapping like {{type: bm25, k: 3}}",
                  partial=True, keep_absent=False)


_REVISION = ("retrieval.revision must be a branch, tag or commit (at most 128 characters) of a semantic embedder's "
             "hub id")


def _prompt_spec(stored: bool) -> Record:
    """The keys of a prompt config each on its own (what they need of each other: :func:`parse_prompt`)."""
    empty = "the prompt config's '{key}' is empty"

    def text(key: str, nullable: bool = True) -> Check:
        return Check(lambda v: (None if isinstance(v, str) and len(v) <= MAX_TEXT_CHARS else
                                f"{key} must be a string of at most {MAX_TEXT_CHARS} characters") if v is not None
                     else empty.format(key=key), "{why}", "string", nullable)

    fields = {
        "base": Field(Check(lambda v: _ref_problem(v) if v is not None else empty.format(key="base"), "{why}",
                            convert=_ref_text), REQUIRED),
        "dataset": Field(Check(lambda v: _ref_problem(v, "data set"), "{why}", nullable=True,
                               convert=lambda v: _ref_text(v, "data set"))),
        "task": Field(text("task")),
        "template": Field(text("template", nullable=False), REQUIRED),
        "example": Field(text("example")),
        "retrieval": Field(dataclasses.replace(_retrieval_spec(stored), nullable=True)),
        "generation": Field(dataclasses.replace(GENERATION_SPEC, nullable=True)),
        "chat": Field(Check(lambda v: None if isinstance(v, bool) else "chat must be true (render the prompt through "
                            "the base's chat template, as the user's turn) or false", "{why}"), False),
        "calibrate": Field(Check(lambda v: None if v in CALIBRATE_VALUES else "calibrate must be 'content-free' "
                                 "(divide the labels' probabilities by those of content-free inputs) or absent, "
                                 f"not '{shown(v)}'", "{why}", nullable=True)),
    }
    if stored:
        md5 = "base_md5 must be the md5 of the base version's weights (32 hex digits)"
        fields["base_md5"] = Field(Check(lambda v: None if isinstance(v, str) and _MD5.fullmatch(v) else
                                         md5 if v is not None else [empty.format(key="base_md5"), md5], "{why}"),
                                   REQUIRED)
    return Record(fields, unknown="unknown key '{key}' in the prompt config (allowed: {allowed})",
                  missing="the prompt config is missing the required key '{key}'",
                  not_mapping="a prompt config must be a mapping with keys: {allowed}", partial=True, keep_absent=False,
                  null_is_empty=False)


def parse_prompt(doc: Any, src: str, p: Problems, *, stored: bool = False) -> PromptSpec | None:
    """``prompt.yaml`` as a :class:`PromptSpec`, or None with every problem (file, line, key) in ``p``.
    ``stored``: a prompt version's stored config, pinned (``base: NAME@vN``, ``base_md5``, a semantic
    embedder's ``embedder_md5``); every other rule is the one ``gitops prompt add`` applies."""
    start = len(p)
    keys = validate(_prompt_spec(stored), doc, src, p)
    if keys is None:
        return None
    base = keys.get("base")
    if stored and base is not None and not refs.parse_ref(base, require_ref=True).is_version:
        p.add(src, doc, "base", f"base must name a version like NAME@v1 in a stored config, not '{shown(base)}'")
    retrieval = _retrieval(doc, keys.get("retrieval"), src, p, stored)
    generation = keys.get("generation") or {}
    template = keys.get("template")
    if template is not None:
        _check_template(doc, template, retrieval, src, p)
    if keys.get("example") is not None:
        _slots(doc, "example", keys["example"], src, p)
    if retrieval.type != "none" and keys.get("dataset") is None and "dataset" not in doc:
        p.add(src, doc, "retrieval", f"retrieval '{retrieval.type}' needs 'dataset: NAME@vN' to draw examples from")
    if len(p) != start:
        return None
    return PromptSpec(base=base, template=template, task=keys.get("task") or "", dataset=keys.get("dataset"),
                      example=keys.get("example"), retrieval=retrieval,
                      max_new_tokens=generation.get("max_new_tokens", 8),
                      temperature=generation.get("temperature", 0.0), constrain=generation.get("constrain"),
                      base_md5=keys.get("base_md5"), chat=keys.get("chat", False),
                      calibrate=keys.get("calibrate"))


def _ref_text(value: str, what: str = "model") -> str:
    return str(refs.parse_ref(value, what, require_ref=True))


def _ref_problem(value: Any, what: str = "model") -> str | None:
    """Why ``value`` is not a reference (a data set's must name a version), or None."""
    key = "dataset" if what == "data set" else "base"
    try:
        if not isinstance(value, str):
            raise GitopsError("not a string")
        ref = refs.parse_ref(value, what, require_ref=True)
    except GitopsError:  # any malformed reference reads the same to the user
        return f"{key} must be a reference like NAME@v1 or NAME@production, not '{shown(value)}'"
    if what == "data set" and not ref.is_version:
        return f"{key} must name a data set version like {ref.name}@v1"
    return None


def _slots(doc: LineMap, key: str, text: str, src: str, p: Problems) -> list[str] | None:
    try:
        return template_slots(text)
    except ValueError as exc:
        p.add(src, doc, key, f"{key}: {exc}")
        return None


def _check_template(doc: LineMap, template: str, retrieval: Retrieval, src: str, p: Problems) -> None:
    slots = _slots(doc, "template", template, src, p)
    if slots is None:
        return
    if unknown := [s for s in slots if s not in TEMPLATE_SLOTS]:
        p.add(src, doc, "template", f"template slot '{{{shown(unknown[0])}}}' is not one of "
              + ", ".join(f"{{{s}}}" for s in TEMPLATE_SLOTS))
    if "sample" not in slots:
        p.add(src, doc, "template", "template must place the row with {sample}")
    if retrieval.k > 0 and "context" not in slots:
        p.add(src, doc, "template", f"retrieval gives {retrieval.k} examples but the template has no {{context}}")


def _retrieval(doc: LineMap, keys: dict[str, Any] | None, src: str, p: Problems, stored: bool) -> Retrieval:
    """The retrieval rule, once its keys hold each on its own (``keys``): what they need of each other."""
    block = doc.get("retrieval")
    if keys is None or not isinstance(block, LineMap):
        return Retrieval()
    pinned = block.get("embedder_md5")
    if stored and (pinned is not None or block.get("type") == "semantic") and not (
            isinstance(pinned, str) and _MD5.fullmatch(pinned) and block.get("type") == "semantic"):
        p.add(src, block, "embedder_md5" if "embedder_md5" in block else "type",
              "retrieval.embedder_md5 must pin a semantic embedder's files (32 hex digits), and only one")
    if "type" in block and "type" not in keys:  # not one of the types: said
        return Retrieval()
    kind = keys.get("type", "none")
    k = 0  # a k that is not a whole number in range is said already
    if "k" in keys or "k" not in block:
        k = keys.get("k", 0 if kind == "none" else 3)
        if kind == "none" and k:
            p.add(src, block, "k", "retrieval.k must be 0 when the type is none")
        elif kind != "none" and not k:
            p.add(src, block, "k", f"retrieval.k must be at least 1 for type {kind}")
    embedder = block.get("embedder")
    if kind == "semantic" and not isinstance(embedder, str):
        p.add(src, block, "embedder" if "embedder" in block else "type",
              "retrieval type semantic needs 'embedder': the path or hub id of a sentence-transformers model")
    elif kind != "semantic" and embedder is not None:
        p.add(src, block, "embedder", f"retrieval.embedder is only used by type semantic, not {kind}")
    revision = keys.get("revision")
    if revision is not None and kind != "semantic":
        p.add(src, block, "revision", _REVISION)
        revision = None
    return Retrieval(type=kind, k=k, embedder=embedder if isinstance(embedder, str) else None,
                     seed=keys.get("seed", 0), revision=revision,
                     embedder_md5=pinned if stored and isinstance(pinned, str) else None)


def config_hash(config: dict[str, Any]) -> str:
    """The hash of a stored config that a version records (``config_hash``)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def read_stored(path: Path) -> bytes | None:
    """The bytes of a stored prompt config: a regular file (never a link) of bounded size, else None."""
    if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_PROMPT_BYTES:
        return None
    return path.read_bytes()


def stored_config(label: str, version: Version, data: bytes | None) -> dict[str, Any]:
    """The config prompt version ``label`` runs: ``data``, the bytes of its file ``version.path``
    (None: absent), checked against the md5 the version records, validated as ``gitops prompt add``
    validates a config, and equal to every copy ``model.yaml`` holds of it (``config``,
    ``config_hash``, ``base_model``, ``base_md5``, ``dataset``). RegistryError for an invalid file,
    IntegrityError for one that is not the file the version recorded or that its record contradicts."""
    src = version.path
    if data is None:
        raise IntegrityError(f"{label}: its prompt config {src} is missing (or not a regular file of at most "
                             f"{MAX_PROMPT_BYTES // 1024} KiB); a prompt version runs the file it was added with")
    md5 = hashlib.md5(data).hexdigest()
    if md5 != version.md5:
        raise IntegrityError(f"{label}: md5 {version.md5} disagrees with {src} ({md5}): the prompt config was edited "
                             "after it was added; add the new config as a new version (gitops prompt add)")
    try:
        doc = yamlio.loads(data.decode("utf-8"), src)
    except (yamlio.YamlError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{label}: {src} is not a readable prompt config ({exc})") from None
    problems = Problems()
    if parse_prompt(doc, src, problems, stored=True) is None:
        raise RegistryError(f"{label}: {problems[0]}; gitops prompt add would refuse this config, so it is not run")
    config = yamlio.plain(doc)
    recorded = {"config": version.config, "config_hash": version.config_hash, "base_model": version.base_model,
                "base_md5": version.base_md5, "dataset": version.dataset}
    found = {"config": config, "config_hash": config_hash(config), "base_model": config.get("base"),
             "base_md5": config.get("base_md5"), "dataset": config.get("dataset")}
    always = ("base_model", "base_md5", "dataset")  # older versions may lack a copy and a hash, never these
    differ = [k for k in recorded if (k in always or recorded[k] is not None) and recorded[k] != found[k]]
    if differ:
        raise IntegrityError(f"{label}: its record in model.yaml ({', '.join(differ)}) differs from its reviewed "
                             f"prompt config {src}; the copy is never run: restore it, or add the config as a new "
                             "version (gitops prompt add)")
    return config
