"""A GitHub REST emulator on 127.0.0.1 that checks every request and response against GitHub's OpenAPI.

Each request is validated against ``github-openapi-subset.json`` before it is handled, and each
response after. A violation is recorded in :attr:`Emulator.violations` and answered with a 500 whose
message says what broke the contract, so a wrong call fails the test that made it (and a fixture also
asserts the list is empty at teardown).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.emulator.state import MAX_PER_PAGE, MAX_PULL_FILES, REVIEW_EVENTS, SPEC_PATH, Pull, Token, World, now

# Statuses real GitHub sends on any route even where the description does not list them (a bad token,
# a missing permission, a missing object, an unknown commit in a write). Their bodies are still
# validated, against basic-error.
UNDOCUMENTED_ERRORS = {401, 403, 404, 422}
R = "/repos/<owner>/<repo>"

ROUTES = [
    Rule("/user", methods=["GET"], endpoint="me"),
    Rule(R, methods=["GET"], endpoint="get_repo"),
    Rule(f"{R}/pulls", methods=["GET"], endpoint="list_pulls"),
    Rule(f"{R}/pulls", methods=["POST"], endpoint="create_pull"),
    Rule(f"{R}/pulls/<int:number>", methods=["GET"], endpoint="get_pull"),
    Rule(f"{R}/pulls/<int:number>/files", methods=["GET"], endpoint="pull_files"),
    Rule(f"{R}/pulls/<int:number>/reviews", methods=["GET"], endpoint="list_reviews"),
    Rule(f"{R}/pulls/<int:number>/reviews", methods=["POST"], endpoint="create_review"),
    Rule(f"{R}/issues/<int:number>/comments", methods=["GET"], endpoint="list_comments"),
    Rule(f"{R}/issues/<int:number>/comments", methods=["POST"], endpoint="create_comment"),
    Rule(f"{R}/issues/comments/<int:comment_id>", methods=["PATCH"], endpoint="edit_comment"),
    Rule(f"{R}/collaborators/<username>/permission", methods=["GET"], endpoint="permission"),
    Rule("/orgs/<org>/teams/<slug>/members", methods=["GET"], endpoint="team_members"),
    Rule(f"{R}/contents/<path:path>", methods=["GET"], endpoint="contents"),
    Rule(f"{R}/statuses/<sha>", methods=["POST"], endpoint="create_status"),
    Rule(f"{R}/check-runs", methods=["POST"], endpoint="create_check_run"),
    Rule(f"{R}/dispatches", methods=["POST"], endpoint="repository_dispatch"),
    Rule(f"{R}/codeowners/errors", methods=["GET"], endpoint="codeowners_errors"),
]
CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


_SPEC: Any = None


def load_spec() -> Any:
    """The pruned description as an openapi-core object, loaded once per process (~0.2 s).

    The server URL becomes relative ("/") so any host and port the emulator binds to matches.
    """
    global _SPEC
    if _SPEC is None:
        from openapi_core import OpenAPI

        spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
        spec["servers"] = [{"url": "/"}]
        _SPEC = OpenAPI.from_dict(spec)
    return _SPEC


def _openapi_request(request: Request) -> Any:
    """openapi-core's view of ``request``. GitHub's ``{path}`` in ``/contents/{path}`` spans several
    segments (``.github/CODEOWNERS``), which an OpenAPI path template cannot express, so its slashes
    are escaped for matching only."""
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest

    class _Request(WerkzeugOpenAPIRequest):
        @property
        def path(self) -> str:
            path = super().path
            head, sep, rest = path.partition("/contents/")
            return head + sep + rest.replace("/", "%2F") if sep and head.startswith("/repos/") else path

    return _Request(request)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass  # tests read Emulator.calls; the standalone server logs (see serve_forever)


class Emulator(World):
    """The world plus an HTTP server. ``start()`` returns the base URL to give PyGithub."""

    def __init__(self, repo_dir: Path | str, full_name: str = "acme/models", default_branch: str = "main") -> None:
        super().__init__(repo_dir, full_name, default_branch)
        self.violations: list[str] = []
        self.calls: list[str] = []
        # Tests may corrupt a response on its way out, to prove the response check catches it.
        self.response_hook: Callable[[str, Any], Any] | None = None
        self._urls = Map([rule.empty() for rule in ROUTES], strict_slashes=False)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._api: Any = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1", quiet: bool = True) -> str:
        self._api = load_spec()
        handler = _QuietHandler if quiet else WSGIRequestHandler
        self._server = make_server(host, port, self.wsgi, threaded=True, request_handler=handler)
        self.base_url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self) -> None:
        """Block until :meth:`stop` (the standalone server's main loop)."""
        if self._thread is not None:
            self._thread.join()

    # --- the WSGI app -----------------------------------------------------------------------------

    def wsgi(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        call = f"{request.method} {request.full_path.rstrip('?')}"
        if request.path.startswith("/_emulator/"):
            return self._control(request)
        with self.lock:
            self.calls.append(call)
            try:
                self._api.validate_request(_openapi_request(request))
            except Exception as exc:  # noqa: BLE001 - openapi-core raises a family of errors; every one is a violation
                return self._violation(f"request {call} breaks GitHub's contract: {_reason(exc)}")
            try:
                status, body, headers = self._route(request)
                if self.response_hook is not None:
                    body = self.response_hook(call, body)
            except Exception as exc:  # noqa: BLE001 - a bug in the emulator or the test's setup, never an answer GitHub gives
                return self._violation(f"internal error answering {call}: {_internal(exc)}")
            response = self._json(status, body, headers)
            try:
                self._validate_response(request, response, status, body)
            except Exception as exc:  # noqa: BLE001 - openapi-core's family again: a violation
                return self._violation(f"response to {call} breaks GitHub's contract: {_reason(exc)}")
            return response

    def _control(self, request: Request) -> Response:
        """Test-harness endpoints (not GitHub's): ``GET /_emulator/state`` shows what happened,
        ``POST /_emulator/seed`` adds users, teams, pulls, reviews, comments (the --state format)."""
        with self.lock:
            if request.method == "POST" and request.path == "/_emulator/seed":
                self.seed(request.get_json())
                return self._json(200, {"ok": True})
            if request.path == "/_emulator/state":
                return self._json(200, {
                    "violations": self.violations, "calls": self.calls, "statuses": self.statuses,
                    "dispatches": self.dispatches, "check_runs": self.check_runs,
                    "pulls": [vars(p) for p in self.pulls.values()],
                    "comments": [vars(c) for c in self.comments.values()],
                    "reviews": [vars(r) for r in self.reviews.values()]})
        return self._json(404, {"message": "unknown emulator endpoint"})

    def _validate_response(self, request: Request, response: Response, status: int, body: Any) -> None:
        from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
        from openapi_core.templating.responses.exceptions import ResponseNotFound

        try:
            self._api.validate_response(_openapi_request(request), WerkzeugOpenAPIResponse(response))
        except ResponseNotFound:
            if status not in UNDOCUMENTED_ERRORS:
                raise
            _check_basic_error(body)

    def _violation(self, reason: str) -> Response:
        self.violations.append(reason)
        return self._json(500, {"message": f"emulator: {reason}", "documentation_url": "https://docs.github.com"})

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        if status == 204:
            return Response(status=204, headers=headers)
        return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8",
                        headers=headers)

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        """(status, body, extra headers). Only :class:`HttpError` becomes an error answer: anything
        else a handler raises (a KeyError, a git lookup that failed) propagates to :meth:`_respond`,
        which records it as a violation, so an emulator bug fails the test instead of passing as 404."""
        try:
            endpoint, args = self._urls.bind_to_environ(request.environ).match()
            if "owner" in args and f"{args.pop('owner')}/{args.pop('repo')}".lower() != self.full_name.lower():
                raise HttpError(404, "Not Found")
            token = self._authenticate(request)
            request.environ["emulator.token"] = token
            answer = getattr(self, f"_{endpoint}")(request, token.login, **args)
            return answer if len(answer) == 3 else (*answer, {})
        except HttpError as exc:
            return exc.status, {"message": exc.message, "documentation_url": "https://docs.github.com/rest",
                                "status": str(exc.status)}, {}

    def _authenticate(self, request: Request) -> Token:
        header = request.headers.get("Authorization", "")
        token = header.split(" ", 1)[1] if " " in header else ""
        if token and token in self.tokens:
            return self.tokens[token]
        raise HttpError(401, "Bad credentials")

    def _commit(self, sha: str) -> str:
        """``sha`` as a commit of the repository, or GitHub's 422 for an unknown one."""
        try:
            return self.sha(sha)
        except LookupError:
            raise HttpError(422, f"No commit found for SHA: {sha}") from None

    # --- handlers: each returns (status, JSON body) ------------------------------------------------

    def _me(self, request: Request, login: str) -> tuple[int, Any]:
        return 200, self.me_obj(login)

    def _get_repo(self, request: Request, login: str) -> tuple[int, Any]:
        body = self.repo_obj()
        # GitHub answers an authenticated request with the token's own permissions on the repository.
        role = self.collaborators.get(login, "none")
        body["permissions"] = {p: _grants(role, p) for p in ("admin", "maintain", "push", "triage", "pull")}
        return 200, body

    def _list_pulls(self, request: Request, login: str) -> tuple[int, Any]:
        state, head = request.args.get("state", "open"), request.args.get("head")
        pulls = [p for p in self.pulls.values() if state in ("all", p.state)]
        if head:
            pulls = [p for p in pulls if f"{self.owner}:{p.head}" == head or p.head == head]
        return 200, [self.pull_obj(p, simple=True) for p in pulls]

    def _create_pull(self, request: Request, login: str) -> tuple[int, Any]:
        data = request.get_json()
        head = data["head"].split(":", 1)[-1]
        try:
            self.sha(head), self.sha(data["base"])
        except LookupError:
            raise HttpError(422, "Validation Failed: head or base branch does not exist") from None
        if any(p.head == head and p.base == data["base"] and p.state == "open" for p in self.pulls.values()):
            raise HttpError(422, f"A pull request already exists for {self.owner}:{head}.")
        number = self.open_pull(head, data["base"], data.get("title", head), login, data.get("body"))
        return 201, self.pull_obj(self.pulls[number])

    def _get_pull(self, request: Request, login: str, number: int) -> tuple[int, Any]:
        return 200, self.pull_obj(self._pull(number))

    def _pull_files(self, request: Request, login: str, number: int) -> tuple[int, Any, dict[str, str]]:
        """GitHub's limits: at most 3,000 files in all, ``per_page`` at most 100 (30 by default),
        pages linked with a ``Link`` header; the pull request's ``changed_files`` keeps the real count."""
        pull = self._pull(number)
        per_page = min(max(_int_arg(request, "per_page", 30), 1), MAX_PER_PAGE)
        page = max(_int_arg(request, "page", 1), 1)
        listed = self.changed(pull)[:MAX_PULL_FILES]
        chunk = listed[(page - 1) * per_page:page * per_page]
        headers = {}
        if page * per_page < len(listed):
            base = f"{self.base_url}{request.path}?per_page={per_page}"
            last = -(-len(listed) // per_page)
            headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return 200, self.diff_entries(pull, chunk), headers

    def _list_reviews(self, request: Request, login: str, number: int) -> tuple[int, Any]:
        self._pull(number)
        reviews = sorted((r for r in self.reviews.values() if r.pull == number), key=lambda r: r.id)
        return 200, [self.review_obj(r) for r in reviews]

    def _create_review(self, request: Request, login: str, number: int) -> tuple[int, Any]:
        pull, data = self._pull(number), request.get_json() or {}
        if pull.author == login and data.get("event") in ("APPROVE", "REQUEST_CHANGES"):
            raise HttpError(422, "Can not approve your own pull request")
        event = data.get("event", "")
        if event not in REVIEW_EVENTS and event:
            raise HttpError(422, f"Unexpected event {event}")
        review_id = self.add_review(number, login, event, data.get("body", ""), data.get("commit_id"))
        return 200, self.review_obj(self.reviews[review_id])

    def _list_comments(self, request: Request, login: str, number: int) -> tuple[int, Any]:
        self._pull(number)
        comments = sorted((c for c in self.comments.values() if c.issue == number), key=lambda c: c.id)
        return 200, [self.comment_obj(c) for c in comments]

    def _create_comment(self, request: Request, login: str, number: int) -> tuple[int, Any]:
        self._pull(number)
        comment_id = self.add_comment(number, login, request.get_json()["body"])
        return 201, self.comment_obj(self.comments[comment_id])

    def _edit_comment(self, request: Request, login: str, comment_id: int) -> tuple[int, Any]:
        comment = self.comments.get(comment_id)
        if comment is None:
            raise HttpError(404, "Not Found")
        if comment.author != login and self.collaborators.get(login) not in ("admin", "maintain"):
            raise HttpError(403, "Must have admin rights to Repository.")
        comment.body, comment.updated_at = request.get_json()["body"], now()
        return 200, self.comment_obj(comment)

    def _permission(self, request: Request, login: str, username: str) -> tuple[int, Any]:
        if username not in self.users:
            raise HttpError(404, "Not Found")
        role = self.collaborators.get(username, "none")
        # The legacy `permission` field folds maintain into write and triage into read; role_name does not.
        legacy = {"maintain": "write", "triage": "read"}.get(role, role)
        body = self.example("repository-collaborator-permission-response-if-user-has-admin-permissions")
        body["user"].update({k: v for k, v in self.user_obj(username).items() if k in body["user"]})
        body.update(permission=legacy, role_name=role)
        body["user"]["role_name"] = role
        body["user"]["permissions"] = {p: _grants(role, p) for p in ("admin", "maintain", "push", "triage", "pull")}
        return 200, body

    def _team_members(self, request: Request, login: str, org: str, slug: str) -> tuple[int, Any]:
        token: Token = request.environ["emulator.token"]
        if token.kind == "installation":
            # An Actions GITHUB_TOKEN has repository permissions only; GitHub refuses organization data.
            raise HttpError(403, "Resource not accessible by integration")
        if not token.can_read_org():
            raise HttpError(404, "Not Found")  # a classic PAT without read:org does not see the team
        members = self.teams.get((org.lower(), slug.lower()))
        if members is None:
            raise HttpError(404, "Not Found")
        template = self.example("team-member-items")[0]
        return 200, [{**template, **self.user_obj(m), "role": "member"} for m in members]

    def _contents(self, request: Request, login: str, path: str) -> tuple[int, Any]:
        ref = request.args.get("ref") or self.default_branch
        data = self.blob(ref, path)
        if data is not None:
            return 200, self.content_obj(path, ref, data)
        entries = self.tree(ref, path)
        if entries is None:
            raise HttpError(404, "Not Found")
        return 200, self.directory_obj(path, ref, entries)

    def _create_status(self, request: Request, login: str, sha: str) -> tuple[int, Any]:
        self._commit(sha)
        data = request.get_json()
        body = self.example("status")
        body.update(id=len(self.statuses) + 1, state=data["state"], description=data.get("description"),
                    target_url=data.get("target_url"), context=data.get("context", "default"),
                    created_at=now(), updated_at=now(), creator=self.user_obj(login),
                    url=f"{self.base_url}/repos/{self.full_name}/statuses/{sha}")
        self.statuses.append({"sha": sha, **data})
        return 201, body

    def _create_check_run(self, request: Request, login: str) -> tuple[int, Any]:
        data = request.get_json()
        self._commit(data["head_sha"])
        body = self.example("check-run-example-of-in-progress-conclusion")
        body.update(id=len(self.check_runs) + 1, name=data["name"], head_sha=data["head_sha"],
                    status=data.get("status", "queued"), conclusion=data.get("conclusion"))
        self.check_runs.append(data)
        return 201, body

    def _repository_dispatch(self, request: Request, login: str) -> tuple[int, Any]:
        self.dispatches.append(request.get_json())
        return 204, None

    def _codeowners_errors(self, request: Request, login: str) -> tuple[int, Any]:
        ref = request.args.get("ref") or self.default_branch
        for path in CODEOWNERS_PATHS:
            data = self.blob(ref, path)
            if data is not None:
                return 200, {"errors": self._owner_errors(path, data.decode("utf-8", "replace"))}
        raise HttpError(404, "Not Found")

    def _owner_errors(self, path: str, text: str) -> list[dict[str, Any]]:
        """GitHub's checks that matter to us: unknown users or teams, and unsupported syntax."""
        errors = []
        for number, line in enumerate(text.splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if fields[0].startswith("!") or "[" in fields[0]:
                errors.append(_owner_error(path, number, 1, line, "Invalid pattern"))
            for owner in fields[1:]:
                known = self._owner_known(owner)
                if not known:
                    errors.append(_owner_error(path, number, line.index(owner) + 1, line, "Unknown owner"))
        return errors

    def _owner_known(self, owner: str) -> bool:
        if "@" in owner and not owner.startswith("@"):
            return True  # an e-mail address: GitHub checks it against verified e-mails; we accept it
        name = owner[1:]
        if "/" in name:
            org, slug = name.split("/", 1)
            return (org.lower(), slug.lower()) in self.teams
        return name in self.users

    def _pull(self, number: int) -> Pull:
        if number not in self.pulls:
            raise HttpError(404, "Not Found")
        return self.pulls[number]


def _grants(role: str, permission: str) -> bool:
    order = ["read", "triage", "write", "maintain", "admin"]
    wanted = {"pull": "read", "push": "write"}.get(permission, permission)
    return role in order and order.index(role) >= order.index(wanted)


def _owner_error(path: str, line: int, column: int, source: str, kind: str) -> dict[str, Any]:
    return {"line": line, "column": column, "kind": kind, "source": source, "suggestion": None,
            "message": f"{kind} on line {line}:\n\n  {source}\n  {' ' * (column - 1)}^", "path": path}


def _int_arg(request: Request, name: str, default: int) -> int:
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 10 else default


def _internal(exc: Exception) -> str:
    """The exception and where it was raised (the innermost frame of the emulator's own code)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/tests/emulator/" in f.filename]
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno} ({frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"


def _check_basic_error(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        raise ValueError(f"an error body must be a basic-error with a 'message', got {body!r}")


def _reason(exc: Exception) -> str:
    """openapi-core nests the useful part (which field, what rule) in schema_errors; surface that,
    not the whole offending value."""
    errors = getattr(exc.__cause__, "schema_errors", None) or getattr(exc, "schema_errors", None) or []
    details = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}" for e in errors]
    return f"{type(exc).__name__}: " + ("; ".join(details) if details else str(exc)[:400])
