"""``gitops promote``: move an alias on its own branch, as one commit, optionally as a pull request.

Promotion is a pull request, not a push to main: the evaluation workflow comments on it, the
approvals check guards protected aliases, and merging it is the deploy event.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops.core import layout, refs
from gitops.core.schema import Alias
from gitops.core.workspace import Workspace
from gitops.errors import RegistryError, RepoStateError
from gitops.github.pulls import open_pull, pull_target


@dataclass
class PromoteResult:
    model: str
    alias: str
    version: str
    previous: str | None  # the version the alias pointed to before, None for a new alias
    branch: str
    commit: str
    path: str
    pushed: bool = False
    pr_number: int | None = None
    pr_url: str | None = None


def branch_name(model: str, alias: str, version: str) -> str:
    return f"gitops/promote-{model}-{alias}-{version}"


def pr_text(result: PromoteResult, note: str | None) -> tuple[str, str]:
    """Title and body of the promotion pull request: what moves, from what, to what, and why."""
    title = f"Promote {result.model} {result.version} to {result.alias}"
    was = f"`{result.previous}`" if result.previous else "nothing (a new alias)"
    body = [f"Moves **{result.model}@{result.alias}** from {was} to `{result.version}`.", "",
            f"- file: `{result.path}`", f"- commit: `{result.commit[:12]}`"]
    body += ["", f"Why: {note}"] if note else ["", "Why: no note given (`gitops promote --note`)."]
    body += ["", "The evaluation workflow compares the candidate with the current version on this PR; "
                 "a protected alias needs a code owner's approval (`gitops approvals`)."]
    return title, "\n".join(body)


def promote(ws: Workspace, ref: str, alias: str, note: str | None = None, *, open_pr: bool = False,
            base: str = "main", github_repo: str | None = None, remote: str = "origin") -> PromoteResult:
    """Commit ``alias -> version of ref`` on a new branch made from HEAD, without checking it out:
    the work tree stays on the branch it was on, untouched. HEAD (not the base branch) is the start so a
    version registered in a local commit (the training workflow) travels with its promotion.

    With ``open_pr`` the branch is pushed to ``remote`` and a pull request into ``base`` opened on
    ``github_repo`` (default: gitops.yaml's github.repo, then $GITHUB_REPOSITORY). The remote, the
    repository's name, the token and the repository on GitHub are checked before the branch is
    made, and a push or pull request that fails deletes the branch again: a failed try leaves
    nothing, and the re-run starts clean."""
    if problem := refs.alias_problem(alias):
        raise RegistryError(problem)
    with ws.writing("promote"):
        return _promote(ws, ref, alias, note, open_pr, base, github_repo, remote)


def _promote(ws: Workspace, ref: str, alias: str, note: str | None, open_pr: bool, base: str,
             github_repo: str | None, remote: str) -> PromoteResult:
    ws.git.require_clean("promote")
    model, version = ws.registry().resolve(ref)
    previous = model.aliases[alias].version if alias in model.aliases else None
    if previous == version.id:
        raise RepoStateError(f"{model.name}@{alias} already points to {version.id}: nothing to promote")
    branch = branch_name(model.name, alias, version.id)
    if ws.git.branch_exists(branch):
        raise RepoStateError(f"branch {branch} already exists; delete it (git branch -D {branch}) or merge it")
    target = pull_target(ws, github_repo, base, remote) if open_pr else None
    path, text = layout.alias_text(model.name, Alias(name=alias, version=version.id, note=note))
    message = f"Promote {model.name} {version.id} to {alias}\n\nwas: {previous or 'unset'}"
    # Built beside the work tree (a temporary index), the branch created last: the work tree never
    # leaves the branch it is on, so a kill at any moment leaves it as it was, with or without the
    # whole promotion branch (never half of one).
    commit = ws.git.commit_to_new_branch(branch, "HEAD", {path: text}, message + (f"\n\n{note}" if note else ""))
    result = PromoteResult(model.name, alias, version.id, previous, branch, commit, path)
    if target is not None:
        title, body = pr_text(result, note)
        pr = open_pull(ws, target, branch, title, body)
        result.pushed, result.pr_number, result.pr_url = True, pr.number, pr.url
    return result


def open_pull_request(ws: Workspace, result: PromoteResult, note: str | None, base: str = "main",
                      github_repo: str | None = None, remote: str = "origin") -> PromoteResult:
    """Push an already made promotion branch and open its pull request (what ``promote(...,
    open_pr=True)`` does in one go, checking first); a failure deletes the branch."""
    target = pull_target(ws, github_repo, base, remote)
    title, body = pr_text(result, note)
    pr = open_pull(ws, target, result.branch, title, body)
    result.pushed, result.pr_number, result.pr_url = True, pr.number, pr.url
    return result
