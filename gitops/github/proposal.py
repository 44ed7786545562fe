"""A change proposed as a pull request, for a ``main`` nobody pushes to: ``gitops ingest --pr``,
``gitops train --pr``.

The verbs that commit (ingest, register, alias) run unchanged, with their journal and checks, in a
private linked worktree made at HEAD under the git directory: the user's work tree and branch are
never touched, whatever happens. Then the DVC data the new commits name is pushed to the remote,
the branch is created at the worktree's last commit, last of all and only if it does not exist
(as ``gitops promote`` creates its branch: it is absent or whole), pushed to ``origin``, and the
pull request opened with the same client ``promote --pr`` uses.

Before anything is made, :func:`plan` asks everything that can fail cheaply: that the branch does
not exist yet, git's ``origin``, the DVC remote (configured, its plugin installed, the credentials
accepted, the bucket there), the GitHub repository and the token (one ``GET`` of the repository,
which also says whether the token may push). So a wrong name or token leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops.core import journal
from gitops.core.workspace import Workspace
from gitops.errors import RepoStateError
from gitops.github.pulls import PullTarget, open_pull

PROPOSALS = "proposals"  # the worktrees live under the git directory: .git/gitops/proposals/<branch>


@dataclass
class Plan:
    """What was checked before anything was made: where the pull request goes."""

    gh: Any  # a gitops.adapters.github.GitHub
    repo: str
    base: str
    branch: str


@dataclass
class Proposed:
    """The pull request that carries the change."""

    branch: str
    base: str
    commit: str
    repo: str
    pr_number: int | None = None
    pr_url: str | None = None


def plan(ws: Workspace, branch: str, *, repo: str | None = None, base: str | None = None) -> Plan:
    """Check, before anything is made, that a pull request from ``branch`` into ``base`` (default:
    the branch checked out) can be opened; see the module docstring."""
    from gitops.github.repository import connect_to

    base = base or ws.git.current_branch() or "main"
    if ws.git.branch_exists(branch):
        raise RepoStateError(f"branch {branch} already exists (an earlier proposal?); merge or delete it "
                             f"(git branch -D {branch}) and run again")
    ws.check_push("--pr")
    gh = connect_to(repo, ws.root)  # --github-repo, gitops.yaml's github.repo, $GITHUB_REPOSITORY
    gh.check_push_access()
    return Plan(gh, gh.repo_name, base, branch)


@contextlib.contextmanager
def worktree(ws: Workspace, plan: Plan) -> Iterator[Workspace]:
    """A Workspace on a private linked worktree at HEAD (detached) sharing the repository's DVC
    cache and settings; removed at the end, and first, when a killed run left it behind."""
    path = ws.state_path(PROPOSALS, plan.branch.replace("/", "-"))
    # one proposal of a branch at a time: a second is refused at once instead of removing the
    # first one's worktree under it (a lock, not the work tree's: training may take hours)
    lock = journal.WriteLock.acquire(path.with_name(path.name + ".lock"), ws.root, f"propose {plan.branch}")
    try:
        ws.git.worktree_remove(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            ws.git.worktree_checkout(path, ws.git.resolve("HEAD"))
            ws.dvc.configure_worktree(path)
            yield Workspace(path)
        finally:
            ws.git.worktree_remove(path)
    finally:
        lock.release()


def copy_state(ws: Workspace, tree: Workspace, *parts: str) -> None:
    """Start the worktree's local state file ``parts`` (e.g. a data set's key index) from the
    repository's, when it has one: a cache, checked against the data it describes before use."""
    src, dst = ws.state_path(*parts), tree.state_path(*parts)
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def publish(ws: Workspace, plan: Plan, tree: Workspace, title: str, body: str) -> Proposed:
    """Push what the worktree committed as ``plan.branch`` and open its pull request: the DVC data
    first (the commits never name data the remote lacks), then the branch (created last, whole),
    then the pull request."""
    start, head = ws.git.resolve("HEAD"), tree.git.resolve("HEAD")
    if head == start:
        raise RepoStateError("nothing was committed, so there is nothing to propose")
    pointers = [p for p in ws.git.changed_paths(start, head) if p.endswith(".dvc") and (tree.root / p).is_file()]
    if pointers:
        tree.dvc.push([str(tree.root / p) for p in pointers])
    ws.git.create_branch(plan.branch, head, f"propose {plan.branch}")
    # pushed and opened as promote --pr does: a push or pull request that fails deletes the branch
    # again (here and on origin), so a failed try leaves nothing and the re-run starts clean
    pr = open_pull(ws, PullTarget(plan.gh, "origin", plan.base), plan.branch, title, body)
    result = Proposed(plan.branch, plan.base, head, plan.repo)
    result.pr_number, result.pr_url = pr.number, pr.url
    return result


def propose(ws: Workspace, plan: Plan, work: Callable[[Workspace], Any],
            text: Callable[[Any], tuple[str, str]]) -> tuple[Any, Proposed | None]:
    """Run ``work`` in a worktree of ``plan`` and publish what it committed; ``text`` gives the pull
    request's title and body from ``work``'s result. Nothing committed: no pull request (None)."""
    with worktree(ws, plan) as tree:
        done = work(tree)
        if tree.git.resolve("HEAD") == ws.git.resolve("HEAD"):
            return done, None
        title, body = text(done)
        return done, publish(ws, plan, tree, title, body)


def ingest_branch(dataset: str, version: str) -> str:
    return f"gitops/ingest-{dataset}-{version}"


def train_branch(model: str, version: str) -> str:
    return f"gitops/train-{model}-{version}"


def propose_ingest(ws: Workspace, files: list[Path], dataset: str, *, repo: str | None = None,
                   base: str | None = None, **options: Any) -> tuple[Any, Proposed | None]:
    """``gitops ingest --pr``: the new data set version on its own branch, as a pull request.
    ``options`` are :func:`gitops.data.ingest.ingest`'s (skip_invalid, delimiter, progress)."""
    from gitops.core import refs
    from gitops.data.ingest import ingest

    ds = ws.dataset(dataset)
    latest = ds.latest()
    version = f"v{refs.version_number(latest.id) + 1}" if latest else "v1"
    the_plan = plan(ws, ingest_branch(ds.name, version), repo=repo, base=base)
    files = [Path(f).resolve() for f in files]

    def work(tree: Workspace) -> Any:
        copy_state(ws, tree, "keys", f"{ds.name}.sqlite")  # the key cache: checked before use
        return ingest(tree, files, dataset, **options)

    return propose(ws, the_plan, work, _ingest_text)


def _ingest_text(result: Any) -> tuple[str, str]:
    splits = ", ".join(f"{n} {name}" for name, n in result.rows_added.items())
    title = f"Data: {result.dataset} {result.version} (+{result.total_added:,} rows)"
    body = [f"Adds **{result.dataset} {result.version}**: {result.total_added:,} new rows ({splits}).", "",
            f"- batch: `{result.batch}` (its files are on the DVC remote)",
            f"- dropped: {result.duplicates} duplicate and {result.invalid} invalid rows"]
    body += ["", "Merging it changes `data.dvc` on the default branch, which starts the train workflow."]
    return title, "\n".join(body)


def train_text(run: Any) -> tuple[str, str]:
    """Title and body of a ``gitops train --pr`` pull request (``run``: a TrainRun)."""
    alias = f" as {run.alias}" if run.alias else ""
    title = f"Train {run.model} {run.version}{alias}"
    metrics = run.result.metrics
    body = [f"Registers **{run.model}@{run.version}** ({run.format}), fine-tuned from `{run.base_model}` on "
            f"`{run.dataset}`" + (f", and points `{run.alias}` at it." if run.alias else "."), "",
            f"- steps: {run.result.steps}; eval loss {metrics.get('eval_loss')}, "
            f"perplexity {metrics.get('perplexity')}",
            f"- config hash: `{run.config_hash[:12]}`; weights: `{run.path}` (on the DVC remote)",
            "", "The evaluation workflow compares it with production on this pull request."]
    return title, "\n".join(body)
