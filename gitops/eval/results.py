"""The evaluation results document: what ``gitops eval`` writes and ``gitops report`` reads.

Internal data, written by our own harness, so the shapes are plain dataclasses that check
themselves (STYLE.md #5): each is a :func:`gitops.validation.strict` dataclass, its spec declared by
its type hints, so the same spec validates an object built in code and decodes a JSON document
into dataclasses (``from_dict``); the two paths cannot drift apart. Every field is documented in
``docs/results-schema.md``; change both together and bump ``SCHEMA_VERSION`` when a change is not
backwards compatible.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, dataclass_transform

from gitops import jsonio
from gitops.core.schema import GATE_BOUNDS, Version
from gitops.errors import EvalError, shown
from gitops.validation import Invalid, load, record_of, show_json, strict

SCHEMA_VERSION = 2
COMPARED_WITH = ("baseline", "parent")
DELTA_METHODS = ("bootstrap", "exact")
T = TypeVar("T")
MAX_RESULTS_BYTES = 64 * 1024 * 1024  # samples included, a results document is a few MB at most


class ResultsError(EvalError):
    """A results document is malformed: wrong schema version, a missing key, a value of the wrong type."""


@dataclass_transform(field_specifiers=(field,))
def checked(cls: type[T]) -> type[T]:
    """A shape of the document: a dataclass checked when built and when decoded (messages read the JSON)."""
    return strict(error=ResultsError, build_error="{path} {message}", missing="{path} is missing",
                  unknown="{path} is not a known key of {what} (known: {allowed})",
                  not_mapping="{path} must be an object ({what}), not {shown}")(dataclass(cls))


def result_spec(cls: type) -> Any:
    """The spec a results dataclass is checked by (what docs/reference.md lists)."""
    return record_of(cls)


# --- the shapes ----------------------------------------------------------------------------------

@checked
class DatasetInfo:
    """Which data the models were evaluated on."""

    ref: str                      # reviews@v2
    split: str = "test"
    rows: int = 0                 # rows scored for loss/perplexity


@checked
class GenerationInfo:
    """How sample completions and latency were produced."""

    max_new_tokens: int
    greedy: bool = True
    batch_size: int = 1
    prompt_words: int = 8         # the first N words of a row are the prompt
    samples: int = 0              # how many sample completions were generated


@checked
class Lineage:
    """Where a version came from (copied from the registry's version record)."""

    parent: str | None = None
    base_model: str | None = None
    dataset: str | None = None
    config_hash: str | None = None
    commit: str | None = None
    created_at: str | None = None
    author: str | None = None


@checked
class CurvePoint:
    """One logged training step; either loss may be missing at a given step."""

    step: int
    train_loss: float | None = None
    eval_loss: float | None = None


@checked
class ModelResult:
    """One evaluated model version and its measurements."""

    ref: str                      # review-autocomplete@v3
    version: str                  # v3
    format: str                   # peft-lora, hf, ct2, prompt
    md5: str | None = None
    quantization: str | None = None
    lineage: Lineage = field(default_factory=Lineage)
    # Names to values. null = measured but no finite value (a diverged loss, for example).
    metrics: dict[str, float | None] = field(default_factory=dict)
    training_curve: list[CurvePoint] = field(default_factory=list)

    @classmethod
    def from_version(cls, ref: str, version: Version, metrics: dict[str, float | None],
                     training_curve: list[CurvePoint] | None = None) -> ModelResult:
        """Build from a registry :class:`Version` (lineage copied from it) and fresh measurements."""
        lineage = Lineage(parent=version.parent, base_model=version.base_model, dataset=version.dataset,
                          config_hash=version.config_hash, commit=version.commit,
                          created_at=version.created_at or None, author=version.author or None)
        return cls(ref=ref, version=version.id, format=version.format, md5=version.md5,
                   quantization=version.quantization, lineage=lineage, metrics=dict(metrics),
                   training_curve=list(training_curve or []))


@checked
class Delta:
    """One metric of the candidate minus the same metric of a model it is compared with, and the
    confidence interval of that difference (see docs/results-schema.md#delta)."""

    delta: float | None               # candidate - other; null when either value is missing or not finite
    low: float | None = None          # the interval; both null when there is none
    high: float | None = None
    method: str = "bootstrap"         # bootstrap: paired over `units`; exact: no sampling noise (size)
    unit: str | None = None           # what was resampled: rows, requests, batches
    units: int = 0                    # how many paired units

    def validate_values(self) -> None:
        if self.method not in DELTA_METHODS:
            raise ResultsError(f"method '{self.method}' is not one of {', '.join(DELTA_METHODS)}")
        if (self.low is None) != (self.high is None):
            raise ResultsError("low and high must both be numbers or both be null")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ResultsError(f"low {self.low} is above high {self.high}")
        if self.method == "exact" and self.low is not None:
            raise ResultsError("an exact delta has no interval (low and high must be null)")

    @property
    def direction(self) -> int:
        """+1 or -1 when the change is real (the interval excludes zero; an exact delta is not
        zero), 0 when it is not shown to be (the interval holds zero, or there is none)."""
        if self.method == "exact":
            return 0 if not self.delta else (1 if self.delta > 0 else -1)
        if self.low is None or self.high is None:
            return 0
        return 1 if self.low > 0 else -1 if self.high < 0 else 0


@checked
class Comparison:
    """The candidate against one other model measured on the same rows with the same settings."""

    against: str                      # baseline or parent: which of the document's models
    version: str                      # that model's version, v1
    deltas: dict[str, Delta] = field(default_factory=dict)

    def validate_values(self) -> None:
        if self.against not in COMPARED_WITH:
            raise ResultsError(f"against '{self.against}' is not one of {', '.join(COMPARED_WITH)}")


@checked
class Statistics:
    """How every interval in the document was computed."""

    method: str = "paired bootstrap, percentile interval"
    resamples: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def validate_values(self) -> None:
        if self.resamples < 1 or not 0 < self.confidence < 1:
            raise ResultsError("resamples must be at least 1 and confidence between 0 and 1")


@checked
class Sample:
    """One prompt and what each model completed (baseline is null without a baseline)."""

    prompt: str
    candidate: str
    reference: str | None = None
    baseline: str | None = None


@checked
class GateResult:
    """The outcome of one bound of one gate (a gate with two bounds gives two results)."""

    metric: str
    bound: str                    # max, min, max_increase_pct, max_decrease_pct
    threshold: float              # the number written in the gate
    passed: bool
    message: str
    candidate: float | None = None
    baseline: float | None = None
    limit: float | None = None    # the absolute value the candidate was held to (null when skipped)
    skipped: bool = False         # needed a baseline value that was not there; counts as passed
    significant: bool = False     # judged on the interval of the change, not its point value

    def validate_values(self) -> None:
        if self.bound not in GATE_BOUNDS:
            raise ResultsError(f"bound '{self.bound}' is not one of {', '.join(GATE_BOUNDS)}")
        if self.skipped and not self.passed:
            raise ResultsError(f"gate on '{self.metric}' is skipped, so it must count as passed")


# Example and meaning of each GateResult key, for docs/reference.md (types and defaults come from the
# class; tests/test_reference.py holds the two together).
GATE_RESULT_REFERENCE = {
    "metric": ("perplexity", "The metric held to the bound."),
    "bound": ("max_increase_pct", "Which bound: " + ", ".join(GATE_BOUNDS) + "."),
    "threshold": (2.0, "The number written in the gate."),
    "passed": (True, "Whether the candidate met it (a skipped gate is passed)."),
    "message": ("perplexity 2.17 vs 2.18 (limit 2.22): pass", "The sentence the report shows."),
    "candidate": (2.17, "The candidate's value (null: not measured, which fails)."),
    "baseline": (2.18, "The baseline's value, for a relative bound."),
    "limit": (2.22, "The absolute value the candidate was held to (null when skipped)."),
    "skipped": (False, "A relative bound without a baseline value: skipped, counts as passed."),
    "significant": (True, "Judged on the 95% interval of the change: it fails only when the whole interval "
                          "is past the bound (a classification model's default accuracy gate)."),
}


@checked
class ClassScore:
    """One label's scores on one side: precision, recall and F1 over ``support`` true rows."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@checked
class ClassificationSide:
    """One model's classification detail (docs/results-schema.md#classification)."""

    kind: str                                  # zero-shot, few-shot bm25 k=3, hf, peft-lora, ct2
    accuracy_ci: list[float] | None = None     # [low, high]: the accuracy's own 95% interval
    per_class: list[ClassScore] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # confusion[true][predicted], in labels order
    macro_f1_ci: list[float] | None = None     # the metrics' own intervals, as accuracy_ci
    log_loss_ci: list[float] | None = None
    ece_ci: list[float] | None = None
    invalid_examples: list[str] = field(default_factory=list)  # up to 3 raw outputs that matched no label


@checked
class MajorityBaseline:
    """Always answering the most frequent label of the train split, scored on the same rows: the
    reference a classifier must beat (docs/results-schema.md#classification)."""

    label: str
    accuracy: float
    macro_f1: float
    macro_accuracy: float
    log_loss: float | None = None              # with the train split's label frequencies as probabilities
    ece: float | None = None
    accuracy_ci: list[float] | None = None
    macro_f1_ci: list[float] | None = None


@checked
class ClassificationInfo:
    """A classification model's labels, which rows were predicted, and each side's detail."""

    labels: list[str]
    rows_md5: str                              # md5 of the scored rows' keys, in order: same rows, same digest
    candidate: ClassificationSide
    baseline: ClassificationSide | None = None
    parent: ClassificationSide | None = None
    majority: MajorityBaseline | None = None

    def validate_values(self) -> None:
        n = len(self.labels)
        for name in ("candidate", "baseline", "parent"):
            side = getattr(self, name)
            if side is None:
                continue
            if side.confusion and (len(side.confusion) != n or any(len(row) != n for row in side.confusion)):
                raise ResultsError(f"classification.{name}.confusion must be {n} x {n} (one row and column "
                                   "per label)")
            if side.per_class and [c.label for c in side.per_class] != self.labels:
                raise ResultsError(f"classification.{name}.per_class must list the labels in labels order")
            for ci in ("accuracy_ci", "macro_f1_ci", "log_loss_ci", "ece_ci"):
                if getattr(side, ci) is not None and len(getattr(side, ci)) != 2:
                    raise ResultsError(f"classification.{name}.{ci} must be [low, high]")


@checked
class Environment:
    """Where the evaluation ran; library versions are null when not installed."""

    device: str
    threads: int | None = None    # CPU threads each model ran with (torch intra-op / CTranslate2 intra_threads)
    python: str | None = None
    torch: str | None = None
    transformers: str | None = None
    peft: str | None = None
    ctranslate2: str | None = None
    gitops: str | None = None
    platform: str | None = None

    @classmethod
    def collect(cls, device: str, threads: int | None = None) -> Environment:
        """The running interpreter's versions, read from package metadata (imports nothing heavy)."""
        from importlib import metadata

        from gitops import __version__

        def version(dist: str) -> str | None:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                return None

        return cls(device=device, threads=threads, python=platform.python_version(), torch=version("torch"),
                   transformers=version("transformers"), peft=version("peft"),
                   ctranslate2=version("ctranslate2"), gitops=__version__,
                   platform=f"{sys.platform}-{platform.machine()}")


@checked
class JudgeSummary:
    """An LLM judge's verdict on the samples: candidate against baseline, both orders
    (:mod:`gitops.eval.judge`; docs/results-schema.md#judgesummary)."""

    host: str                     # the endpoint's host[:port] only: a URL may carry a token
    model: str                    # the judge's model name at that endpoint
    samples: int                  # samples judged (two requests each)
    win_rate: float               # mean score: 1 won both orders, 0 lost both, 0.5 otherwise
    low: float | None = None      # the win rate's interval (the document's confidence); null with none
    high: float | None = None
    wins: int = 0
    losses: int = 0
    ties: int = 0
    consistent: float = 0.0       # share of samples decided the same way in both orders

    def validate_values(self) -> None:
        if self.samples < 0 or min(self.wins, self.losses, self.ties) < 0 \
                or self.wins + self.losses + self.ties != self.samples:
            raise ResultsError(f"wins, losses and ties must add up to the {self.samples} samples judged")
        if not (0 <= self.win_rate <= 1 and 0 <= self.consistent <= 1):
            raise ResultsError("win_rate and consistent must be shares from 0 to 1")
        if (self.low is None) != (self.high is None) or (
                self.low is not None and self.high is not None and not self.low <= self.high):
            raise ResultsError("low and high must both be null or an interval with low <= high")


@checked
class EvalResults:
    """One candidate evaluated (against an optional baseline) on one data set."""

    created_at: str
    model: str
    dataset: DatasetInfo
    generation: GenerationInfo
    candidate: ModelResult
    environment: Environment
    alias: str | None = None      # the alias the candidate is proposed for
    baseline: ModelResult | None = None
    parent: ModelResult | None = None  # a converted candidate's source version, measured the same way
    comparisons: list[Comparison] = field(default_factory=list)
    statistics: Statistics = field(default_factory=Statistics)
    gates: list[GateResult] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    judge: JudgeSummary | None = None  # absent from documents written without a judge
    classification: ClassificationInfo | None = None  # a classification model's labels and per-class detail
    schema_version: int = SCHEMA_VERSION

    def validate_values(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ResultsError(f"schema_version must be {SCHEMA_VERSION}, not {self.schema_version}")
        if not self.model:
            raise ResultsError("model must not be empty")
        if self.baseline is None and any(s.baseline is not None for s in self.samples):
            raise ResultsError("samples carry baseline completions, but there is no baseline")
        seen = set()
        for comp in self.comparisons:
            other = self.baseline if comp.against == "baseline" else self.parent
            if other is None or other.version != comp.version:
                raise ResultsError(f"a comparison against the {comp.against} {comp.version} needs that "
                                   f"{comp.against} in the document")
            if comp.against in seen:
                raise ResultsError(f"two comparisons against the {comp.against}")
            seen.add(comp.against)
        if self.judge is not None and self.baseline is None:
            raise ResultsError("a judge section needs a baseline: the judge compares the candidate with it")
        if self.classification is not None:
            for name in ("baseline", "parent"):
                if (getattr(self.classification, name) is None) != (getattr(self, name) is None):
                    raise ResultsError(f"classification.{name} must be present exactly when the {name} is")

    def comparison(self, against: str) -> Comparison | None:
        """The comparison with the ``baseline`` or the ``parent``, if the document has one."""
        return next((c for c in self.comparisons if c.against == against), None)

    @property
    def verdict(self) -> str:
        """``pass`` when every gate passed (skipped gates count as passed), else ``fail``."""
        return "pass" if all(g.passed for g in self.gates) else "fail"

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready document, ``schema_version`` first and the derived ``verdict`` included."""
        body = dataclasses.asdict(self)
        body.pop("schema_version")
        if body["judge"] is None:  # documents without a judge read as they did before the section existed
            body.pop("judge")
        if body.get("classification") is None:  # a completion document stays as it always was
            body.pop("classification", None)
        else:
            _drop_unset(body["classification"])
        for gate in body["gates"]:  # fields added within version 2 are written only when they say something
            if not gate.get("significant"):
                gate.pop("significant", None)
        return {"schema_version": self.schema_version, **body, "verdict": self.verdict}

    def to_json(self) -> str:
        # allow_nan=False: every number was checked finite, and NaN is not JSON.
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "results") -> EvalResults:
        """Decode a parsed document; raise :class:`ResultsError` naming ``source`` and the key."""
        if not isinstance(data, dict):
            raise ResultsError(f"{source} must be a JSON object (a gitops results document)")
        if "schema_version" not in data:
            raise ResultsError(f"{source} has no schema_version; it is not a gitops results document")
        version = data["schema_version"]
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise ResultsError(f"{source} has schema_version {show_json(version)}, but this gitops reads only "
                               f"version {SCHEMA_VERSION}; use the gitops version that wrote it")
        body = {k: v for k, v in data.items() if k != "verdict"}
        try:
            results = load(cls, body)
        except Invalid as exc:
            raise ResultsError(f"{source}: {exc.message}") from None
        # verdict is derived; a stored one that disagrees means the document was edited by hand.
        if "verdict" in data and data["verdict"] != results.verdict:
            raise ResultsError(f"{source}: verdict says {show_json(data['verdict'])}, but the gates say "
                               f"'{results.verdict}'")
        return results

    @classmethod
    def from_json(cls, text: str, source: str = "results") -> EvalResults:
        """Parse a results document from JSON text."""
        try:
            data = jsonio.loads(text, source)
        except jsonio.JsonError as exc:
            raise ResultsError(str(exc)) from None
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> EvalResults:
        """Read a results file; a missing or unreadable file is a NotFoundError/ResultsError."""
        from gitops.errors import NotFoundError

        path = Path(path)
        try:
            text = jsonio.read_bounded(path, MAX_RESULTS_BYTES).decode("utf-8")
        except FileNotFoundError:
            raise NotFoundError(f"results file {path} does not exist") from None
        except jsonio.TooLarge as exc:
            raise ResultsError(str(exc)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ResultsError(f"cannot read results file {path}: {shown(exc, 200)}") from None
        return cls.from_json(text, str(path))

    def save(self, path: str | Path) -> None:
        """Write the document atomically (a half-written results file would fail the report)."""
        from gitops.yamlio import write_atomic

        write_atomic(Path(path), self.to_json())


_NEW_SIDE_FIELDS = ("macro_f1_ci", "log_loss_ci", "ece_ci", "invalid_examples")


def _drop_unset(info: dict[str, Any]) -> None:
    """Leave out of a classification section the keys added within version 2 that are unset, so a
    document written before them reads back byte for byte."""
    if info.get("majority") is None:
        info.pop("majority", None)
    for name in ("candidate", "baseline", "parent"):
        side = info.get(name)
        for key in _NEW_SIDE_FIELDS:
            if side is not None and not side.get(key):
                side.pop(key, None)
