"""The emulator's world: users, tokens, teams, pull requests, comments and reviews, over a real git repo.

Everything GitHub would compute from git (a pull request's head commit, its changed files, a file's
contents at a ref) is computed from the repository on disk, so a ``git push`` to it is seen at once.
Response objects are built from GitHub's own examples in the OpenAPI description (so they carry every
field the schemas require), with our values set on top.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parent / "github-openapi-subset.json"
PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")
REVIEW_EVENTS = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED"}


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git(repo_dir: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=repo_dir, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LookupError(proc.stderr.strip() or f"git {args[0]} failed")
    return proc.stdout


# GitHub lists at most this many files of a pull request, 100 per page at most (30 by default).
MAX_PULL_FILES = 3000
MAX_PER_PAGE = 100
# Scopes of a personal access token (classic) when a test names none: what a gitops token needs.
DEFAULT_PAT_SCOPES = ("repo", "read:org")


@dataclass
class User:
    login: str
    id: int
    token: str
    type: str = "User"


@dataclass(frozen=True)
class Token:
    """Who a token acts for and what it may do. ``installation`` is an Actions ``GITHUB_TOKEN`` (a
    GitHub App installation token: repository permissions only, no organization ones); ``pat`` is a
    personal access token (classic) with OAuth ``scopes``."""

    login: str
    kind: str  # "installation" or "pat"
    scopes: tuple[str, ...] = ()

    def can_read_org(self) -> bool:
        return self.kind == "pat" and bool({"read:org", "write:org", "admin:org"} & set(self.scopes))


@dataclass
class Pull:
    number: int
    title: str
    body: str | None
    head: str
    base: str
    author: str
    created_at: str = field(default_factory=now)
    state: str = "open"


@dataclass
class Comment:
    id: int
    issue: int
    body: str
    author: str
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass
class Review:
    id: int
    pull: int
    author: str
    state: str
    body: str
    commit_id: str
    submitted_at: str = field(default_factory=now)


class World:
    """In-memory GitHub state for one repository ``owner/name`` backed by ``repo_dir``."""

    def __init__(self, repo_dir: Path | str, full_name: str = "acme/models", default_branch: str = "main") -> None:
        self.repo_dir = Path(repo_dir)
        self.full_name = full_name
        self.owner, self.name = full_name.split("/", 1)
        self.default_branch = default_branch
        self.base_url = "http://127.0.0.1"
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.collaborators: dict[str, str] = {}
        self.teams: dict[tuple[str, str], list[str]] = {}
        self.pulls: dict[int, Pull] = {}
        self.comments: dict[int, Comment] = {}
        self.reviews: dict[int, Review] = {}
        self.statuses: list[dict[str, Any]] = []
        self.check_runs: list[dict[str, Any]] = []
        self.dispatches: list[dict[str, Any]] = []
        self._ids = 1000
        self._numbers = 0
        self._examples = json.loads(SPEC_PATH.read_text(encoding="utf-8"))["components"]["examples"]

    # --- seeding (what tests and the JSON state file call) ----------------------------------------

    def add_user(self, login: str, token: str | None = None, type: str = "User",
                 permission: str | None = None, scopes: tuple[str, ...] | list[str] | None = None) -> str:
        """Register a user (and its token); with ``permission``, also a collaborator. Returns the token.

        A ``Bot`` user's token is the Actions ``GITHUB_TOKEN`` (an installation token); a person's is a
        personal access token with ``scopes`` (default :data:`DEFAULT_PAT_SCOPES`).
        """
        with self.lock:
            token = token or "tok-" + hashlib.sha1(login.encode()).hexdigest()[:20]
            self.users[login] = User(login=login, id=self._next_id(), token=token, type=type)
            kind = "installation" if type == "Bot" else "pat"
            self.tokens[token] = Token(login, kind, tuple(DEFAULT_PAT_SCOPES if scopes is None else scopes))
            if permission:
                self.set_permission(login, permission)
            return token

    def add_token(self, login: str, scopes: tuple[str, ...] | list[str], token: str | None = None) -> str:
        """Another personal access token (classic) of ``login`` with exactly ``scopes``; returns it."""
        with self.lock:
            if login not in self.users:
                raise ValueError(f"unknown user {login}")
            token = token or "pat-" + hashlib.sha1(f"{login} {sorted(scopes)}".encode()).hexdigest()[:20]
            self.tokens[token] = Token(login, "pat", tuple(scopes))
            return token

    def set_permission(self, login: str, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise ValueError(f"permission must be one of {PERMISSIONS}")
        self.collaborators[login] = permission

    def add_team(self, org: str, slug: str, members: list[str]) -> None:
        with self.lock:
            self.teams[(org.lower(), slug.lower())] = list(members)

    def open_pull(self, head: str, base: str, title: str, author: str, body: str | None = None) -> int:
        with self.lock:
            self.sha(head), self.sha(base)  # both branches must exist, as on GitHub
            number = self._next_number()
            self.pulls[number] = Pull(number, title, body, head, base, author)
            return number

    def add_review(self, pull: int, author: str, event: str, body: str = "", commit_id: str | None = None) -> int:
        with self.lock:
            pr = self.pulls[pull]
            state = REVIEW_EVENTS.get(event, "PENDING") if event else "PENDING"
            review = Review(self._next_id(), pull, author, state, body, commit_id or self.sha(pr.head))
            self.reviews[review.id] = review
            return review.id

    def add_comment(self, issue: int, author: str, body: str) -> int:
        with self.lock:
            comment = Comment(self._next_id(), issue, body, author)
            self.comments[comment.id] = comment
            return comment.id

    def seed(self, data: dict[str, Any]) -> None:
        """Seed from a JSON document: users, teams, pulls, reviews, comments (see README.md)."""
        for user in data.get("users", []):
            self.add_user(user["login"], user.get("token"), user.get("type", "User"), user.get("permission"),
                          user.get("scopes"))
        for team in data.get("teams", []):
            self.add_team(team["org"], team["slug"], team["members"])
        for pull in data.get("pulls", []):
            self.open_pull(pull["head"], pull.get("base", self.default_branch), pull.get("title", pull["head"]),
                           pull["author"], pull.get("body"))
        for review in data.get("reviews", []):
            self.add_review(review["pull"], review["author"], review["event"], review.get("body", ""))
        for comment in data.get("comments", []):
            self.add_comment(comment["issue"], comment["author"], comment["body"])

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    # --- git, the source of truth for commits and files -------------------------------------------

    def sha(self, ref: str) -> str:
        return git(self.repo_dir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}").strip()

    def blob(self, ref: str, path: str) -> bytes | None:
        proc = subprocess.run(["git", "show", f"{ref}:{path}"], cwd=self.repo_dir, capture_output=True, check=False)
        if proc.returncode != 0:
            return None
        kind = git(self.repo_dir, "cat-file", "-t", f"{ref}:{path}").strip()
        return proc.stdout if kind == "blob" else None

    def tree(self, ref: str, path: str) -> list[tuple[str, str, str, int]] | None:
        """``(name, type, sha, size)`` of each entry of directory ``path`` at ``ref`` (None: not a directory)."""
        proc = subprocess.run(["git", "ls-tree", "-l", "-z", f"{ref}:{path.strip('/')}"], cwd=self.repo_dir,
                              capture_output=True, check=False, text=True)
        if proc.returncode != 0:
            return None
        entries = []
        for line in proc.stdout.split("\0"):
            if line:
                meta, name = line.split("\t", 1)
                mode, kind, sha, size = meta.split()
                kind = "symlink" if mode == "120000" else {"blob": "file", "tree": "dir"}.get(kind, "submodule")
                entries.append((name, kind, sha, int(size) if size.isdigit() else 0))
        return entries

    def changed_files(self, pull: Pull) -> list[dict[str, Any]]:
        """Every file ``base...head`` changes, as GitHub's ``diff-entry`` list (uncapped)."""
        return self.diff_entries(pull, self.changed(pull))

    def changed(self, pull: Pull) -> list[tuple[str, str, int, int, str]]:
        """``(path, status, additions, deletions, blob sha)`` of every file ``base...head`` changes,
        sorted by path as GitHub lists them; two ``git diff`` calls whatever the number of files."""
        base, head = self.sha(pull.base), self.sha(pull.head)
        raw = git(self.repo_dir, "diff", "--no-renames", "--raw", "--no-abbrev", "-z", f"{base}...{head}")
        counts = {}
        for line in git(self.repo_dir, "diff", "--no-renames", "--numstat", "-z", f"{base}...{head}").split("\0"):
            if line:
                added, deleted, path = line.split("\t", 2)
                counts[path] = (int(added) if added != "-" else 0, int(deleted) if deleted != "-" else 0)
        status_names = {"A": "added", "D": "removed", "M": "modified", "T": "changed"}
        fields = raw.split("\0")
        files = []
        for meta, path in zip(fields[0::2], fields[1::2]):
            if not meta:
                continue
            _, _, old_sha, new_sha, code = meta.lstrip(":").split(" ")
            blob_sha = old_sha if code == "D" else new_sha
            files.append((path, status_names.get(code[0], "modified"), *counts.get(path, (0, 0)), blob_sha))
        return sorted(files)

    def diff_entries(self, pull: Pull, files: list[tuple[str, str, int, int, str]]) -> list[dict[str, Any]]:
        head = self.sha(pull.head)
        return [self.diff_entry(path, status, added, deleted, blob_sha, head)
                for path, status, added, deleted, blob_sha in files]

    # --- response objects, from GitHub's examples -------------------------------------------------

    def example(self, name: str) -> Any:
        """GitHub's example ``name``, re-pointed at this repository and this emulator's base URL."""
        text = json.dumps(self._examples[name]["value"])
        text = text.replace("octocat/Hello-World", self.full_name).replace("Hello-World", self.name)
        text = text.replace("https://api.github.com", self.base_url)
        return json.loads(text)

    def user_obj(self, login: str) -> dict[str, Any]:
        user = self.users.get(login) or User(login, 0, "")
        obj = json.loads(json.dumps(self.example("issue-comment")["user"]).replace("octocat", login))
        obj.update(id=user.id, node_id=base64.b64encode(f"04:User{user.id}".encode()).decode(), type=user.type)
        return obj

    def me_obj(self, login: str) -> dict[str, Any]:
        obj = self.example("private-user-response-with-public-and-private-profile-information")
        obj.update({k: v for k, v in self.user_obj(login).items() if k in obj})
        obj.update(name=login, email=None, company=None, blog="", location=None, bio=None, twitter_username=None)
        return obj

    def repo_obj(self) -> dict[str, Any]:
        obj = self.example("full-repository-default-response")
        obj.update(id=1, name=self.name, full_name=self.full_name, owner=self.user_obj(self.owner),
                   default_branch=self.default_branch, private=True, visibility="private", fork=False)
        obj["license"] = None
        for key in ("parent", "source", "template_repository", "organization"):
            obj.pop(key, None)
        return obj

    def pull_obj(self, pull: Pull, simple: bool = False) -> dict[str, Any]:
        obj = self.example("pull-request-simple-items")[0] if simple else self.example("pull-request")
        obj = json.loads(json.dumps(obj).replace("/1347", f"/{pull.number}"))
        files = self.changed(pull)  # changed_files counts them all, beyond the 3,000 the list shows
        obj.update(id=pull.number, number=pull.number, state=pull.state, title=pull.title, body=pull.body,
                   user=self.user_obj(pull.author), created_at=pull.created_at, updated_at=pull.created_at,
                   closed_at=None, merged_at=None, merge_commit_sha=None, assignee=None, assignees=[],
                   requested_reviewers=[], requested_teams=[], labels=[], milestone=None, draft=False,
                   author_association="COLLABORATOR" if pull.author in self.collaborators else "CONTRIBUTOR")
        for side, ref in (("head", pull.head), ("base", pull.base)):
            obj[side].update(ref=ref, sha=self.sha(ref), label=f"{self.owner}:{ref}", user=self.user_obj(self.owner))
            obj[side]["repo"]["owner"] = self.user_obj(self.owner)
        if not simple:
            obj.update(merged=False, mergeable=True, mergeable_state="clean", merged_by=None, comments=0,
                       review_comments=0, commits=1, changed_files=len(files),
                       additions=sum(f[2] for f in files), deletions=sum(f[3] for f in files))
        return obj

    def diff_entry(self, path: str, status: str, added: int, deleted: int, blob_sha: str, head: str) -> dict:
        obj = self.example("diff-entry-items")[0]
        obj.update(sha=blob_sha, filename=path, status=status, additions=added, deletions=deleted,
                   changes=added + deleted, blob_url=f"https://github.com/{self.full_name}/blob/{head}/{path}",
                   raw_url=f"https://github.com/{self.full_name}/raw/{head}/{path}",
                   contents_url=f"{self.base_url}/repos/{self.full_name}/contents/{path}?ref={head}")
        obj.pop("patch", None)
        return obj

    def comment_obj(self, comment: Comment) -> dict[str, Any]:
        obj = self.example("issue-comment")
        obj.update(id=comment.id, body=comment.body, user=self.user_obj(comment.author),
                   created_at=comment.created_at, updated_at=comment.updated_at,
                   url=f"{self.base_url}/repos/{self.full_name}/issues/comments/{comment.id}",
                   html_url=f"https://github.com/{self.full_name}/pull/{comment.issue}#issuecomment-{comment.id}",
                   issue_url=f"{self.base_url}/repos/{self.full_name}/issues/{comment.issue}")
        return obj

    def review_obj(self, review: Review) -> dict[str, Any]:
        obj = self.example("pull-request-review")
        pull_url = f"{self.base_url}/repos/{self.full_name}/pulls/{review.pull}"
        html = f"https://github.com/{self.full_name}/pull/{review.pull}#pullrequestreview-{review.id}"
        obj.update(id=review.id, user=self.user_obj(review.author), body=review.body, state=review.state,
                   commit_id=review.commit_id, submitted_at=review.submitted_at, html_url=html,
                   pull_request_url=pull_url, _links={"html": {"href": html}, "pull_request": {"href": pull_url}})
        return obj

    def directory_obj(self, path: str, ref: str, entries: list[tuple[str, str, str, int]]) -> list[dict[str, Any]]:
        """A directory as GitHub's ``content-directory``: one item per entry, without contents."""
        api = f"{self.base_url}/repos/{self.full_name}"
        items = []
        for name, kind, sha, size in entries:
            rel = f"{path.strip('/')}/{name}"
            url = f"{api}/contents/{rel}?ref={ref}"
            html = f"https://github.com/{self.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{rel}"
            git_url = f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
            download = f"https://raw.githubusercontent.com/{self.full_name}/{ref}/{rel}" if kind == "file" else None
            items.append({"type": kind, "size": size, "name": name, "path": rel, "sha": sha, "url": url,
                          "git_url": git_url, "html_url": html, "download_url": download,
                          "_links": {"self": url, "git": git_url, "html": html}})
        return items

    def content_obj(self, path: str, ref: str, data: bytes) -> dict[str, Any]:
        obj = self.example("content-file-response-if-content-is-a-file")
        sha = git(self.repo_dir, "rev-parse", f"{ref}:{path}").strip()
        api = f"{self.base_url}/repos/{self.full_name}"
        obj.update(name=path.rsplit("/", 1)[-1], path=path, sha=sha, size=len(data),
                   content=base64.encodebytes(data).decode(), url=f"{api}/contents/{path}?ref={ref}",
                   git_url=f"{api}/git/blobs/{sha}", html_url=f"https://github.com/{self.full_name}/blob/{ref}/{path}",
                   download_url=f"https://raw.githubusercontent.com/{self.full_name}/{ref}/{path}")
        obj["_links"] = {"self": obj["url"], "git": obj["git_url"], "html": obj["html_url"]}
        return obj
