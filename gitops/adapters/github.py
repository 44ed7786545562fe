"""GitHub, through PyGithub: the one border where GitHub's answers and failures are translated.

Every call returns plain dataclasses so the rest of the toolkit never touches PyGithub objects, and
every failure (bad token, 404, 5xx, network) becomes a :class:`GithubError` with one sentence, here
and nowhere else. ``github`` (PyGithub) is imported inside functions: ``gitops show`` must not pay
for it.

Configuration follows GitHub Actions' own variables: ``GITHUB_API_URL`` (default
https://api.github.com; the offline emulator in tests sets it), ``GITHUB_TOKEN`` and
``GITHUB_REPOSITORY`` (``owner/name``).
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gitops.errors import GithubError

DEFAULT_API_URL = "https://api.github.com"
NO_REPOSITORY = ("no GitHub repository given: pass --github-repo OWNER/NAME, set github.repo in gitops.yaml, "
                 "or set GITHUB_REPOSITORY")
# GitHub's own limits: an owner is 1-39 of [A-Za-z0-9-], a repository name 1-100 of [A-Za-z0-9._-].
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
WRITE_PERMISSIONS = ("admin", "maintain", "write")


@dataclass(frozen=True)
class PullInfo:
    number: int
    title: str
    author: str
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    url: str
    changed_files: int = 0  # GitHub's count, which the paginated file list may not reach (3,000 at most)


@dataclass(frozen=True)
class ChangedFile:
    path: str
    status: str  # added, removed, modified, renamed, ...
    previous_path: str | None = None


@dataclass(frozen=True)
class Comment:
    id: int
    author: str
    body: str
    url: str


@dataclass(frozen=True)
class Review:
    id: int
    author: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING
    commit_id: str
    submitted_at: str


def repo_problem(repo: object) -> str | None:
    """Why ``repo`` cannot be a GitHub repository name (``owner/name``), or None."""
    if not isinstance(repo, str) or not _REPO_RE.match(repo) or repo.split("/")[1] in (".", ".."):
        return "must look like OWNER/NAME (letters, digits, '-', and '.' or '_' in the name)"
    return None


@contextmanager
def _translated(action: str, base_url: str, hint: str = "") -> Iterator[None]:
    """Turn anything PyGithub or the network raises into one GithubError sentence."""
    import github
    import requests

    try:
        yield
    except github.BadCredentialsException:
        raise GithubError(f"GitHub at {base_url} rejected the token while {action} "
                          "(check GITHUB_TOKEN)") from None
    except github.UnknownObjectException:
        raise GithubError(f"GitHub found nothing while {action} (404: it does not exist, or the token "
                          f"cannot see it{'; ' + hint if hint else ''})") from None
    except github.GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
        why = f"; {hint}" if hint and exc.status == 403 else ""  # 403: the token lacks a permission
        raise GithubError(f"GitHub answered {exc.status} while {action}: {message or 'no message'}{why}") from None
    except requests.exceptions.RequestException as exc:
        raise GithubError(f"cannot reach GitHub at {base_url} while {action}: {type(exc).__name__}") from None


class GitHub:
    """One repository on one GitHub (or emulator), with the calls the toolkit needs."""

    def __init__(self, gh: Any, repo_name: str, base_url: str) -> None:
        self._gh = gh
        self.repo_name = repo_name
        self.base_url = base_url
        # Lazy: the repository object only builds URLs; fetching it would cost a request per command.
        self._repo = gh.withLazy(True).get_repo(repo_name)
        self._login: str | None = None

    def _doing(self, action: str, hint: str = "") -> Any:
        return _translated(action, self.base_url, hint)

    def login(self) -> str:
        """The account the token belongs to (``GET /user``), cached."""
        if self._login is None:
            with self._doing("reading the token's user"):
                self._login = self._gh.get_user().login
        return self._login

    def check_push_access(self) -> None:
        """The repository exists for this token, and the token may push to it: one ``GET
        /repos/{owner}/{repo}``, asked before a branch is made for a pull request, so a wrong
        repository name or token fails before anything exists."""
        hint = "check OWNER/NAME (--github-repo, gitops.yaml's github.repo, $GITHUB_REPOSITORY) and the token"
        with self._doing(f"reading repository {self.repo_name}", hint):
            permissions = self._gh.get_repo(self.repo_name).permissions
        if permissions is not None and not permissions.push:
            raise GithubError(f"the token cannot push to {self.repo_name} (GitHub grants it no push); opening a "
                              "pull request needs contents: write and pull-requests: write")

    def pull(self, number: int) -> PullInfo:
        with self._doing(f"reading pull request #{number} of {self.repo_name}"):
            return _pull_info(self._repo.get_pull(number))

    def pull_files(self, number: int) -> list[ChangedFile]:
        with self._doing(f"listing the files of pull request #{number}"):
            pr = self._repo.get_pull(number)
            return [ChangedFile(f.filename, f.status, f.previous_filename) for f in pr.get_files()]

    def comments(self, number: int) -> list[Comment]:
        with self._doing(f"listing the comments of #{number}"):
            pr = self._repo.get_pull(number)
            return [Comment(c.id, c.user.login, c.body or "", c.html_url) for c in pr.get_issue_comments()]

    def create_comment(self, number: int, body: str) -> Comment:
        with self._doing(f"commenting on #{number}"):
            c = self._repo.get_pull(number).create_issue_comment(body)
            return Comment(c.id, c.user.login, c.body or "", c.html_url)

    def edit_comment(self, comment_id: int, body: str) -> Comment:
        # Straight to PATCH: PyGithub would GET the comment first only to learn its URL.
        with self._doing(f"updating comment {comment_id}"):
            data = self._request("PATCH", f"/issues/comments/{comment_id}", {"body": body})
            return Comment(data["id"], data["user"]["login"], data.get("body") or "", data["html_url"])

    def reviews(self, number: int) -> list[Review]:
        with self._doing(f"listing the reviews of #{number}"):
            return [Review(r.id, r.user.login if r.user else "", r.state, r.commit_id,
                           r.submitted_at.isoformat() if r.submitted_at else "")
                    for r in self._repo.get_pull(number).get_reviews()]

    def permission(self, login: str) -> str:
        """``admin``, ``maintain``, ``write``, ``triage``, ``read`` or ``none`` (role_name, which,
        unlike the legacy ``permission`` field, keeps maintain and triage apart)."""
        with self._doing(f"reading {login}'s permission on {self.repo_name}"):
            data = self._request("GET", f"/collaborators/{login}/permission")
            return data.get("role_name") or data.get("permission") or "none"

    def team_members(self, org: str, slug: str) -> list[str]:
        """Logins of ``@org/slug``. PyGithub's Team.get_members() follows the legacy /teams/{id}
        route, so the documented ``GET /orgs/{org}/teams/{slug}/members`` is called directly."""
        hint = "reading a team needs a token with read:org, which Actions' GITHUB_TOKEN lacks"
        with self._doing(f"listing the members of team @{org}/{slug}", hint):
            import github

            members = github.PaginatedList.PaginatedList(
                github.NamedUser.NamedUser, self._gh.requester, f"/orgs/{org}/teams/{slug}/members", None)
            return [m.login for m in members]

    def file_text(self, path: str, ref: str) -> str | None:
        """The text of ``path`` at ``ref``, or None when it does not exist there."""
        import github

        with self._doing(f"reading {path} at {ref}"):
            try:
                content = self._repo.get_contents(path, ref=ref)
            except github.UnknownObjectException:
                return None
            if isinstance(content, list):
                raise GithubError(f"{path} at {ref} is a directory, not a file")
            return base64.b64decode(content.content or "").decode("utf-8", errors="replace")

    def list_dir(self, path: str, ref: str) -> list[str] | None:
        """The names of the subdirectories of directory ``path`` at ``ref``; None when it does not exist."""
        import github

        with self._doing(f"listing {path} at {ref}"):
            try:
                content = self._repo.get_contents(path, ref=ref)
            except github.UnknownObjectException:
                return None
            if not isinstance(content, list):
                raise GithubError(f"{path} at {ref} is a file, not a directory")
            return sorted(c.name for c in content if c.type == "dir")

    def create_pull(self, title: str, body: str, head: str, base: str) -> PullInfo:
        with self._doing(f"opening a pull request from {head} into {base}"):
            return _pull_info(self._repo.create_pull(title=title, body=body, head=head, base=base))

    def set_status(self, sha: str, state: str, context: str, description: str, target_url: str | None = None) -> None:
        """A commit status (success, failure, pending, error) shown on the PR as ``context``."""
        data = {"state": state, "context": context, "description": description[:140]}
        if target_url:
            data["target_url"] = target_url
        with self._doing(f"setting status '{context}' on {sha[:12]}"):
            self._request("POST", f"/statuses/{sha}", data)

    def dispatch(self, event_type: str, payload: dict[str, Any] | None = None) -> None:
        """``repository_dispatch``: starts workflows that a push made with GITHUB_TOKEN would not."""
        with self._doing(f"sending repository_dispatch '{event_type}'"):
            self._repo.create_repository_dispatch(event_type, payload or {})

    def codeowners_errors(self, ref: str) -> list[dict[str, Any]]:
        """GitHub's own CODEOWNERS check at ``ref`` (no PyGithub method: called through its requester)."""
        with self._doing(f"reading CODEOWNERS errors at {ref}"):
            data = self._request("GET", "/codeowners/errors", params={"ref": ref})
            return list(data.get("errors", []))

    def _request(self, verb: str, suffix: str, body: dict | None = None, params: dict | None = None) -> dict:
        """A documented REST call PyGithub lacks, through its requester (same auth, retries, errors)."""
        _, data = self._gh.requester.requestJsonAndCheck(
            verb, f"/repos/{self.repo_name}{suffix}", parameters=params, input=body)
        return data or {}


def _pull_info(pr: Any) -> PullInfo:
    return PullInfo(number=pr.number, title=pr.title, author=pr.user.login, head_ref=pr.head.ref,
                    head_sha=pr.head.sha, base_ref=pr.base.ref, base_sha=pr.base.sha, url=pr.html_url,
                    changed_files=pr.changed_files or 0)


def connect(repo: str | None = None, *, token: str | None = None, base_url: str | None = None,
            throttle: float = 0.0, retries: int | None = None) -> GitHub:
    """A client for ``repo`` (default ``$GITHUB_REPOSITORY``) on ``$GITHUB_API_URL`` with ``$GITHUB_TOKEN``.

    PyGithub waits between requests and writes by default; ``throttle`` (seconds) replaces both,
    0 by default because our calls are few. ``retries`` (default ``$GITOPS_GITHUB_RETRIES`` or
    PyGithub's own policy) bounds retries of 5xx and rate-limit answers.
    """
    import github

    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    if not repo or repo_problem(repo):
        raise GithubError(f"GitHub repository '{repo}' {repo_problem(repo)}" if repo else NO_REPOSITORY)
    token = token or os.environ.get("GITHUB_TOKEN")
    if not token:
        raise GithubError("GITHUB_TOKEN is not set: GitHub calls need a token (in Actions: "
                          "env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }})")
    base_url = (base_url or os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    if retries is None and os.environ.get("GITOPS_GITHUB_RETRIES", "").isdigit():
        retries = int(os.environ["GITOPS_GITHUB_RETRIES"])
    kwargs: dict[str, Any] = {"retry": retries} if retries is not None else {}
    gh = github.Github(base_url=base_url, auth=github.Auth.Token(token), seconds_between_requests=throttle,
                       seconds_between_writes=throttle, **kwargs)
    return GitHub(gh, repo, base_url)
