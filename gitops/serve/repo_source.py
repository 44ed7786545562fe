"""The registry-backed :class:`~gitops.serve.source.ModelSource`: an alias, read at a commit.

``gitops serve review-autocomplete@production`` runs in a clone of the GitOps repository and
follows one branch (``origin/main`` after ``git fetch`` when the clone has an ``origin``, else the
local branch). What it serves is always what the registry says at a commit of that branch:

- at start, and on each ``--follow`` poll, the branch's tip (after ``git fetch``);
- on a deploy, the payload's ``commit``, once the repository has been fetched and the commit is
  found on the branch (a signed payload is still only a hint: the version comes from the registry
  at that commit, never from the payload, and a commit older than the one served is ignored).

Weights come through :func:`gitops.core.materialize.loadable` (``dvc pull``, checked against
the registry's md5) in a private linked worktree under the state directory, checked out at that
commit, so the user's work tree is never touched; the worktree shares the repository's DVC cache.
Materialize hashes every file against the registry's record on every load, so what loads is what
the registry recorded; a pinned ``peft-lora`` version loads merged into its base, from the cache of
merged weights keyed by (base md5, adapter md5).
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops.adapters.dvcdir import dir_md5
from gitops.core import refs
from gitops.core.materialize import Loadable, has_adapter, loadable
from gitops.core.reader import Registry
from gitops.core.schema import Model, Version
from gitops.core.workspace import Workspace
from gitops.errors import (
    ConfigError,
    GitError,
    NotFoundError,
    RepoStateError,
)
from gitops.serve.hooks import Decision
from gitops.serve.source import SERVABLE_FORMATS, HeadParts, Resolved, Target

if TYPE_CHECKING:
    from gitops.predict.prompter import Prompter

ENGINES = ("auto", "ct2", "hf")
COMMIT_RE = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")


class RepoSource:
    """Resolves ``MODEL@ALIAS`` (at the followed branch's tip, or pinned to a commit) to verified
    files. ``engine``: ``auto`` runs each version in its own format; ``ct2`` converts hf and LoRA
    versions to CTranslate2 once (cached under the state directory); ``hf`` refuses ct2 versions
    (checked once, by the caller: :class:`gitops.serve.launch.ServeOptions`)."""

    def __init__(self, ws: Workspace, ref: str, state_dir: Path, *, branch: str | None = None,
                 engine: str = "auto", quantization: str = "int8") -> None:
        parsed = refs.parse_ref(ref, require_ref=True)
        self.ws, self.ref, self.model, self.alias = ws, str(parsed), parsed.name, parsed.ref
        self.engine, self.quantization = engine, quantization
        self.state_dir, self.tree = Path(state_dir), Path(state_dir) / "tree"
        self.remote = "origin" if "origin" in ws.git.remotes() else None
        self.branch = branch or ws.git.current_branch()
        if not self.branch:
            raise RepoStateError(f"{ws.root} has no branch checked out (a detached HEAD): name the branch "
                                 "to follow with --branch")
        self._git_lock = threading.Lock()  # fetches and reads of the repository
        self._tree_lock = threading.Lock()  # the private worktree

    @property
    def followed(self) -> str:
        """The git ref whose tip is served: ``refs/remotes/origin/BRANCH`` or ``refs/heads/BRANCH``."""
        return f"refs/remotes/{self.remote}/{self.branch}" if self.remote else f"refs/heads/{self.branch}"

    def tip(self) -> str:
        """``git fetch`` (with a remote), then the followed branch's commit."""
        with self._git_lock:
            if self.remote:
                self.ws.git.fetch(self.remote)
            try:
                return self.ws.git.resolve(self.followed)
            except GitError:
                raise RepoStateError(f"branch '{self.branch}' does not exist in {self.ws.root} ({self.followed}); "
                                     "name the branch to follow with --branch") from None

    def version_at(self, commit: str) -> Version:
        """The version the followed alias names in the registry at ``commit``."""
        return self.model_version_at(commit)[1]

    def model_version_at(self, commit: str) -> tuple[Model, Version]:
        """The model and the version the followed alias names in the registry at ``commit``."""
        with self._git_lock:
            return self.ws.registry_at(commit).resolve(self.ref)

    def at(self, commit: str) -> Target:
        """What to load for ``commit``: the version the followed alias names there, pinned to it."""
        model, version = self.model_version_at(commit)
        return Target(refs.Ref(model.name, version.id), commit)

    # -- ModelSource --

    def fetch(self, ref: str | Target) -> Resolved:
        """``target``'s version at its commit, verified on disk. A plain reference (the followed
        alias) means the branch's tip now."""
        if isinstance(ref, Target):
            target = ref
        elif ref == self.ref:
            target = self.at(self.tip())
        else:
            raise NotFoundError(f"this server follows {self.ref}, not {ref}")
        if target.ref.model != self.model:
            raise NotFoundError(f"this server follows {self.ref}, not {target.ref}")
        commit = target.commit
        with self._git_lock:
            registry = self.ws.registry_at(commit)  # the one read of that commit's registry (memoized)
        model, version = registry.resolve(target.ref)
        label = str(target.ref)
        with self._tree_lock:
            self.ws.git.worktree_checkout(self.tree, commit)
            self._configure_dvc()
            tree = Workspace(self.tree)
            prompter, base, head = None, None, None
            weights_model, weights = self.model, version
            if version.format == "prompt":
                # no weights of its own: its pinned base (md5 checked again, as predict does) and its
                # renderer + retriever, built now, before anything is swapped in
                base_model, weights = self._pinned_base(registry, model, version)
                weights_model, base = base_model.name, f"{base_model.name}@{weights.id}"
                prompter = self._prompter(tree, model, version)
            elif version.format == "head":  # its pinned base runs; the head (KB) answers from its states
                base_model, base_version, head = self._head(tree, registry, model, version)
                base = f"{base_model.name}@{base_version.id}"
                if not has_adapter(version):  # else: the version itself, its LoRA layers merged into the base
                    weights_model, weights = base_model.name, base_version
            # dvc pull, every file hashed against the registry; a pinned peft-lora version comes back
            # merged into its base (from the merge cache, built once per base and adapter md5)
            loaded = loadable(tree, weights_model, weights)
            shown_label = base or label
            self._require_dir(shown_label, weights, loaded.files)
            base_dir = self._base_dir(tree, shown_label, weights) if loaded.format == "peft-lora" else None
            path, fmt, base_dir = self._for_engine(shown_label, loaded, base_dir, head=head is not None)
        return Resolved(ref, label, version.md5, path, fmt, base_dir, commit, prompter, base, head)

    # -- the deploy hook's target --

    def target(self, payload: dict[str, Any], serving: Resolved | None) -> Decision:
        """What to serve after a verified delivery: the followed alias pinned to the payload's
        commit, once that commit is fetched and found on the followed branch; nothing when the
        delivery is about another model or alias, or older than the commit served now."""
        model, alias = payload.get("model"), payload.get("alias")
        if (model, alias) != (self.model, self.alias):
            return Decision(None, f"the delivery is about {model}@{alias}; this server follows {self.ref}")
        commit = payload.get("commit")
        if not isinstance(commit, str) or not COMMIT_RE.fullmatch(commit):
            raise ConfigError("the delivery has no 'commit' (a full commit id): gitops serve reads the registry at "
                              "that commit, so the hook must send the default payload (or a template with "
                              "model, alias and commit)")
        tip = self.tip()
        with self._git_lock:
            try:
                self.ws.git.resolve(commit)
            except GitError:
                raise NotFoundError(f"commit {commit[:12]} is not in the repository, even after git fetch") from None
            if not self.ws.git.is_ancestor(commit, tip):
                raise RepoStateError(f"commit {commit[:12]} is not on branch '{self.branch}' that this server "
                                     "follows; refusing to serve what an unmerged commit says")
            older = serving is not None and serving.commit and serving.commit != commit \
                and self.ws.git.is_ancestor(commit, serving.commit)
        if older:
            assert serving is not None and serving.commit  # older needs both
            return Decision(None, f"commit {commit[:12]} is older than the one served ({serving.commit[:12]})")
        return Decision(self.at(commit))

    # -- helpers --

    def _configure_dvc(self) -> None:
        """The worktree's ``.dvc/config.local``: credentials, the shared cache, absolute remote URLs."""
        self.ws.dvc.configure_worktree(self.tree)

    def check_servable(self, target: Target | str) -> None:
        """Refuse now, before anything loads, a prompt version ``gitops serve`` cannot run: one of a
        model without a classification task, or whose pinned base is missing or changed.
        ``target``: what will load (or a commit: what the followed alias names there)."""
        target = target if isinstance(target, Target) else self.at(target)
        commit = target.commit
        with self._git_lock:
            registry = self.ws.registry_at(commit)
        model, version = registry.resolve(target.ref)
        if version.format in ("prompt", "head"):
            self._require_task(model, version)
            with self._git_lock:
                if version.format == "prompt":
                    spec = f"{self.ws.git.resolve(commit)}:{version.path}"
                    text = self.ws.git.read_blobs([spec])[spec]
            if version.format == "head":
                from gitops.predict.head_variant import head_base

                head_base(registry, model, version)
                if self.engine == "ct2":
                    raise ConfigError(f"{model.name}@{version.id} is a head version, which reads its base's hidden "
                                      "states: serve it with --engine auto or hf")
                return
            from gitops.core.promptspec import MAX_PROMPT_BYTES, stored_config

            data = text.encode("utf-8") if text is not None and len(text) <= MAX_PROMPT_BYTES else None
            stored_config(f"{model.name}@{version.id}", version, data)  # the reviewed file, as predict runs it
            self._pinned_base(registry, model, version)

    @staticmethod
    def _require_task(model: Model, version: Version) -> None:
        if model.task_for(version) is None:  # also refuses a version added with another block
            raise ConfigError(f"{model.name}@{version.id} is a {version.format} version of a model with task "
                              f"'{model.task}'; gitops serve runs {version.format} versions of classification "
                              "models (docs/tasks.md)")

    def _head(self, tree: Workspace, registry: Registry, model: Model,
              version: Version) -> tuple[Model, Version, HeadParts]:
        """A head version's pinned base (md5 checked again) and its parts: the row renderer, the
        head and its description, from its verified files (KB), loaded now, before any swap."""
        from gitops.predict.head_variant import head_base, load_head
        from gitops.predict.prompter import open_prompter

        self._require_task(model, version)
        base_model, base = head_base(registry, model, version)
        head, spec = load_head(tree, model, version)
        assert model.classification is not None  # _require_task above
        return base_model, base, HeadParts(open_prompter(tree, model.classification, None), head, spec)

    @staticmethod
    def _pinned_base(registry: Registry, model: Model, version: Version) -> tuple[Model, Version]:
        from gitops.predict.prompter import pinned_base

        return pinned_base(registry, model, version)

    def _prompter(self, tree: Workspace, model: Model, version: Version) -> Prompter:
        """The renderer and retriever of a prompt version of a classification model (the same ones
        ``gitops predict`` uses), its retrieval index built or loaded from the cache."""
        from gitops.predict.prompter import open_prompter, prompt_config

        self._require_task(model, version)
        task = model.task_for(version)
        assert task is not None  # _require_task above
        return open_prompter(tree, task, prompt_config(tree, model, version))

    @staticmethod
    def _require_dir(label: str, version: Version, path: Path) -> None:
        """Serve loads directories (their files were hashed against the registry by materialize)."""
        if not path.is_dir() or not version.md5.endswith(".dir"):
            raise ConfigError(f"{label} is not a directory of weights; gitops serve loads directories")

    @staticmethod
    def _base_dir(tree: Workspace, label: str, version: Version) -> Path | None:
        """A LoRA version's base model, found the way evaluation finds it (a registry version is
        pulled and checked too)."""
        if version.format != "peft-lora":
            return None
        from gitops.ml.bases import base_model_dir

        base = base_model_dir(tree, version.base_model)
        if not isinstance(base, Path):
            raise NotFoundError(f"{label}: its base model '{version.base_model}' is neither a registry version nor "
                                "a local directory")
        return base

    def _for_engine(self, label: str, loaded: Loadable, base_dir: Path | None, *,
                    head: bool = False) -> tuple[Path, str, Path | None]:
        path, fmt = loaded.weights, loaded.format
        if fmt not in SERVABLE_FORMATS:
            raise ConfigError(f"{label} has format '{fmt}'; gitops serve runs {', '.join(SERVABLE_FORMATS)}")
        if head and (fmt == "ct2" or self.engine == "ct2"):
            raise ConfigError(f"a head reads the hidden states of its base {label}, which CTranslate2 does not give; "
                              "serve it with --engine auto or hf")
        if self.engine == "auto" or (self.engine == "ct2") == (fmt == "ct2"):
            return path, fmt, base_dir
        if self.engine == "hf":
            raise ConfigError(f"{label} is a CTranslate2 conversion, which --engine hf cannot run; serve it with "
                              "--engine ct2 (or auto), or point the alias at an hf or peft-lora version")
        return self._converted(loaded, base_dir), "ct2", None

    def _converted(self, loaded: Loadable, base_dir: Path | None) -> Path:
        """``--engine ct2`` for an hf or LoRA version: CTranslate2 weights made once per md5 (the
        adapter merged into its base first), reused while their own md5 still matches."""
        from gitops.convert.ct2 import convert_to_ct2

        path = loaded.weights
        out = self.state_dir / "ct2" / f"{loaded.key.removesuffix('.dir')}-{self.quantization}"
        stamp = out.with_name(out.name + ".md5")
        if out.is_dir() and stamp.is_file() and stamp.read_text().strip() == dir_md5(out):
            return out
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        convert_to_ct2(path, tmp, self.quantization, fmt=loaded.format, base_dir=base_dir)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        stamp.write_text(dir_md5(out) + "\n")
        return out
