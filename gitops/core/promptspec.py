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
from gitops.validation import REQUIRED, Key, Problems
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


def parse_prompt(doc: Any, src: str, p: Problems, *, stored: bool = False) -> PromptSpec | None:
    """``prompt.yaml`` as a :class:`PromptSpec`, or None with every problem (file, line, key) in ``p``.
    ``stored``: a prompt version's stored config, pinned (``base: NAME@vN``, ``base_md5``, a semantic
    embedder's ``embedder_md5``); every other rule is the one ``gitops prompt add`` applies."""
    allowed = PROMPT_KEYS + PINNED_KEYS if stored else PROMPT_KEYS
    if not isinstance(doc, LineMap):
        p.add(src, None, None, "a prompt config must be a mapping with keys: " + ", ".join(allowed))
        return None
    start = len(p)
    for key in doc:
        if key not in allowed:
            p.add(src, doc, key, f"unknown key '{shown(key)}' in the prompt config (allowed: {', '.join(allowed)})")
    for key in ("base", "template", *(PINNED_KEYS if stored else ())):
        if key not in doc:
            p.add(src, doc, None, f"the prompt config is missing the required key '{key}'")
        elif doc.get(key) is None:  # `base:` with nothing after it
            p.add(src, doc, key, f"the prompt config's '{key}' is empty")
    base = _ref(doc, "base", src, p)
    if stored:
        _pinned(doc, base, src, p)
    dataset = _ref(doc, "dataset", src, p, what="data set")
    texts = {k: _text(doc, k, src, p) for k in ("task", "template", "example")}
    retrieval = _retrieval(doc, src, p, stored)
    tokens, temperature, constrain = _generation(doc, src, p)
    chat = doc.get("chat", False)
    if not isinstance(chat, bool):
        p.add(src, doc, "chat", "chat must be true (render the prompt through the base's chat template, as the "
              "user's turn) or false")
        chat = False
    calibrate = doc.get("calibrate")
    if calibrate is not None and calibrate not in CALIBRATE_VALUES:
        p.add(src, doc, "calibrate", f"calibrate must be 'content-free' (divide the labels' probabilities by those "
              f"of content-free inputs) or absent, not '{shown(calibrate)}'")
        calibrate = None
    template = texts["template"]
    if template is not None:
        _check_template(doc, template, retrieval, src, p)
    if texts["example"] is not None:
        _slots(doc, "example", texts["example"], src, p)
    if retrieval.type != "none" and dataset is None and "dataset" not in doc:
        p.add(src, doc, "retrieval", f"retrieval '{retrieval.type}' needs 'dataset: NAME@vN' to draw examples from")
    if len(p) != start or base is None or template is None:
        return None
    return PromptSpec(base=base, template=template, task=texts["task"] or "", dataset=dataset,
                      example=texts["example"], retrieval=retrieval, max_new_tokens=tokens, temperature=temperature,
                      constrain=constrain, base_md5=doc.get("base_md5") if stored else None, chat=chat,
                      calibrate=calibrate)


def _pinned(doc: LineMap, base: str | None, src: str, p: Problems) -> None:
    """A stored config names its base by version id and pins its md5."""
    if base is not None and not refs.parse_ref(base, require_ref=True).is_version:
        p.add(src, doc, "base", f"base must name a version like NAME@v1 in a stored config, not '{shown(base)}'")
    md5 = doc.get("base_md5")
    if "base_md5" in doc and not (isinstance(md5, str) and _MD5.fullmatch(md5)):
        p.add(src, doc, "base_md5", "base_md5 must be the md5 of the base version's weights (32 hex digits)")


def _ref(doc: LineMap, key: str, src: str, p: Problems, what: str = "model") -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise GitopsError("not a string")
        ref = refs.parse_ref(value, what, require_ref=True)
    except GitopsError:  # any malformed reference reads the same to the user
        p.add(src, doc, key, f"{key} must be a reference like NAME@v1 or NAME@production, not '{shown(value)}'")
        return None
    if what == "data set" and not ref.is_version:
        p.add(src, doc, key, f"{key} must name a data set version like {ref.name}@v1")
        return None
    return str(ref)


def _text(doc: LineMap, key: str, src: str, p: Problems) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT_CHARS:
        p.add(src, doc, key, f"{key} must be a string of at most {MAX_TEXT_CHARS} characters")
        return None
    return value


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


def _retrieval(doc: LineMap, src: str, p: Problems, stored: bool = False) -> Retrieval:
    block = doc.get("retrieval")
    if block is None:
        return Retrieval()
    if not isinstance(block, LineMap):
        p.add(src, doc, "retrieval", "retrieval must be a mapping like {type: bm25, k: 3}")
        return Retrieval()
    allowed = RETRIEVAL_KEYS + ("embedder_md5",) if stored else RETRIEVAL_KEYS
    for key in block:
        if key not in allowed:
            p.add(src, block, key, f"unknown key '{shown(key)}' in retrieval (allowed: {', '.join(allowed)})")
    pinned = block.get("embedder_md5")
    if stored and (pinned is not None or block.get("type") == "semantic") and not (
            isinstance(pinned, str) and _MD5.fullmatch(pinned) and block.get("type") == "semantic"):
        p.add(src, block, "embedder_md5" if "embedder_md5" in block else "type",
              "retrieval.embedder_md5 must pin a semantic embedder's files (32 hex digits), and only one")
    kind = block.get("type", "none")
    if kind not in RETRIEVAL_TYPES:
        p.add(src, block, "type", f"retrieval type '{shown(kind)}' is not one of {', '.join(RETRIEVAL_TYPES)}")
        return Retrieval()
    k = block.get("k", 0 if kind == "none" else 3)
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= MAX_K:
        p.add(src, block, "k", f"retrieval.k must be a whole number from 0 to {MAX_K}")
        k = 0
    elif kind == "none" and k:
        p.add(src, block, "k", "retrieval.k must be 0 when the type is none")
    elif kind != "none" and not k:
        p.add(src, block, "k", f"retrieval.k must be at least 1 for type {kind}")
    seed = block.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        p.add(src, block, "seed", "retrieval.seed must be a whole number from 0 to 2**32-1")
        seed = 0
    embedder = block.get("embedder")
    if kind == "semantic" and not isinstance(embedder, str):
        p.add(src, block, "embedder" if "embedder" in block else "type",
              "retrieval type semantic needs 'embedder': the path or hub id of a sentence-transformers model")
    elif kind != "semantic" and embedder is not None:
        p.add(src, block, "embedder", f"retrieval.embedder is only used by type semantic, not {kind}")
    revision = block.get("revision")
    if revision is not None and (kind != "semantic" or not isinstance(revision, str) or not 0 < len(revision) <= 128):
        p.add(src, block, "revision", "retrieval.revision must be a branch, tag or commit (at most 128 characters) "
              "of a semantic embedder's hub id")
        revision = None
    return Retrieval(type=kind, k=k, embedder=embedder if isinstance(embedder, str) else None, seed=seed,
                     revision=revision, embedder_md5=pinned if stored and isinstance(pinned, str) else None)


def _generation(doc: LineMap, src: str, p: Problems) -> tuple[int, float, str | None]:
    block = doc.get("generation")
    if block is None:
        return 8, 0.0, None
    if not isinstance(block, LineMap):
        p.add(src, doc, "generation", "generation must be a mapping like {max_new_tokens: 4, temperature: 0}")
        return 8, 0.0, None
    for key in block:
        if key not in GENERATION_KEYS:
            p.add(src, block, key, f"unknown key '{shown(key)}' in generation (allowed: {', '.join(GENERATION_KEYS)})")
    tokens = block.get("max_new_tokens", 8)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 1 <= tokens <= MAX_NEW_TOKENS:
        p.add(src, block, "max_new_tokens", f"generation.max_new_tokens must be a whole number from 1 to "
              f"{MAX_NEW_TOKENS}")
        tokens = 8
    temperature = block.get("temperature", 0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2 \
            or 0 < temperature < MIN_TEMPERATURE:  # below it a float32 engine divides by zero (NaN, pad tokens)
        p.add(src, block, "temperature", f"generation.temperature must be 0 (greedy) or a number from "
              f"{MIN_TEMPERATURE:g} to 2")
        temperature = 0
    constrain = block.get("constrain")
    if constrain is not None and constrain not in CONSTRAIN_VALUES:
        p.add(src, block, "constrain", f"generation.constrain must be 'labels' (score each label of the task, "
              f"predict the likeliest) or absent, not '{shown(constrain)}'")
        constrain = None
    return tokens, float(temperature), constrain


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
