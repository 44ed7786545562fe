"""The ``approvals`` required check: a move of a protected alias needs a code owner's approval, and
a change to what decides deploys needs an admin's.

GitHub's own "Require review from Code Owners" does the same for paths when branch protection is
on; this check makes the rule visible and testable, names who may approve, also holds where branch
protection is not available, and covers what CODEOWNERS cannot own: the ``protected`` and ``gates``
lines of ``model.yaml`` and the meaning of ``gitops.yaml`` (:mod:`gitops.github.guard`). Everything
it trusts is read from the pull request's BASE branch (model.yaml's ``protected`` list, CODEOWNERS,
the admins), so a pull request cannot unprotect an alias, or re-point a deploy hook, and move the
alias in one go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gitops.adapters.github import WRITE_PERMISSIONS, ChangedFile, GitHub, PullInfo, Review
from gitops.core import layout as store
from gitops.errors import ApprovalMissing, GithubError
from gitops.github.guard import Base, guarded_changes

ALIAS_PATH = re.compile(r"^registry/(?P<model>[^/]+)/aliases/(?P<alias>[^/]+)\.yaml$")
# GitHub lists at most this many files of a pull request (GET .../pulls/{n}/files), whatever the PR
# changes: beyond it a protected alias file could hide, so the check refuses to judge.
MAX_LISTED_FILES = 3000


@dataclass
class ProtectedChange:
    """One changed file that the base branch protects, and what was found for it: a protected
    alias (``model``, ``alias``; its code owners approve) or something that decides deploys
    (``what`` changed in it; the admins approve)."""

    path: str
    model: str
    alias: str
    owners: list[str]  # as written in CODEOWNERS (or model.yaml / gitops.yaml when it has no rule)
    eligible: list[str] = field(default_factory=list)  # who may approve: owners, teams expanded, minus the author
    approved_by: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    what: str = ""  # for a guarded file: what changed in it ("deploy changed", "deleted")

    @property
    def ok(self) -> bool:
        return bool(self.approved_by)

    @property
    def guarded(self) -> bool:
        """A change to what decides deploys (an admin approves), not an alias move."""
        return bool(self.what)

    def line(self, head_sha: str) -> str:
        role = "admin" if self.guarded else "code owner"
        if self.ok:
            return f"{self.path}: approved by {', '.join(self.approved_by)} ({role})."
        who = ", ".join(self.eligible) or f"nobody (no {role} other than the author has write access)"
        what = (f"{self.what}; it decides what deploys, so it" if self.guarded
                else f"protected alias '{self.alias}' of '{self.model}'")
        return (f"{self.path}: {what} needs an approval of commit {head_sha[:12]} by an {role} "
                f"({' '.join(self.owners) or 'none'}); who may approve: {who}.").replace("by an code", "by a code")


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
            return [f"PR #{self.pr} changes no protected alias and nothing that decides deploys: "
                    "no approval needed."]
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
    for review in sorted(reviews, key=lambda r: (r.submitted_at, r.id)):
        if review.state in ("COMMENTED", "PENDING"):
            continue
        latest[review.author] = review
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


def check_approvals(gh: GitHub, pr_number: int) -> ApprovalResult:
    """Decide whether pull request ``pr_number`` may merge as far as protected aliases, and the
    files and settings that decide deploys, go."""
    pr = gh.pull(pr_number)
    result = ApprovalResult(pr=pr.number, author=pr.author, head_sha=pr.head_sha, changes=[])
    base = Base(gh, pr.base_ref)
    touched = {p for f in _all_files(gh, pr) for p in (f.path, f.previous_path) if p}
    for path in sorted(touched):
        match = ALIAS_PATH.fullmatch(path)
        if match and match["alias"] in base.protected(match["model"]):
            result.changes.append(_alias_change(path, match["model"], match["alias"], base))
    guarded = guarded_changes(gh, pr, touched, base)
    admins = base.admins() if guarded else []
    result.changes += [ProtectedChange(g.path, "", "", list(admins), notes=list(base.notes), what=g.what)
                       for g in guarded if admins]  # no admins and nothing protected: nothing to guard
    if not result.changes:
        return result
    latest = latest_reviews(gh.reviews(pr_number))
    permissions: dict[str, str] = {}
    for change in result.changes:
        _judge(gh, change, pr, latest, permissions)
    return result


def _alias_change(path: str, model: str, alias: str, base: Base) -> ProtectedChange:
    """A protected alias's change, owned by CODEOWNERS' rule for its file on the base branch (or
    model.yaml's owners when CODEOWNERS has none)."""
    owners_file = base.codeowners
    rule = owners_file.rule_for(path) if owners_file else None
    if rule is not None and rule.owners:
        return ProtectedChange(path, model, alias, list(rule.owners))
    where = "no CODEOWNERS file" if owners_file is None else f"no owner for it in {owners_file.source}"
    return ProtectedChange(path, model, alias, list(base.protected(model)[alias]),
                           notes=[f"{where} on {base.ref}; using the owners in {store.model_file(model)} "
                                  "(run 'gitops codeowners --write')"])


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
