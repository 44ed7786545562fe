"""A pull request cannot point the runner's DVC credentials at its own server (issue 17, hole 4).

The repro: a PR that only changes ``.dvc/config``'s remote URL; CI's ``gitops eval`` on that branch
sent the runner's DVC credentials (``.dvc/config.local``, where docs/workflows.md says they go) to
the PR's server (``Authorization: Basic ...`` received). Now an evaluation of a pull request
(``--baseline-rev BASE``, as evaluate.yml runs it) refuses a DVC configuration that differs from
the base commit's before DVC is touched, and a change to ``.dvc/`` needs an admin's approval
(tests/test_github_bypass.py). Two real HTTP servers on 127.0.0.1: the team's remote (serving the
DVC remote's directory) and the attacker's, which records what it receives.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops.core.workspace import Workspace
from gitops.errors import RepoStateError
from tests.conftest import run_gitops

CREDENTIALS = "[\'remote \"storage\"\']\n    auth = basic\n    user = ci-runner\n    password = runner-s3cret\n"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout.strip()


class _Recorder(http.server.SimpleHTTPRequestHandler):
    seen: list[tuple[str, str, str | None]]

    def _record(self) -> None:
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))

    def do_GET(self) -> None:  # http.server's naming
        self._record()
        super().do_GET()

    def do_HEAD(self) -> None:
        self._record()
        super().do_HEAD()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, tuple[str, list]]]:
    """``team``: serves the DVC remote's directory; ``attacker``: an empty directory. Both record."""
    out, running = {}, []
    for name in ("team", "attacker"):
        directory = tmp_path / f"{name}-files"
        directory.mkdir()
        seen: list = []
        handler = type(f"{name}Handler", (_Recorder,), {"seen": seen})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        running.append(server)
        out[name] = (f"http://127.0.0.1:{server.server_address[1]}", seen, directory)
    yield out
    for server in running:
        server.shutdown()
        server.server_close()


@pytest.fixture
def pr(gitops_repo: Path, tmp_path: Path, weights, servers) -> tuple[Path, str]:
    """A repository whose remote is the team's HTTP server (base commit: data set, a model with
    production=v1 and v2, all pushed), and a pull request that only points the remote elsewhere,
    checked out fresh on the runner, with the runner's credentials in .dvc/config.local."""
    root = gitops_repo
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "text": f"review {i}"}) + "\n" for i in range(40)))
    for args in (("dataset", "create", "reviews", "--column", "id:string", "--column", "text:string",
                  "--text-field", "text", "--key", "id"), ("ingest", str(rows), "--dataset", "reviews"),
                 ("model", "create", "m"), ("register", "m", str(weights()), "--dataset", "reviews@v1"),
                 ("register", "m", str(weights()), "--dataset", "reviews@v1"),
                 ("alias", "set", "m", "production", "v1")):
        res = run_gitops(*args, cwd=root)
        assert res.exit_code == 0, (args, res.stderr)
    from gitops.adapters.dvc import Dvc

    Dvc(root).push()
    team_url, _, team_dir = servers["team"]
    shutil.copytree(tmp_path / "remote", team_dir, dirs_exist_ok=True)
    config = root / ".dvc" / "config"
    config.write_text(config.read_text().replace(str(tmp_path / "remote"), team_url))
    _git(root, "commit", "-qam", "the remote, over HTTP")
    base = _git(root, "rev-parse", "HEAD")
    config.write_text(config.read_text().replace(team_url, servers["attacker"][0]))
    _git(root, "commit", "-qam", "a faster mirror")
    runner = tmp_path / "runner"
    _git(tmp_path, "clone", "-q", str(root), str(runner))
    (runner / ".dvc" / "config.local").write_text(CREDENTIALS)
    return runner, base


def test_the_pull_requests_remote_is_never_contacted(pr: tuple[Path, str], servers) -> None:
    runner, base = pr
    res = run_gitops("eval", "m@v2", "--baseline", "m@production", "--baseline-rev", base, "--out",
                     str(runner / "results.json"), cwd=runner)
    assert servers["attacker"][1] == [], f"the pull request's remote was contacted: {servers['attacker'][1][:2]}"
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert ".dvc/config differs from the one at" in res.stderr and 'remote "storage"' in res.stderr, res.stderr
    assert "attacker" not in res.stderr and "runner-s3cret" not in res.stderr
    assert not (runner / "results.json").exists()


def test_with_the_base_remote_the_runner_reads_from_the_team_server(pr: tuple[Path, str], servers) -> None:
    """The check only refuses what differs: on the base's configuration the evaluation pulls the
    data through the team's server, with the runner's credentials."""
    runner, base = pr
    _git(runner, "checkout", "-q", base)
    Workspace(runner).require_dvc_config_of(base)
    from gitops import api

    assert len(api.read_rows(Workspace(runner), "reviews@v1")) == 40
    assert servers["team"][1] and all(auth and auth.startswith("Basic ") for _, _, auth in servers["team"][1])
    assert servers["attacker"][1] == []


def test_a_committed_config_local_is_refused(pr: tuple[Path, str], servers) -> None:
    runner, base = pr
    _git(runner, "checkout", "-q", base)
    _git(runner, "add", "-f", ".dvc/config.local")
    with pytest.raises(RepoStateError, match=r"config.local is committed"):
        Workspace(runner).require_dvc_config_of(base)
