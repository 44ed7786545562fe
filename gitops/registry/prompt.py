"""``gitops prompt add``: a prompt config becomes the model's next version (format ``prompt``).

A prompt version stores no weights: its config (:mod:`gitops.core.promptspec`) is written to
``models/MODEL/vN.prompt.yaml`` and committed to git, with the base model pinned to the version
its reference named then (``base_model: NAME@vN`` and that version's md5 in ``base_md5``), so
moving the base's aliases later never changes what the prompt version runs. Its config hash is in
the lineage; like ``register``, the same config registered twice is one version. It is aliased,
promoted and diffed like any version.

Everything that can be checked without reading rows is checked before anything is written: the
base exists and is not itself a prompt, the data set version exists, the task's template and the
example template name only its columns, ``k`` fits in its train split, a semantic embedder is a
sentence-transformers model (a directory inside the repository, or a hub id found in the local
Hugging Face cache or downloaded once). The embedder is pinned like the base: the md5 of its files
(and, for a hub id, the commit it was at) is stored with the config, and prediction refuses an
embedder whose files differ. It is never stored as a path of one machine: a directory is recorded
relative to the repository root, a Hugging Face cache snapshot as its hub id and commit, and any
other directory is refused.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from gitops import timestamps, yamlio
from gitops.adapters import hub
from gitops.core import layout, plain, promptspec, refs, schema, task
from gitops.core.promptspec import PromptSpec
from gitops.core.reader import Registry
from gitops.core.schema import Model, Version
from gitops.core.workspace import Workspace
from gitops.errors import IntegrityError, NotFoundError, RegistryError, shown
from gitops.registry.register import RegisterResult
from gitops.validation import Problems

MAX_PROMPT_BYTES = promptspec.MAX_PROMPT_BYTES
ST_MARKERS = ("modules.json", "config_sentence_transformers.json")


def prompt_file(model: str, vid: str) -> str:
    return f"models/{model}/{vid}.prompt.yaml"


def read_prompt(path: Path) -> PromptSpec:
    """The prompt config in ``path``, validated (RegistryError naming file, line and key)."""
    if not path.is_file():
        raise NotFoundError(f"prompt config {path} does not exist")
    try:
        doc = yamlio.load_file(path, str(path), max_bytes=MAX_PROMPT_BYTES)
    except yamlio.YamlError as exc:
        raise RegistryError(str(exc)) from None
    problems = Problems()
    spec = promptspec.parse_prompt(doc, str(path), problems)
    if spec is None:
        raise RegistryError(problems[0], problems=problems if len(problems) > 1 else None)
    return spec


def add_prompt(ws: Workspace, model: str, config: Path, *, note: str | None = None) -> RegisterResult:
    """Validate ``config``, pin its base and commit it as the model's next version."""
    if problem := schema.note_problem(note):
        raise RegistryError(problem)
    spec = read_prompt(Path(config))
    with ws.writing("prompt add") as recovered:
        ws.git.require_clean("add a prompt version")
        reg = ws.registry()
        m = reg.model(model)
        pinned = pin(ws, reg, m, spec, str(config))
        result = _store(ws, m, pinned, spec.dataset, note)
        result.recovered = recovered
    return result


def pin(ws: Workspace, reg: Registry, model: Model, spec: PromptSpec, src: str) -> dict[str, Any]:
    """The config as stored: plain data with the base resolved to ``NAME@vN`` and its md5."""
    try:
        base_model, base = reg.resolve(spec.base)
    except NotFoundError as exc:
        raise NotFoundError(f"{src}: base {spec.base} is not a registered version ({exc})") from None
    if base.format == "prompt":
        raise RegistryError(f"{src}: base {spec.base} is itself a prompt version; name the model it runs")
    _check_dataset(ws, reg, model, spec, src)
    if spec.constrain and model.classification is None:
        raise RegistryError(f"{src}: generation.constrain: labels needs a model with task: classification (its "
                            f"labels); '{model.name}' has task '{model.task}'")
    if spec.calibrate and model.classification is None:
        raise RegistryError(f"{src}: calibrate: {spec.calibrate} needs a model with task: classification (it "
                            f"calibrates the labels' probabilities); '{model.name}' has task '{model.task}'")
    config: dict[str, Any] = {"base": f"{base_model.name}@{base.id}", "base_md5": base.md5, "template": spec.template,
              "task": spec.task, "retrieval": {"type": spec.retrieval.type, "k": spec.retrieval.k,
                                               "seed": spec.retrieval.seed},
              "generation": {"max_new_tokens": spec.max_new_tokens, "temperature": spec.temperature}}
    if spec.retrieval.type == "semantic":
        path, revision = resolve_embedder(ws.root, spec.retrieval.embedder or "", src, spec.retrieval.revision)
        name, revision = portable_embedder(ws.root, spec.retrieval.embedder or "", path, revision, src)
        config["retrieval"]["embedder"] = name
        if revision is not None:
            config["retrieval"]["revision"] = revision
        config["retrieval"]["embedder_md5"] = embedder_md5(path)
    if spec.constrain:  # only when set: configs added before the key existed keep their hash
        config["generation"]["constrain"] = spec.constrain
    if spec.chat:
        config["chat"] = True
    if spec.calibrate:  # only when set, like constrain and chat
        config["calibrate"] = spec.calibrate
    for key in ("dataset", "example"):
        if getattr(spec, key) is not None:
            config[key] = getattr(spec, key)
    return config


def _check_dataset(ws: Workspace, reg: Registry, model: Model, spec: PromptSpec, src: str) -> None:
    if spec.dataset is None:
        return
    ref = refs.parse_ref(spec.dataset, "data set")
    ds = reg.dataset(ref.name)
    if ref.ref not in ds.versions:
        raise NotFoundError(f"{src}: data set '{ref.name}' has no version {shown(ref.ref)}")
    train = ds.versions[ref.ref].splits.get("train", 0)
    if spec.retrieval.k > train:
        raise RegistryError(f"{src}: retrieval.k {spec.retrieval.k} is larger than the train split of "
                            f"{spec.dataset} ({train} rows)")
    if model.classification and (why := task.check_columns(model.classification, ds.columns, spec.dataset)):
        raise RegistryError(f"{src}: {why}")
    if missing := [s for s in spec.example_slots() if s not in ds.columns]:
        raise RegistryError(f"{src}: the example template names column '{shown(missing[0])}', which "
                            f"{spec.dataset} does not have (columns: {', '.join(ds.columns)})")


def resolve_embedder(root: Path, embedder: str, src: str, revision: str | None = None) -> tuple[Path, str | None]:
    """The embedder's directory and, for a hub id, the commit it is at. A local directory (relative
    paths are from the repository root) wins over a hub id of the same spelling; a hub id comes from
    the local Hugging Face cache, or is downloaded once. RegistryError unless the directory holds a
    sentence-transformers model (``modules.json``)."""
    path = Path(embedder) if Path(embedder).is_absolute() else root / embedder
    commit = None
    if path.is_dir():
        if revision is not None:
            raise RegistryError(f"{src}: retrieval.revision is for a hub id, but '{shown(embedder)}' is a local "
                                "directory")
    elif not path.exists() and hub.is_hub_id(embedder):
        try:
            path, commit = hub.snapshot(embedder, revision)
        except NotFoundError as exc:
            raise RegistryError(f"{src}: retrieval.embedder: {exc}") from None
    else:
        raise RegistryError(f"{src}: retrieval.embedder '{shown(embedder)}' is neither a directory nor a hub id "
                            "(org/name) of a sentence-transformers model")
    if not any((path / marker).is_file() for marker in ST_MARKERS):
        raise RegistryError(f"{src}: retrieval.embedder '{shown(embedder)}' is not a sentence-transformers model "
                            "(it has no modules.json)")
    return path, commit


_HF_SNAPSHOT = ("snapshots", "models--")


def portable_embedder(root: Path, embedder: str, path: Path, revision: str | None, src: str) -> tuple[str, str | None]:
    """How a stored config names the embedder, so that it means the same files on every machine: a
    hub id with the commit it is at; a directory inside the repository relative to its root; a
    directory that is a Hugging Face cache snapshot (``.../models--ORG--NAME/snapshots/COMMIT``) as
    that hub id and commit. Any other directory (an absolute path on this machine) is refused."""
    if revision is not None:  # resolved through the Hub: already a hub id and a commit
        return embedder, revision
    resolved = path.resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix(), None
    except ValueError:
        pass
    parent = resolved.parent
    if parent.name == _HF_SNAPSHOT[0] and parent.parent.name.startswith(_HF_SNAPSHOT[1]):
        org_name = parent.parent.name[len(_HF_SNAPSHOT[1]):].split("--", 1)
        if len(org_name) == 2 and hub.is_hub_id("/".join(org_name)) and re.fullmatch(r"[0-9a-f]{40}", resolved.name):
            return "/".join(org_name), resolved.name
    raise RegistryError(f"{src}: retrieval.embedder '{shown(embedder)}' is a directory outside the repository; a "
                        "prompt version must not depend on a path of this machine: put the model inside the "
                        "repository (tracked with DVC) and name it relative to the root, or name it by hub id "
                        "(org/name, with revision:)")


def pinned_embedder(root: Path, retrieval: dict[str, Any], src: str) -> tuple[Path, str]:
    """The embedder a stored prompt config names, and its md5, checked against the md5 pinned when
    the version was added (configs written before pinning have none: their md5 is only computed)."""
    embedder = str(retrieval.get("embedder") or "")
    path, _ = resolve_embedder(root, embedder, src, retrieval.get("revision"))
    md5 = embedder_md5(path)
    pinned = retrieval.get("embedder_md5")
    if pinned and md5 != pinned:
        raise IntegrityError(f"{src}: the files of retrieval.embedder '{shown(embedder)}' have md5 {md5}, not the "
                             f"{pinned} recorded when the prompt version was added; restore them or add a new "
                             "prompt version")
    return path, md5


def embedder_md5(model_dir: Path) -> str:
    """An md5 over the embedder's files (relative names and contents): what the cached vectors depend on."""
    digest = hashlib.md5()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


config_hash = promptspec.config_hash  # kept here too: what callers of gitops.registry.prompt import


def _store(ws: Workspace, m: Model, config: dict[str, Any], dataset: str | None, note: str | None) -> RegisterResult:
    chash = config_hash(config)
    known = next((v for v in m.versions.values()
                  if v.format == "prompt" and v.config_hash == chash and v.task_md5 == m.task_md5()), None)
    if known:
        return RegisterResult(known, created=False)
    vid = m.next_version_id()
    rel, model_rel = prompt_file(m.name, vid), layout.model_file(m.name)
    text = yamlio.dumps(config)
    dest = ws.root / rel
    with ws.transaction([model_rel, rel], [dest], f"prompt add {m.name} {vid}"):
        yamlio.write_atomic(dest, text)
        version = Version(id=vid, format="prompt", path=rel, md5=hashlib.md5(text.encode()).hexdigest(),
                          base_model=config["base"], base_md5=config["base_md5"], dataset=dataset,
                          config=config, config_hash=chash, note=note, commit=ws.git.head(), task_md5=m.task_md5(),
                          author=ws.git.user(), created_at=timestamps.utc_now())
        grown = Model(**{**vars(m), "versions": {**m.versions, vid: version}})
        layout.append_version(ws.root, ws.cache, model_rel, version, plain.version_fields(version),
                              lambda: layout.write_model(ws.root, grown))
        ws.commit([model_rel, rel], f"prompt add {m.name} {vid}: {config['base']}, retrieval "
                  f"{config['retrieval']['type']} k={config['retrieval']['k']}")
    return RegisterResult(version)
