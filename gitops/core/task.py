"""What a model is asked to do: its task, as ``model.yaml`` declares it.

``task: completion`` (the default; older registries say ``text-generation`` or another free word,
all of which mean completion) continues a text. ``task: classification`` needs a
``classification:`` block::

    task: classification
    classification:
      input: "Review: {text}"          # a template over the row's columns
      label: rating                    # the column holding the true label
      labels: ["1", "2", "3", "4", "5"]
      fallback: "3"                    # what an output matching no label counts as
      extract:                         # optional, per label; default: the label as a whole word
        "5": {regex: "\\\\b(five|5)\\\\b"}
        "1": {exact: "one"}

Extraction reads a raw model output and returns the first label whose rule matches (in the order
of ``labels``), or None: the output is *invalid* and scores as the fallback. Every zero-shot,
few-shot and fine-tuned variant of the model shares this one definition, so they are scored on the
same rows, rendered by the same template, with the same extraction. Pure Python: registry commands
parse it without importing anything heavy.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from typing import Any

from gitops.errors import shown
from gitops.saferegex import check_pattern, compile_linear
from gitops.validation import REQUIRED, Check, Field, Key, Problems, Record, validate
from gitops.yamlio import LineMap

CLASSIFICATION = "classification"
COMPLETION = "completion"
MAX_LABELS = 1000
MAX_TEMPLATE_CHARS = 16 * 1024
MAX_RULE_CHARS = 1000
CLASSIFICATION_KEYS = ("input", "label", "labels", "fallback", "extract")
RULE_KINDS = ("regex", "exact")
_SLOT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# What parse_classification accepts, for docs/reference.md (tests/test_reference.py holds them together).
CLASSIFICATION_REFERENCE = (
    Key("classification.input", "string", REQUIRED, "Review: {text}",
        "Template over a row's columns (`{column}` slots): what every variant is asked."),
    Key("classification.label", "string", REQUIRED, "rating", "The column holding the true label."),
    Key("classification.labels", "list of strings", REQUIRED, ["1", "2", "3", "4", "5"],
        f"The label vocabulary, 2 to {MAX_LABELS} distinct labels."),
    Key("classification.fallback", "string", REQUIRED, "3", "What an output matching no label counts as."),
    Key("classification.extract", "mapping of label to {regex: R} or {exact: T}", "each label as a whole word",
        {"5": {"regex": "\\b(five|5)\\b"}}, "How a raw output is read as a label (first match in label order)."),
)


@dataclass(frozen=True)
class Rule:
    """How one label is found in a raw output: ``regex`` (searched, case-insensitive, on the
    linear-time engine: :mod:`gitops.saferegex`), ``exact`` (the whole stripped output equals it,
    case-insensitive), or ``word`` (the default: the label as a whole word, never written in a file)."""

    kind: str
    pattern: str

    def matches(self, output: str) -> bool:
        if self.kind == "exact":
            return output.strip().casefold() == self.pattern.strip().casefold()
        if self.kind == "word":  # an escaped literal between fixed-width lookarounds: never backtracks
            return re.search(r"(?<!\w)" + re.escape(self.pattern) + r"(?!\w)", output, re.IGNORECASE) is not None
        return compile_linear(self.pattern, True).search(output)


@dataclass
class ClassificationTask:
    """A validated ``classification:`` block."""

    input: str
    label: str
    labels: list[str]
    fallback: str
    extract: dict[str, Rule] = field(default_factory=dict)

    def slots(self) -> list[str]:
        """The columns the input template names, in order of first use."""
        return template_slots(self.input)

    def render(self, row: dict[str, Any]) -> str:
        """The input template filled from ``row`` (a column it lacks is a KeyError: checked before)."""
        return self.input.format_map({k: "" if row[k] is None else row[k] for k in self.slots()})

    def rule(self, label: str) -> Rule:
        return self.extract.get(label) or Rule("word", label)

    def extract_label(self, output: str) -> str | None:
        """The first label (in ``labels`` order) whose rule matches ``output``; None if none does."""
        return next((label for label in self.labels if self.rule(label).matches(output)), None)

    def predict(self, output: str) -> tuple[str, bool]:
        """The label an output counts as, and whether it matched one (False: the fallback was used)."""
        found = self.extract_label(output)
        return (found, True) if found is not None else (self.fallback, False)

    def md5(self) -> str:
        """An md5 of the block's meaning (its keys in a fixed order): what a version records as ``task_md5``."""
        text = json.dumps({"task": CLASSIFICATION, **self.to_dict()}, sort_keys=True, separators=(",", ":"))
        return hashlib.md5(text.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"input": self.input, "label": self.label, "labels": list(self.labels),
                               "fallback": self.fallback}
        if self.extract:
            out["extract"] = {k: {r.kind: r.pattern} for k, r in self.extract.items()}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassificationTask:
        extract = {k: Rule(*next(iter(v.items()))) for k, v in (data.get("extract") or {}).items()}
        return cls(input=data["input"], label=data["label"], labels=list(data["labels"]),
                   fallback=data["fallback"], extract=extract)


def template_slots(template: str) -> list[str]:
    """The names a ``{slot}`` template uses, in order; ValueError for a malformed one."""
    out: list[str] = []
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not _SLOT_RE.fullmatch(name) or spec or conv:
            raise ValueError(f"slot '{{{shown(name)}}}' must be a plain column name like {{text}}")
        if name not in out:
            out.append(name)
    return out


def _input_problem(template: Any) -> str | None:
    if not isinstance(template, str) or not template.strip():
        return " must be a template string like 'Review: {text}'"
    if len(template) > MAX_TEMPLATE_CHARS:
        return f" is longer than {MAX_TEMPLATE_CHARS} characters"
    try:
        slots = template_slots(template)
    except ValueError as exc:
        return f": {exc}"
    return None if slots else " names no column; use a slot like {text}"


def _labels_problem(labels: Any) -> str | None:
    if (not isinstance(labels, list) or len(labels) < 2
            or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in labels)):
        return " must be a list of at least two labels"
    if len(labels) > MAX_LABELS:
        return f" has {len(labels)} labels (at most {MAX_LABELS})"
    out = [str(v) for v in labels]
    if dup := next((v for v in out if out.count(v) > 1), None):
        return f" lists '{shown(dup)}' twice"
    if empty := [v for v in out if not v.strip()]:
        return f" has an empty label ({len(empty)})"
    return None


# The keys of a classification block, each checked on its own; the fallback and the extraction rules
# are then checked against the labels (parse_classification).
BLOCK_SPEC = Record({
    "input": Field(Check(_input_problem, "{path}{why}", "string"), REQUIRED),
    "label": Field(Check(lambda v: None if isinstance(v, str) and _SLOT_RE.fullmatch(v) else
                         " must be the name of the column that holds the true label", "{path}{why}", "string"),
                   REQUIRED),
    "labels": Field(Check(_labels_problem, "{path}{why}", "list of strings", convert=lambda v: [str(x) for x in v]),
                    REQUIRED),
    "fallback": Field(Check(lambda v: None, label="string"), REQUIRED),
    "extract": Field(Check(lambda v: None if isinstance(v, dict) else
                           " must map labels to {regex: ...} or {exact: ...}", "{path}{why}", nullable=True), None),
}, unknown="unknown key '{key}' in {record} (allowed: {allowed})",
   missing="{record} is missing the required key '{key}'", partial=True)


def parse_classification(doc: LineMap, src: str, p: Problems) -> ClassificationTask | None:
    """The ``classification:`` block of ``doc`` (a model.yaml), or None with problems in ``p``."""
    block = doc.get("classification")
    if not isinstance(block, LineMap):
        p.add(src, doc, "classification" if "classification" in doc else "task",
              "task: classification needs a 'classification' mapping with input, label, labels and fallback")
        return None
    start = len(p)
    keys = validate(BLOCK_SPEC, block, src, p, path="classification", node=doc, key="classification")
    labels = keys.get("labels")
    if "fallback" in keys and labels is not None and keys["fallback"] not in labels:
        p.add(src, block, "fallback", f"classification.fallback '{shown(keys['fallback'])}' is not one of the "
                                      "labels")
    extract = _extract(keys.get("extract") or {}, labels or [], src, p)
    if len(p) != start:
        return None
    return ClassificationTask(input=keys["input"], label=keys["label"], labels=keys["labels"],
                              fallback=keys["fallback"], extract=extract)


def _extract(rules: dict[Any, Any], labels: list[str], src: str, p: Problems) -> dict[str, Rule]:
    out: dict[str, Rule] = {}
    for label, rule in rules.items():
        where = f"classification.extract.{shown(label)}"
        if str(label) not in labels:
            p.add(src, rules, label, f"{where}: '{shown(label)}' is not one of the labels")
            continue
        if (not isinstance(rule, dict) or len(rule) != 1 or next(iter(rule)) not in RULE_KINDS
                or not isinstance(next(iter(rule.values())), str)):
            p.add(src, rules, label, f"{where} must be {{regex: '...'}} or {{exact: '...'}}")
            continue
        kind, pattern = next(iter(rule.items()))
        if not pattern or len(pattern) > MAX_RULE_CHARS:
            p.add(src, rules, label, f"{where}: the {kind} must be 1 to {MAX_RULE_CHARS} characters")
            continue
        if kind == "regex" and (why := check_pattern(pattern)):
            p.add(src, rules, label, f"{where}: regex '{shown(pattern)}' {why}")
            continue
        out[str(label)] = Rule(kind, pattern)
    return out


def check_columns(task: ClassificationTask, columns: dict[str, str] | list[str], what: str) -> str | None:
    """Why ``task`` cannot read rows with ``columns`` (a slot or the label column is missing), or None."""
    names = list(columns)
    for slot in task.slots():
        if slot not in names:
            return (f"the input template names column '{shown(slot)}', which {what} does not have "
                    f"(columns: {', '.join(names)})")
    if task.label not in names:
        return f"the label column '{shown(task.label)}' is not a column of {what} (columns: {', '.join(names)})"
    return None


def check_labels(task: ClassificationTask, values: list[Any], what: str) -> str | None:
    """Why the label vocabulary does not cover ``values`` (the label column of a data set), or None."""
    known = set(task.labels)
    missing = sorted({str(v) for v in values if str(v) not in known})
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        return (f"the labels {', '.join(task.labels[:10])} do not cover {what}: it has "
                f"{', '.join(repr(m) for m in missing[:5])}{more}")
    return None
