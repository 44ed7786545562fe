"""Read the registry from the work tree or from any git ref, through the content cache.

The registry is read as a set of texts (``{relative path: YAML text}``) so the work tree and a
past commit (``git cat-file --batch``) go through the same validation. Each model and data set
file is looked up in the :class:`~gitops.core.cache.ContentCache` by its digest before it is
parsed. :class:`~gitops.core.workspace.Workspace` memoises what this returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.adapters.git import Git
from gitops.core import plain, refs, schema
from gitops.core.cache import ContentCache, Entry, digest
from gitops.core.layout import DATASETS, REGISTRY, model_file, versions_last
from gitops.core.schema import Dataset, Model, Version
from gitops.errors import NotFoundError, RegistryError, shown
from gitops.validation import Problems


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
            raise NotFoundError(f"model '{shown(name)}' does not exist (models: {known})")
        return self.models[name]

    def dataset(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise dataset_not_found(name, self.datasets)
        return self.datasets[name]

    def resolve(self, ref: refs.RefSpec | refs.Ref | str) -> tuple[Model, Version]:
        """The model and version a reference names (version id, alias or ``latest``)."""
        if isinstance(ref, refs.Ref):
            ref = refs.RefSpec(ref.model, ref.version)
        elif isinstance(ref, str):
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
                raise NotFoundError(f"model '{model.name}' has no alias '{shown(target)}' (aliases: {known})")
            target = model.aliases[target].version
        if target not in model.versions:
            raise NotFoundError(f"model '{model.name}' has no version {shown(target)}")
        return model, model.versions[target]


def dataset_not_found(name: str, known: dict[str, Any] | None = None) -> NotFoundError:
    names = ", ".join(sorted(known or {})) or "none yet"
    return NotFoundError(f"data set '{shown(name)}' does not exist (data sets: {names}); "
                         f"create it with 'gitops dataset create {shown(name)}'")


def worktree_texts(root: Path) -> dict[str, str]:
    """Every registry file in the work tree, by relative path."""
    base = root / REGISTRY
    if not base.is_dir():
        return {}
    texts: dict[str, str] = {}
    for pattern in ("*/model.yaml", "*/aliases/*.yaml", f"{DATASETS}/*.yaml"):
        for path in base.glob(pattern):
            rel = path.relative_to(root).as_posix()
            require_plain_file(path, rel)
            try:
                texts[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                texts[rel] = "\0"  # reported as invalid YAML below
    return texts


def require_plain_file(path: Path, rel: str) -> None:
    """A registry file is a regular file of bounded size: a link to ``/dev/zero`` or to a file outside
    the repository must not be read."""
    if path.is_symlink() or not path.is_file():
        raise RegistryError(f"{shown(rel)}: registry files must be regular files, not links or devices")
    if path.stat().st_size > yamlio.MAX_BYTES:
        raise RegistryError(f"{shown(rel)}: larger than {yamlio.MAX_BYTES // (1024 * 1024)} MiB; refusing to "
                            "read it")


def ref_texts(git: Git, commit: str) -> dict[str, str]:
    """Every registry file at ``commit`` (one ``git cat-file --batch``)."""
    paths = [p for p in git.ls_tree(commit, REGISTRY) if p.endswith(".yaml")]
    blobs = git.read_blobs([f"{commit}:{p}" for p in paths])
    return {p: blobs[f"{commit}:{p}"] or "" for p in paths}


def parse_texts(texts: dict[str, str], cache: ContentCache | None = None, *, current: bool = True) -> Registry:
    """Validate registry files given as ``{relative path: text}`` (through ``cache`` when given;
    ``current``: these are the work tree's texts, so the cache keeps them)."""
    reg = Registry(texts=texts)
    p = reg.problems
    alias_files: list[tuple[str, str, str]] = []
    for rel in sorted(texts):
        parts = rel.split("/")
        if len(parts) == 3 and parts[1] == DATASETS:
            ds = read_dataset(rel, texts[rel], parts[2][: -len(".yaml")], p, cache, current=current)
            if ds is not None:
                reg.datasets[ds.name] = ds
        elif len(parts) == 3 and parts[2] == "model.yaml":
            model = read_model(rel, texts[rel], parts[1], p, cache, current=current)
            if model is not None:
                reg.models[model.name] = model
        elif len(parts) == 4 and parts[2] == "aliases":
            alias_files.append((rel, parts[1], parts[3][: -len(".yaml")]))
    for rel, model_name, alias_name in alias_files:
        _attach_alias(reg, texts, rel, model_name, alias_name)
    return reg


def _attach_alias(reg: Registry, texts: dict[str, str], rel: str, model_name: str, alias_name: str) -> None:
    p = reg.problems
    doc = _load(texts[rel], rel, p)
    alias = None if doc is _BAD else schema.parse_alias(doc, rel, alias_name, p)
    if alias is None:
        return
    if model_name not in reg.models:
        if model_file(model_name) not in texts:
            p.add(rel, None, None,
                  f"alias of model '{shown(model_name)}', which has no {shown(model_file(model_name), 200)}")
        return
    model = reg.models[model_name]
    if alias.version not in model.versions:
        p.add(rel, None, None,
              f"alias '{alias.name}' of '{shown(model_name)}' points to {alias.version}, which does not exist")
        return
    model.aliases[alias.name] = alias


def read_model(rel: str, text: str, dirname: str, p: Problems, cache: ContentCache | None = None,
               *, current: bool = True) -> Model | None:
    """One ``model.yaml``, validated (or found in the cache by content)."""
    return _cached(rel, text, p, cache, current, lambda doc: schema.parse_model(doc, rel, dirname, p),
                   plain.model_to_plain, plain.model_from_plain)


def read_dataset(rel: str, text: str, stem: str, p: Problems, cache: ContentCache | None = None,
                 *, current: bool = True) -> Dataset | None:
    """One data set file, validated (or found in the cache by content)."""
    return _cached(rel, text, p, cache, current, lambda doc: schema.parse_dataset(doc, rel, stem, p),
                   plain.dataset_to_plain, plain.dataset_from_plain)


def read_dataset_text(rel: str, text: str, name: str, cache: ContentCache | None = None,
                      *, current: bool = True) -> Dataset:
    """One data set file, validated; its problems raise :class:`RegistryError`."""
    reg = Registry(texts={rel: text})
    dataset = read_dataset(rel, text, name, reg.problems, cache, current=current)
    reg.raise_problems()
    assert dataset is not None
    return dataset


def _cached(rel: str, text: str, p: Problems, cache: ContentCache | None, current: bool,
            parse: Callable[[Any], Any], to_plain: Callable[[Any], dict], from_plain: Callable[[dict], Any]) -> Any:
    if cache is None:
        doc = _load(text, rel, p)
        return None if doc is _BAD else parse(doc)
    key = digest(text)
    entry = cache.get(rel, text, key, current=current)
    if entry is not None:
        return from_plain(entry.data)
    doc = _load(text, rel, p)
    if doc is _BAD:
        return None
    obj = parse(doc)
    if obj is not None:
        cache.put(rel, text, key, Entry(to_plain(obj), versions_last(text)), persist=current)
    return obj


_BAD = object()


def _load(text: str, rel: str, p: Problems) -> object:
    try:
        return yamlio.loads(text, rel)
    except yamlio.YamlError as exc:
        p.append(exc.problem)
        return _BAD
