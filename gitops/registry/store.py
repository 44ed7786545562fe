"""Load the registry from the work tree or from any git ref; write its files back.

The registry is read as a set of texts (``{relative path: YAML text}``) so the work tree and a
past commit (``git cat-file --batch``) go through the same validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitops import yamlio
from gitops.adapters import git
from gitops.errors import NotFoundError, RegistryError
from gitops.registry import cache, refs, schema
from gitops.registry.schema import Alias, Dataset, Model, Problems, Version

REGISTRY = "registry"
DATASETS = "datasets"


def model_file(name: str) -> str:
    return f"{REGISTRY}/{name}/model.yaml"


def alias_file(model: str, alias: str) -> str:
    return f"{REGISTRY}/{model}/aliases/{alias}.yaml"


def dataset_file(name: str) -> str:
    return f"{REGISTRY}/{DATASETS}/{name}.yaml"


def version_dir(model: str, version: str) -> str:
    return f"models/{model}/{version}"


@dataclass
class Registry:
    """Every model and data set, plus the problems found while reading them."""

    models: dict[str, Model] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)
    texts: dict[str, str] = field(default_factory=dict, repr=False)

    def raise_problems(self) -> None:
        if self.problems:
            if len(self.problems) == 1:
                raise RegistryError(self.problems[0])
            raise RegistryError(f"the registry has {len(self.problems)} problems:", problems=list(self.problems))

    def model(self, name: str) -> Model:
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none yet"
            raise NotFoundError(f"model '{name}' does not exist (models: {known})")
        return self.models[name]

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets)) or "none yet"
            raise NotFoundError(f"data set '{name}' does not exist (data sets: {known}); "
                                f"create it with 'gitops dataset create {name}'")
        return self.datasets[name]

    def resolve(self, ref: refs.Ref | str) -> tuple[Model, Version]:
        """The model and version a reference names (version id, alias or ``latest``)."""
        if isinstance(ref, str):
            ref = refs.parse_ref(ref, require_ref=True)
        model = self.model(ref.name)
        target = ref.ref or "latest"
        if target == "latest":
            version = model.latest()
            if version is None:
                raise NotFoundError(f"model '{model.name}' has no versions yet")
            return model, version
        if not refs.is_version(target):
            if target not in model.aliases:
                known = ", ".join(sorted(model.aliases)) or "none"
                raise NotFoundError(f"model '{model.name}' has no alias '{target}' (aliases: {known})")
            target = model.aliases[target].version
        if target not in model.versions:
            raise NotFoundError(f"model '{model.name}' has no version {target}")
        return model, model.versions[target]


def _worktree_texts(root: Path) -> dict[str, str]:
    base = root / REGISTRY
    if not base.is_dir():
        return {}
    texts: dict[str, str] = {}
    patterns = ("*/model.yaml", "*/aliases/*.yaml", f"{DATASETS}/*.yaml")
    for pattern in patterns:
        for path in base.glob(pattern):
            rel = path.relative_to(root).as_posix()
            try:
                texts[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                texts[rel] = "\0"  # reported as invalid YAML below
    return texts


def _ref_texts(root: Path, ref: str) -> dict[str, str]:
    commit = git.resolve(root, ref)
    paths = [p for p in git.ls_tree(root, commit, REGISTRY) if p.endswith(".yaml")]
    blobs = git.read_blobs(root, [f"{commit}:{p}" for p in paths])
    return {p: blobs[f"{commit}:{p}"] or "" for p in paths}


def load(root: Path, ref: str | None = None, strict: bool = True) -> Registry:
    """Read the registry from the work tree (``ref=None``) or a git ref.

    ``strict`` raises on the first load if any file is invalid; ``strict=False`` keeps going and
    leaves every problem in ``Registry.problems`` (what ``gitops check`` reports).
    """
    texts = _worktree_texts(root) if ref is None else _ref_texts(root, ref)
    reg = parse_texts(texts, cache.cache_dir(root))
    if strict:
        reg.raise_problems()
    return reg


def parse_texts(texts: dict[str, str], cache_dir: Path | None = None) -> Registry:
    """Validate registry files given as ``{relative path: text}`` (cached by content when a
    ``cache_dir`` is given)."""
    reg = Registry(texts=texts)
    p = reg.problems
    alias_files: list[tuple[str, str, str]] = []
    for rel in sorted(texts):
        parts = rel.split("/")
        if len(parts) == 3 and parts[1] == DATASETS:
            stem = parts[2][: -len(".yaml")]
            ds = cache.cached(cache_dir, "dataset", texts[rel], lambda: _parse(
                schema.parse_dataset, texts[rel], rel, stem, p), cache.dataset_from_dict)
            if ds is not None:
                reg.datasets[stem] = ds
        elif len(parts) == 3 and parts[2] == "model.yaml":
            model = cache.cached(cache_dir, "model", texts[rel], lambda: _parse(
                schema.parse_model, texts[rel], rel, parts[1], p), cache.model_from_dict)
            if model is not None:
                reg.models[model.name] = model
        elif len(parts) == 4 and parts[2] == "aliases":
            alias_files.append((rel, parts[1], parts[3][: -len(".yaml")]))
    for rel, model_name, alias_name in alias_files:
        if (doc := _load(texts[rel], rel, p)) is _BAD:
            continue
        alias = schema.parse_alias(doc, rel, alias_name, p)
        if alias is None:
            continue
        if model_name not in reg.models:
            if model_file(model_name) not in texts:
                p.append(f"{rel}: alias of model '{model_name}', which has no {model_file(model_name)}")
            continue
        model = reg.models[model_name]
        if alias.version not in model.versions:
            p.append(f"{rel}: alias '{alias.name}' of '{model_name}' points to {alias.version}, which does not exist")
            continue
        model.aliases[alias.name] = alias
    return reg


_BAD = object()


def _parse(parser, text: str, rel: str, name: str, p: Problems):  # noqa: ANN001, ANN202
    doc = _load(text, rel, p)
    return None if doc is _BAD else parser(doc, rel, name, p)


def _load(text: str, rel: str, p: Problems) -> object:
    try:
        return yamlio.loads(text, rel)
    except RegistryError as exc:
        p.append(str(exc))
        return _BAD


# --- writing -------------------------------------------------------------------------------------

def write_model(root: Path, model: Model, new_version: Version | None = None) -> str:
    """Write ``model.yaml``. A new version is appended as text when ``versions:`` ends the file,
    so existing lines (and people's comments) are never rewritten."""
    rel = model_file(model.name)
    path = root / rel
    if new_version is not None and path.exists():
        text = path.read_text(encoding="utf-8")
        if _versions_is_last_block(text):
            entry = yamlio.dumps({new_version.id: new_version.to_dict()})
            indented = "".join(f"  {line}\n" if line else "\n" for line in entry.splitlines())
            yamlio.write_atomic(path, text.rstrip("\n") + "\n" + indented)
            return rel
    data = model.header_dict()
    data["versions"] = {vid: v.to_dict() for vid, v in
                        sorted(model.versions.items(), key=lambda kv: refs.version_number(kv[0]))}
    yamlio.dump_file(path, data)
    return rel


def _versions_is_last_block(text: str) -> bool:
    top = [line for line in text.splitlines() if line and not line[0].isspace() and not line.startswith("#")]
    return bool(top) and top[-1].rstrip() == "versions:"


def write_alias(root: Path, model: str, alias: Alias) -> str:
    rel = alias_file(model, alias.name)
    data: dict[str, object] = {"version": alias.version}
    if alias.note:
        data["note"] = alias.note
    yamlio.dump_file(root / rel, data)
    return rel


def write_dataset(root: Path, dataset: Dataset) -> str:
    rel = dataset_file(dataset.name)
    data = dataset.header_dict()
    data["versions"] = {vid: v.to_dict() for vid, v in
                        sorted(dataset.versions.items(), key=lambda kv: refs.version_number(kv[0]))}
    yamlio.dump_file(root / rel, data)
    return rel
