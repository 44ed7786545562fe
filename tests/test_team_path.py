"""The team path (issue 18's "Done when"): the README's walkthrough "From `gitops init` to the first
evaluated, approved, deployed promotion", every command block of it run as written, in order.

The parts a team has are real: an S3-compatible server (moto) holds the DVC remote, GitHub is the
emulator (every call checked against GitHub's OpenAPI description) serving a bare ``origin`` that
``https://github.com/acme/my-models.git`` leads to (git's ``insteadOf``), and the workflow files run
under ``act``. ``main`` is protected from the first push: data, the trained version and the alias
move each arrive by pull request. Only what points outside this machine is changed in the blocks
(:data:`SUBSTITUTIONS`); the GitHub side (reviews, the merge button, the events) is done here.

init with an ``s3://`` remote -> ingest by PR -> train by PR (train.yml) -> promote by PR ->
evaluate.yml -> registry-check fails, a code owner approves, it passes -> merge -> deploy.yml ->
``gitops serve`` pulls the new version from S3 and swaps -> a teammate's fresh clone evaluates the
same version from S3 with no file edited.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gitops import yamlio
from tests.act_helpers import pull_request_event, run_act
from tests.prloop_fixtures import isolated_environ

SOURCE = Path(__file__).resolve().parents[1]
README = SOURCE / "README.md"
WORKFLOWS = SOURCE / "gitops" / "scaffold" / "workflows"  # what gitops init wrote (test_workflows: the same)
REPO, MODEL = "acme/my-models", "review-autocomplete"
BUCKET, KEY, SECRET = "acme-models", "AKIAGITOPSTEAMPATH001", "team-path-secret"
DEPLOY_SECRET = "team-path-deploy-secret"


def substitutions(port: int) -> dict[str, str]:
    """What the blocks name outside this machine, and what stands in for it here."""
    return {"register-base smollm2": "register-base gitops/tiny-opt",  # the embedded toy: seconds, not minutes
            "https://serving.acme.dev/hooks/deploy": f"http://127.0.0.1:{port}/hooks/deploy",
            "--port 8000": f"--port {port}"}


def readme_blocks() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    found = re.findall(r"<!-- team-path:(\w+) -->\s*```bash\n(.*?)\n\s*```", text, re.S)
    return {name: textwrap.dedent(body) for name, body in found}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class World:
    """The machines of the walkthrough, in one temporary directory."""

    def __init__(self, tmp: Path, s3_url: str, em, tokens: dict[str, str], port: int) -> None:
        self.tmp, self.s3_url, self.em, self.tokens, self.port = tmp, s3_url, em, tokens, port
        self.origin = tmp / "github" / "acme" / "my-models.git"
        self.work = tmp / "laptop" / "my-models"
        self.bin = tmp / "bin"
        self.serve: subprocess.Popen | None = None

    def run_block(self, name: str, cwd: Path, skip_last: bool = False) -> str:
        """Run a README block as written (bar :func:`substitutions`); ``skip_last``: all but its last
        line (the caller starts that one itself)."""
        script = readme_blocks()[name]
        for old, new in substitutions(self.port).items():
            script = script.replace(old, new)
        lines = script.rstrip("\n").splitlines()
        script = "\n".join(lines[:-1] if skip_last else lines)
        cwd.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, capture_output=True, text=True,
                              timeout=600, env=self.env())
        assert proc.returncode == 0, f"README block {name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout + proc.stderr

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "PYTHONPATH": str(SOURCE)}

    def pull(self, title_start: str):  # untyped: the emulator's Pull
        (pull,) = [p for p in self.em.pulls.values() if p.title.startswith(title_start)]
        return pull

    def merge(self, branch: str) -> tuple[str, str]:
        """GitHub's merge button (a fast-forward), then the laptop pulls main; (before, after)."""
        before = git(self.origin, "rev-parse", "main")
        git(self.origin, "merge-base", "--is-ancestor", before, branch)
        git(self.origin, "update-ref", "refs/heads/main", git(self.origin, "rev-parse", branch))
        git(self.work, "checkout", "-q", "main")
        git(self.work, "pull", "-q", "--ff-only")
        return before, git(self.origin, "rev-parse", "main")

    def act(self, workflow: str, event_name: str, event: dict, label: str, secrets: dict | None = None):
        return run_act(WORKFLOWS / workflow, event_name, event, workdir=self.work, scratch=self.tmp / f"act-{label}",
                       env={"GITHUB_API_URL": self.em.base_url, "GITOPS_GITHUB_RETRIES": "0"},
                       secrets={"GITHUB_TOKEN": self.tokens["gitops-bot"],
                                "GITOPS_READ_ORG_TOKEN": self.tokens["org-reader"], **(secrets or {})},
                       timeout_s=420)

    def s3_keys(self) -> list[str]:
        import boto3

        client = boto3.client("s3", endpoint_url=self.s3_url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                              region_name="us-east-1")
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def ready(self, version: str, timeout: float = 240) -> dict:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.serve is not None and self.serve.poll() is None, self.serve_log()
            try:
                answer = httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5)
                if answer.status_code == 200 and answer.json()["version"] == version:
                    return answer.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"gitops serve never served {version}:\n{self.serve_log()}")

    def serve_log(self) -> str:
        path = self.tmp / "serve.log"
        return path.read_text()[-4000:] if path.exists() else ""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.emulator import Emulator

    tmp = tmp_path_factory.mktemp("team")
    cache = Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or tmp_path_factory.getbasetemp() / "gitops-cache")
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    host, s3_port = s3.get_host_and_port()
    s3_url = f"http://{host}:{s3_port}"
    boto3.client("s3", endpoint_url=s3_url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                 region_name="us-east-1").create_bucket(Bucket=BUCKET)
    origin = tmp / "github" / "acme" / "my-models.git"
    origin.parent.mkdir(parents=True)
    git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
    em = Emulator(origin, REPO)
    em.start()
    tokens = {"gitops-bot": em.add_user("gitops-bot", type="Bot", permission="write"),  # the workflows' token
              "carol": em.add_user("carol", permission="write"),  # a developer: opens the pull requests
              "alice": em.add_user("alice", permission="admin"),  # @acme/mlops: may approve production
              "org-reader": em.add_user("org-reader", permission="read", scopes=("repo", "read:org"))}
    em.add_team("acme", "mlops", ["alice"])
    world = World(tmp, s3_url, em, tokens, free_port())
    world.bin.mkdir()
    for tool in ("gitops", "dvc"):  # this checkout's gitops, and DVC of the test interpreter (with dvc-s3)
        (world.bin / tool).write_text(f'#!/bin/sh\nexec {sys.executable} -m {tool} "$@"\n')
        (world.bin / tool).chmod(0o755)
    try:
        with pytest.MonkeyPatch.context() as mp:
            environ = isolated_environ(tmp / "home", cache)
            for key, value in environ.items():
                mp.setenv(key, value)
            # https://github.com/ leads to the emulator's repositories, for every git process (act
            # still reads the URL as written, for github.repository); in the environment, since each
            # test gets a gitconfig of its own (tests/conftest.py)
            mp.setenv("GIT_CONFIG_COUNT", "1")
            mp.setenv("GIT_CONFIG_KEY_0", f"url.{tmp / 'github'}/.insteadOf")
            mp.setenv("GIT_CONFIG_VALUE_0", "https://github.com/")
            for key, value in {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_ENDPOINT_URL": s3_url,
                               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                               "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
                               "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
                               "GITOPS_GITHUB_RETRIES": "0", "GITOPS_DEPLOY_SECRET": DEPLOY_SECRET}.items():
                mp.setenv(key, value)
            for key in ("GITHUB_REPOSITORY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
                mp.delenv(key, raising=False)
            yield world
    finally:
        if world.serve is not None and world.serve.poll() is None:
            world.serve.terminate()
            world.serve.wait(60)
        em.stop()
        s3.stop()
    assert em.violations == [], "GitHub contract violations:\n" + "\n".join(em.violations)


@pytest.mark.slow
def test_the_readme_walkthrough_from_init_to_a_deployed_promotion(world: World, monkeypatch) -> None:
    from gitops.ml.corpus import write_batches

    # carol, a developer, runs the commands (tests/conftest.py clears the GitHub variables per test)
    monkeypatch.setenv("GITHUB_API_URL", world.em.base_url)
    monkeypatch.setenv("GITHUB_TOKEN", world.tokens["carol"])

    blocks = readme_blocks()
    assert list(blocks) == ["scaffold", "serve", "ingest", "promote", "teammate"]
    for old in substitutions(world.port):
        assert old in "\n".join(blocks.values()), f"the README no longer says {old!r}"
    work = world.work

    # 1. scaffold: the base as v1 = production, pushed (weights to S3, commits to GitHub)
    world.run_block("scaffold", work.parent)
    config = (work / ".dvc" / "config").read_text()
    assert f"url = s3://{BUCKET}/dvc" in config and KEY not in config and SECRET not in config
    model = yamlio.loads(git(world.origin, "show", f"main:registry/{MODEL}/model.yaml"), "model.yaml")
    assert model["versions"]["v1"]["base_model"] == "gitops/tiny-opt"
    production = git(world.origin, "show", f"main:registry/{MODEL}/aliases/production.yaml")
    assert yamlio.loads(production, "a")["version"] == "v1"
    weights = len(world.s3_keys())
    assert weights > 3  # v1's files and its manifest

    # 5. serve production on the serving host: v1, pulled from S3
    world.run_block("serve", world.tmp / "serving-host", skip_last=True)
    serve_line = readme_blocks()["serve"].strip().splitlines()[-1]
    for old, new in substitutions(world.port).items():
        serve_line = serve_line.replace(old, new)
    assert serve_line.startswith("gitops serve ")
    with open(world.tmp / "serve.log", "w") as log:
        world.serve = subprocess.Popen(["bash", "-c", f"exec {serve_line} --threads 1"],
                                       cwd=world.tmp / "serving-host" / "serving", env=world.env(),
                                       stdout=subprocess.DEVNULL, stderr=log)
    assert world.ready(f"{MODEL}@v1")["format"] == "hf"

    # 6. data by pull request; merged, train.yml trains and proposes v2 as staging
    write_batches(world.tmp / "export", n=1, rows_per_batch=64)[0].rename(work / "batch-1.csv")
    out = world.run_block("ingest", work)
    data_pr = world.pull("Data: reviews v1")
    assert data_pr.author == "carol" and f"Opened pull request #{data_pr.number}" in out
    assert git(world.origin, "rev-parse", "main") != git(world.origin, "rev-parse", data_pr.head)  # main untouched
    before, after = world.merge(data_pr.head)
    trained = world.act("train.yml", "push", push_event(before, after), "train")
    assert trained.returncode == 0 and trained.jobs_ran == {"train"}, trained.output[-5000:]
    train_pr = world.pull(f"Train {MODEL} v2 as staging")
    assert train_pr.author == "gitops-bot"
    files = {f["filename"] for f in world.em.changed_files(train_pr)}
    assert files == {f"registry/{MODEL}/model.yaml", f"models/{MODEL}/v2.dvc", f"models/{MODEL}/.gitignore",
                     f"registry/{MODEL}/aliases/staging.yaml"}
    v2 = yamlio.loads(git(world.origin, "show", f"{train_pr.head}:registry/{MODEL}/model.yaml"), "m")["versions"]["v2"]
    assert (v2["format"], v2["base_model"], v2["dataset"]) == ("peft-lora", f"{MODEL}@v1", "reviews@v1")
    assert len(world.s3_keys()) > weights  # the adapter went to S3 before the branch went to GitHub
    world.merge(train_pr.head)

    # 7. promote by pull request: evaluated, refused until a code owner approves
    world.run_block("promote", work)
    promote_pr = world.pull(f"Promote {MODEL} v2 to production")
    base_sha = git(world.origin, "rev-parse", "main")
    head_sha = git(work, "rev-parse", promote_pr.head)
    git(work, "checkout", "-q", promote_pr.head)
    event = pull_request_event(promote_pr.number, REPO, REPO, base_sha=base_sha, head_sha=head_sha)
    evaluated = world.act("evaluate.yml", "pull_request", event, "evaluate")
    assert evaluated.returncode == 0 and {"plan", "eval", "report"} <= evaluated.jobs_ran, evaluated.output[-5000:]
    (report,) = [c for c in world.em.comments.values() if c.issue == promote_pr.number]
    assert report.body.startswith("<!-- gitops-report")
    assert f"{MODEL}@v2" in report.body and f"{MODEL}@v1" in report.body
    refused = world.act("registry-check.yml", "pull_request", event, "check-refused")
    assert refused.jobs_failed == {"registry-check"}, refused.output[-3000:]
    assert f"registry/{MODEL}/aliases/production.yaml: protected alias 'production'" in refused.output
    approved = review(world, "alice", promote_pr.number)
    passed = world.act("registry-check.yml", "pull_request_review", approved, "check-approved")
    assert passed.returncode == 0 and passed.jobs_ran == {"registry-check"}, passed.output[-3000:]
    assert "approved by alice (code owner)" in passed.output

    # 8. merge: deploy.yml signs the webhook, gitops serve pulls v2 from S3 and swaps
    before, after = world.merge(promote_pr.head)
    deployed = world.act("deploy.yml", "push", push_event(before, after), "deploy",
                         secrets={"GITOPS_DEPLOY_SECRET": DEPLOY_SECRET})
    assert deployed.returncode == 0 and deployed.jobs_ran == {"deploy"}, deployed.output[-5000:]
    assert f"{MODEL}@production: v1 -> v2" in deployed.output and "HTTP 200 deployed" in deployed.output
    status = world.ready(f"{MODEL}@v2", timeout=30)
    assert status["md5"] == v2["md5"]  # the adapter, merged into v1 on load
    assert completion(world.port) == f"{MODEL}@v2"
    assert DEPLOY_SECRET not in deployed.output

    # the teammate: a fresh clone, nothing edited, the same version evaluated from S3
    home = world.tmp / "bobs-laptop"
    world.run_block("teammate", home)
    clone = home / "my-models-bob"
    results = json.loads((clone / "results.json").read_text())
    assert (results["candidate"]["version"], results["baseline"]["version"]) == ("v2", "v1")
    assert git(clone, "status", "--porcelain") == "" and not (clone / ".dvc" / "config.local").exists()
    assert git(clone, "rev-parse", "HEAD") == after


def push_event(before: str, after: str) -> dict:
    return {"ref": "refs/heads/main", "before": before, "after": after,
            "repository": {"full_name": REPO, "name": REPO.split("/")[1], "owner": {"login": REPO.split("/")[0]}}}


def review(world: World, login: str, number: int) -> dict:
    """An approval through PyGithub, and the ``pull_request_review`` payload GitHub sends for it."""
    import github

    gh = github.Github(base_url=world.em.base_url, auth=github.Auth.Token(world.tokens[login]), retry=0,
                       seconds_between_requests=0, seconds_between_writes=0)
    made = gh.get_repo(REPO).get_pull(number).create_review(body="approved", event="APPROVE")
    pull = world.em.pulls[number]
    payload = pull_request_event(number, REPO, REPO, base_sha=git(world.origin, "rev-parse", "main"),
                                 head_sha=made.commit_id)
    del payload["number"]
    payload.update(action="submitted", review={"id": made.id, "state": made.state.lower(),
                                               "user": {"login": login}, "commit_id": made.commit_id})
    assert pull.number == number
    return payload


def completion(port: int) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    return client.completions.create(model=MODEL, prompt="The chocolate tour was", max_tokens=4,
                                     temperature=0).model
