"""The ``approvals`` required check: a move of a protected alias needs a code owner's approval.

GitHub's own "Require review from Code Owners" does the same when branch protection is on; this
check makes the rule visible and testable, names who may approve, and also holds where branch
protection is not available. Everything it trusts is read from the pull request's BASE branch
(model.yaml's ``protected`` list, CODEOWNERS), so a pull request cannot unprotect an alias and move
it in one go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gitops import yamlio
from gitops.adapters.github import WRITE_PERMISSIONS, ChangedFile, GitHub, PullInfo, Review
from gitops.core import layout as store
from gitops.core import schema
from gitops.errors import ApprovalMissing, GithubError, RegistryError
from gitops.github import codeowners_rules as codeowners

ALIAS_PATH = re.compile(r"^registry/(?P<model>[^/]+)/aliases/(?P<alias>[^/]+)\.yaml$")
# GitHub lists at most this many files of a pull request (GET .../pulls/{n}/files), whatever the PR
# changes: beyond it a protected alias file could hide, so the check refuses to judge.
MAX_LISTED_FILES = 3000


@dataclass
class ProtectedChange:
    """One changed alias file that the base branch protects, and what was found for it."""

    path: str
    model: str
    alias: str
    owners: list[str]  # as written in CODEOWNERS (or model.yaml when CODEOWNERS has no rule)
    eligible: list[str]  # logins that may approve: owners, teams expanded, minus the author
    approved_by: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.approved_by)


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
            return [f"PR #{self.pr} changes no protected alias: no code owner approval needed."]
        out = []
        for c in self.changes:
            who = ", ".join(c.eligible) or "nobody (no code owner other than the author has write access)"
            if c.ok:
                out.append(f"{c.path}: approved by {', '.join(c.approved_by)} (code owner).")
            else:
                out.append(f"{c.path}: protected alias '{c.alias}' of '{c.model}' needs an approval of "
                           f"commit {self.head_sha[:12]} by a code owner ({' '.join(c.owners) or 'none'}); "
                           f"who may approve: {who}.")
            out += [f"  note: {n}" for n in c.notes]
        return out

    def summary(self) -> str:
        missing = [c.path for c in self.changes if not c.ok]
        if not missing:
            return f"PR #{self.pr}: every protected alias change has a code owner's approval"
        return f"PR #{self.pr} moves a protected alias without a code owner's approval: {', '.join(missing)}"


def latest_reviews(reviews: list[Review]) -> dict[str, Review]:
    """Each reviewer's latest review that decides something: COMMENTED and PENDING reviews change
    nothing on GitHub either, while a DISMISSED one withdraws an approval."""
    latest: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: (r.submitted_at, r.id)):
        if review.state in ("COMMENTED", "PENDING"):
            continue
        latest[review.author] = review
    return latest


def _protected_aliases(gh: GitHub, model: str, base: str, cache: dict[str, dict[str, list[str]]]) -> dict:
    if model not in cache:
        rel = store.model_file(model)
        text = gh.file_text(rel, base)
        if text is None:
            cache[model] = {}  # a model new in this PR: nothing on the base branch protects it
        else:
            problems = schema.Problems()
            parsed = schema.parse_model(yamlio.loads(text, f"{rel} (at {base})"), rel, model, problems)
            if parsed is None:
                raise RegistryError(f"{rel} on the base branch {base} is invalid: {problems[0]}")
            cache[model] = parsed.protected
    return cache[model]


def _read_codeowners(gh: GitHub, base: str) -> codeowners.Codeowners | None:
    for location in codeowners.LOCATIONS:
        text = gh.file_text(location, base)
        if text is not None:
            return codeowners.parse(text, location)
    return None


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
    """Decide whether pull request ``pr_number`` may merge as far as protected aliases go."""
    pr = gh.pull(pr_number)
    result = ApprovalResult(pr=pr.number, author=pr.author, head_sha=pr.head_sha, changes=[])
    protected_cache: dict[str, dict[str, list[str]]] = {}
    touched = {p for f in _all_files(gh, pr) for p in (f.path, f.previous_path) if p}
    candidates = []
    for path in sorted(touched):
        match = ALIAS_PATH.fullmatch(path)
        if match and match["alias"] in _protected_aliases(gh, match["model"], pr.base_ref, protected_cache):
            candidates.append((path, match["model"], match["alias"]))
    if not candidates:
        return result
    owners_file = _read_codeowners(gh, pr.base_ref)
    latest = latest_reviews(gh.reviews(pr_number))
    permissions: dict[str, str] = {}
    for path, model, alias in candidates:
        change = _judge(gh, path, model, alias, protected_cache[model][alias], owners_file, pr, latest, permissions)
        result.changes.append(change)
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


def _judge(gh: GitHub, path: str, model: str, alias: str, model_owners: list[str],
           owners_file: codeowners.Codeowners | None, pr: PullInfo, latest: dict[str, Review],
           permissions: dict[str, str]) -> ProtectedChange:
    notes: list[str] = []
    rule = owners_file.rule_for(path) if owners_file else None
    if rule is not None and rule.owners:
        owners = list(rule.owners)
    else:
        owners = list(model_owners)
        where = "no CODEOWNERS file" if owners_file is None else f"no owner for it in {owners_file.source}"
        notes.append(f"{where} on {pr.base_ref}; using the owners in {store.model_file(model)} "
                     "(run 'gitops codeowners --write')")
    logins = _expand(gh, owners, notes)
    eligible = []
    for login in logins:
        if login == pr.author:
            continue  # GitHub never counts an author's approval of their own pull request
        if login not in permissions:
            permissions[login] = _permission(gh, login)
        if permissions[login] in WRITE_PERMISSIONS:
            eligible.append(login)
        else:
            notes.append(f"{login} is a code owner but has '{permissions[login]}' access, not write")
    change = ProtectedChange(path, model, alias, owners, eligible, notes=notes)
    for login in eligible:
        review = latest.get(login)
        if review is None or review.state != "APPROVED":
            continue
        if review.commit_id != pr.head_sha:
            notes.append(f"{login} approved an older commit ({review.commit_id[:12]}); the head is "
                         f"{pr.head_sha[:12]}")
            continue
        change.approved_by.append(login)
    return change


def _permission(gh: GitHub, login: str) -> str:
    try:
        return gh.permission(login)
    except GithubError:
        return "none"  # not a user GitHub knows (a renamed account): cannot approve


def approvals(pr_number: int, repo: str | None = None) -> ApprovalResult:
    """:func:`check_approvals` on ``repo`` (default ``$GITHUB_REPOSITORY``) with the environment's token."""
    from gitops.adapters.github import connect

    return check_approvals(connect(repo), pr_number)
