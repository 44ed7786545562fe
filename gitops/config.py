"""``gitops.yaml``: repository-level settings (GitHub repo, runner labels, admins, deploy hooks, notify)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gitops import yamlio
from gitops.errors import RegistryError
from gitops.registry.schema import Problems, _owners

CONFIG_FILE = "gitops.yaml"
TOP_KEYS = ("github", "runners", "admins", "deploy", "notify")

DEFAULT_TEXT = """\
# gitops repository settings. See the README for every key.
github:
  repo: {repo}            # owner/name on GitHub (workflows also read GITHUB_REPOSITORY)
runners:
  gpu: [self-hosted, gpu]  # labels of the runner that trains and evaluates
# People who own the GitOps machinery itself (.github/, gitops.yaml) in CODEOWNERS.
# Empty: the owners of every protected alias.
admins: []
# Deploy webhooks fired when an alias listed here moves on the default branch.
deploy:
  hooks: []
"""


@dataclass
class RepoConfig:
    repo: str | None = None
    gpu_labels: list[str] = field(default_factory=lambda: ["self-hosted", "gpu"])
    admins: list[str] = field(default_factory=list)
    deploy: Any = None
    notify: Any = None
    raw: dict = field(default_factory=dict)


def parse_config(doc: Any, src: str, p: Problems) -> RepoConfig:
    cfg = RepoConfig()
    if doc is None:
        return cfg
    if not isinstance(doc, dict):
        p.add(src, None, None, "gitops.yaml must be a mapping with keys: " + ", ".join(TOP_KEYS))
        return cfg
    cfg.raw = doc
    for key in doc:
        if key not in TOP_KEYS:
            p.add(src, doc, key, f"unknown key '{key}' (allowed: {', '.join(TOP_KEYS)})")
    github = doc.get("github") or {}
    if not isinstance(github, dict) or set(github) - {"repo"}:
        p.add(src, doc, "github", "github must be a mapping with 'repo: owner/name'")
    else:
        repo = github.get("repo")
        if repo is not None and (not isinstance(repo, str) or repo.count("/") != 1):
            p.add(src, github, "repo", f"github.repo '{repo}' must look like owner/name")
        cfg.repo = repo
    runners = doc.get("runners") or {}
    if not isinstance(runners, dict) or set(runners) - {"gpu"} or not isinstance(runners.get("gpu", []), list):
        p.add(src, doc, "runners", "runners must be a mapping like {gpu: [self-hosted, gpu]}")
    elif runners.get("gpu"):
        cfg.gpu_labels = [str(x) for x in runners["gpu"]]
    if doc.get("admins"):
        cfg.admins = _owners(doc["admins"], doc, "admins", src, p, "admins")
    if doc.get("deploy") is not None or doc.get("notify") is not None:
        cfg.deploy, cfg.notify = _parse_hooks(doc, src, p)
    return cfg


def _parse_hooks(doc: dict, src: str, p: Problems) -> tuple[Any, Any]:
    try:
        from gitops.deploy.config import parse_deploy, parse_notify
    except ImportError:  # the deploy area is optional in a build
        return doc.get("deploy"), doc.get("notify")
    return parse_deploy(doc, src, p), parse_notify(doc, src, p)


def load_config(root: Path, strict: bool = True, problems: Problems | None = None) -> RepoConfig:
    """Read ``gitops.yaml`` (missing file: defaults)."""
    path = root / CONFIG_FILE
    p = problems if problems is not None else Problems()
    if not path.exists():
        return RepoConfig()
    try:
        doc = yamlio.load_file(path, CONFIG_FILE)
    except RegistryError as exc:
        if strict:
            raise
        p.append(str(exc))
        return RepoConfig()
    before = len(p)
    cfg = parse_config(doc, CONFIG_FILE, p)
    if strict and len(p) > before:
        raise RegistryError(p[before]) if len(p) - before == 1 else RegistryError(
            f"{CONFIG_FILE} has {len(p) - before} problems:", problems=p[before:])
    return cfg


def default_text(repo: str | None) -> str:
    return DEFAULT_TEXT.format(repo=repo or "your-org/your-models")
