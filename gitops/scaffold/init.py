"""``gitops init``: scaffold a GitOps repository (git, DVC, registry/, workflows, gitops.yaml)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gitops.adapters import dvc, git
from gitops.core import layout, settings
from gitops.core.reader import Registry
from gitops.adapters.github import repo_problem
from gitops.errors import ConfigError, RepoStateError, shown
from gitops.registry import codeowners_text

WORKFLOWS_DIR = Path(__file__).parent / "workflows"


@dataclass
class InitResult:
    root: Path
    remote: str
    commit: str
    files: list[str]


def workflow_templates() -> list[Path]:
    return sorted(WORKFLOWS_DIR.glob("*.yml"))


def init(directory: Path, remote: str | None = None, repo: str | None = None) -> InitResult:
    """Make ``directory`` a GitOps repo; it may be new, empty, or an existing git repo without a registry."""
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
    remote = remote or str(directory.parent / f"{directory.name}-dvc-storage")
    if "://" not in remote:
        Path(remote).mkdir(parents=True, exist_ok=True)
    if not is_repo:
        git.init(directory)
    if not (directory / ".dvc").exists():
        dvc.init(directory, remote_url=remote)
    files = _write_files(directory, repo)
    git.add(directory, [".dvc", ".dvcignore", *files])
    commit = git.commit(directory, "gitops init: registry, DVC remote, workflows, CODEOWNERS")
    return InitResult(directory, remote, commit, files)


def _write_files(root: Path, repo: str | None) -> list[str]:
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
    for template in workflow_templates():
        target = root / ".github" / "workflows" / template.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
        files.append(target.relative_to(root).as_posix())
    gitignore = root / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    for entry in ("/results*.json", "/report*.md", "/.gitops-work/", "/_site/"):  # _site: gitops site's default
        if entry not in lines:
            lines.append(entry)
    gitignore.write_text("\n".join(lines) + "\n")
    files.append(".gitignore")
    return files
