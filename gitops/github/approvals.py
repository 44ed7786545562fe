"""The ``approvals`` required check: every change to what a protected alias computes needs its
owners' approval, and a change to what decides deploys needs an admin's.

What needs approval is computed by :mod:`gitops.registry.closure` (shared with the offline
``gitops approvals --base REF``): a move of a protected alias (its code owners), anything in a
protected alias's closure (its version record and weights, the base it runs on, a prompt config,
the model's task block, the data sets it trains on, retrieves from or is evaluated on, with their
batches: the aliases' owners), and the machinery (workflows, CODEOWNERS, ``gitops.yaml`` and its
deploy hooks, ``.dvc/``, ``admin_paths``, a model's ``protected``/``gates``: the admins). GitHub's
own "Require review from Code Owners" covers paths when branch protection is on; this check makes
the rule visible and testable, names who may approve, and covers what CODEOWNERS cannot own (lines
of ``model.yaml`` and the data sets, the meaning of ``gitops.yaml``). Everything it trusts is read
from the pull request's BASE branch (what is protected, CODEOWNERS, the admins, the closures), so a
pull request cannot unprotect an alias, or re-point a deploy hook, and move the alias in one go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gitops.adapters.github import WRITE_PERMISSIONS, ChangedFile, GitHub, PullInfo, Review
from gitops.errors import ApprovalMissing, GithubError
from gitops.registry.closure import Change, review

# GitHub lists at most this many files of a pull request (GET .../pulls/{n}/files), whatever the PR
# changes: beyond it a protected alias file could hide, so the check refuses to judge.
MAX_LISTED_FILES = 3000
ROLES = {"alias": "code owner", "admin": "admin", "closure": "owner"}


@dataclass
class ProtectedChange:
    """One change that needs approval (a :class:`gitops.registry.closure.Change`), and what was
    found for it: who may approve and who did."""

    path: str
    what: str
    kind: str  # alias | admin | closure
    owners: list[str]  # as written in CODEOWNERS (or model.yaml / gitops.yaml when it has no rule)
    aliases: list[str] = field(default_factory=list)  # MODEL@ALIAS whose closure it touches
    eligible: list[str] = field(default_factory=list)  # who may approve: owners, teams expanded, minus the author
    approved_by: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    immutable: bool = False

    @classmethod
    def of(cls, change: Change) -> ProtectedChange:
        return cls(change.path, change.what, change.kind, list(change.owners), list(change.aliases),
                   notes=list(change.notes), immutable=change.immutable)

    @property
    def ok(self) -> bool:
        return bool(self.approved_by)

    @property
    def guarded(self) -> bool:
        """A change to what decides deploys (an admin approves)."""
        return self.kind == "admin"

    def line(self, head_sha: str) -> str:
        role = f"owner of {', '.join(self.aliases)}" if self.kind == "closure" else ROLES[self.kind]
        if self.ok:
            return f"{self.path}: approved by {', '.join(self.approved_by)} ({role})."
        who = ", ".join(self.eligible) or f"nobody (no {role} other than the author has write access)"
        if self.kind == "admin":
            what = f"{self.what}; it decides what deploys, so it"
        elif self.kind == "closure":
            frozen = " (a released record or batch: check --base refuses it too)" if self.immutable else ""
            what = (f"{self.what}{frozen}; it can change what {', '.join(self.aliases)} "
                    f"compute{'s' if len(self.aliases) == 1 else ''}, so it")
        else:
            what = f"{self.what}; it"
        article = "an" if role[0] in "aeiou" else "a"
        return (f"{self.path}: {what} needs an approval of commit {head_sha[:12]} by {article} {role} "
                f"({' '.join(self.owners) or 'none'}); who may approve: {who}.")


@dataclass
class ApprovalResult:
    pr: int
    author: str
    head_sha: str
    changes: list[ProtectedChange]

    @property
    def ok(self) -> bool:
        return all(change.ok for change in self.changes)

    def lines(self) -> list[str]:
        """What the check prints: one line per protected change, then the verdict."""
        if not self.changes:
            return [f"PR #{self.pr} changes no protected alias, nothing in a protected alias's closure and nothing "
                    "that decides deploys: no approval needed."]
        out = []
        for c in self.changes:
            out.append(c.line(self.head_sha))
            out += [f"  note: {n}" for n in c.notes]
        return out

    def summary(self) -> str:
        missing = [c.path for c in self.changes if not c.ok]
        if not missing:
            return f"PR #{self.pr}: every protected change has its owners' approval"
        return f"PR #{self.pr} changes what is protected without a code owner's approval: {', '.join(missing)}"


def latest_reviews(reviews: list[Review]) -> dict[str, Review]:
    """Each reviewer's latest review that decides something: COMMENTED and PENDING reviews change
    nothing on GitHub either, while a DISMISSED one withdraws an approval."""
    latest: dict[str, Review] = {}
    for each in sorted(reviews, key=lambda r: (r.submitted_at, r.id)):
        if each.state in ("COMMENTED", "PENDING"):
            continue
        latest[each.author] = each
    return latest


def _expand(gh: GitHub, owners: list[str], notes: list[str]) -> list[str]:
    """Logins behind ``@user`` and ``@org/team`` owners (teams through the API); e-mails are noted."""
    logins: list[str] = []
    for owner in owners:
        if owner.startswith("@") and "/" in owner:
            org, slug = owner[1:].split("/", 1)
            logins += gh.team_members(org, slug)
        elif owner.startswith("@"):
            logins.append(owner[1:])
        else:
            notes.append(f"owner {owner} is an e-mail address, which cannot be matched to a reviewer here")
    return list(dict.fromkeys(logins))


class GitHubTree:
    """A ref of the repository through GitHub's contents API (what :func:`review` reads)."""

    def __init__(self, gh: GitHub, ref: str) -> None:
        self.gh, self.ref = gh, ref

    def text(self, path: str) -> str | None:
        return self.gh.file_text(path, self.ref)

    def dirs(self, path: str) -> list[str] | None:
        return self.gh.list_dir(path, self.ref)


def check_approvals(gh: GitHub, pr_number: int) -> ApprovalResult:
    """Decide whether pull request ``pr_number`` may merge: every change that needs approval
    (:func:`gitops.registry.closure.review`, base branch against head commit) has one."""
    pr = gh.pull(pr_number)
    result = ApprovalResult(pr=pr.number, author=pr.author, head_sha=pr.head_sha, changes=[])
    touched = {p for f in _all_files(gh, pr) for p in (f.path, f.previous_path) if p}
    found = review(GitHubTree(gh, pr.base_ref), GitHubTree(gh, pr.head_sha), touched)
    result.changes = [ProtectedChange.of(change) for change in found.changes]
    if not result.changes:
        return result
    latest = latest_reviews(gh.reviews(pr_number))
    permissions: dict[str, str] = {}
    for change in result.changes:
        _judge(gh, change, pr, latest, permissions)
    return result


def _all_files(gh: GitHub, pr: PullInfo) -> list[ChangedFile]:
    """Every file the pull request changes, or ApprovalMissing when GitHub's list may be cut short:
    failing closed, since a protected alias file could be among the files not listed."""
    files = gh.pull_files(pr.number) if pr.changed_files < MAX_LISTED_FILES else []
    if pr.changed_files >= MAX_LISTED_FILES or len(files) < pr.changed_files or len(files) >= MAX_LISTED_FILES:
        raise ApprovalMissing(
            f"PR #{pr.number} changes {pr.changed_files:,} files and GitHub listed {len(files):,} of them "
            f"(it lists at most {MAX_LISTED_FILES:,}), so the approvals check cannot see every changed file "
            "and fails closed: split the pull request into smaller ones")
    return files


def _judge(gh: GitHub, change: ProtectedChange, pr: PullInfo, latest: dict[str, Review],
           permissions: dict[str, str]) -> None:
    """Fill in who may approve ``change`` and who did, for the head commit."""
    for login in _expand(gh, change.owners, change.notes):
        if login == pr.author:
            continue  # GitHub never counts an author's approval of their own pull request
        if login not in permissions:
            permissions[login] = _permission(gh, login)
        if permissions[login] in WRITE_PERMISSIONS:
            change.eligible.append(login)
        else:
            change.notes.append(f"{login} is a code owner but has '{permissions[login]}' access, not write")
    for login in change.eligible:
        review = latest.get(login)
        if review is None or review.state != "APPROVED":
            continue
        if review.commit_id != pr.head_sha:
            change.notes.append(f"{login} approved an older commit ({review.commit_id[:12]}); the head is "
                                f"{pr.head_sha[:12]}")
            continue
        change.approved_by.append(login)


def _permission(gh: GitHub, login: str) -> str:
    try:
        return gh.permission(login)
    except GithubError:
        return "none"  # not a user GitHub knows (a renamed account): cannot approve


def approvals(pr_number: int, github_repo: str | None = None, directory: Path | str | None = None) -> ApprovalResult:
    """:func:`check_approvals` with the environment's token on ``github_repo`` (default: github.repo
    of the gitops.yaml in ``directory``'s repository, then ``$GITHUB_REPOSITORY``)."""
    from gitops.github.repository import connect_to

    return check_approvals(connect_to(github_repo, directory), pr_number)
