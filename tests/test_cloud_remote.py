"""DVC remotes as teams have them: S3 for real, against moto's S3-compatible server on 127.0.0.1.

One module-scoped server and repository: ``gitops init`` with an ``s3://`` remote and its
``endpointurl`` (committed) and credentials (``.dvc/config.local``, never committed), ``register
--push``, ``ingest --push``, ``check --remote``; a fresh clone with credentials in the environment
only pulls and evaluates. A wrong credential, a missing bucket and a missing plugin are one
sentence each, before anything is committed. And the default local remote is recorded relative to
the repository, so a clone beside it finds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import git_state, run_gitops
from tests.prloop_fixtures import isolated_environ

BUCKET = "acme-models"
KEY, SECRET = "AKIAGITOPSTEST000001", "gitops-test-secret"  # moto (auth off) takes any; never committed


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


@dataclass
class S3:
    url: str  # the endpoint, http://127.0.0.1:PORT
    client: object  # boto3's S3 client on it
    repo: Path
    origin: Path
    tmp: Path

    def keys(self, prefix: str = "dvc/") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def auth(self, on: bool) -> None:
        """moto checks credentials only when told to (its /moto-api/reset-auth): an unknown access
        key is then refused on the first request. (Its signature check mishandles prefixed listings,
        so the rest of the module runs with authentication off.)"""
        import requests

        requests.post(f"{self.url}/moto-api/reset-auth", data="0" if on else "inf", timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    import boto3
    from moto.server import ThreadedMotoServer

    tmp = tmp_path_factory.mktemp("s3")
    cache = Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or tmp_path_factory.getbasetemp() / "gitops-cache")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key, value in isolated_environ(tmp / "home", cache).items():
                mp.setenv(key, value)
            for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                        "AWS_PROFILE"):
                mp.delenv(key, raising=False)
            mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
            mp.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credentials from an instance: no waiting for one
            mp.setenv("AWS_CONFIG_FILE", str(tmp / "no-aws-config"))
            mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "no-aws-credentials"))
            yield _scaffold(S3(url, client, tmp / "models", tmp / "origin.git", tmp))
    finally:
        server.stop()


def _scaffold(s3: S3) -> S3:
    """``gitops init`` with the S3 remote, its endpoint and the credentials; an origin to push to."""
    res = run_gitops("init", str(s3.repo), "--remote", f"s3://{BUCKET}/dvc", "--remote-option",
                     f"endpointurl={s3.url}", "--remote-option", f"access_key_id={KEY}", "--remote-option",
                     f"secret_access_key={SECRET}", "--github-repo", "acme/models")
    assert res.exit_code == 0, res.stderr
    assert "written to .dvc/config.local (never committed): access_key_id, secret_access_key" in res.stdout
    git(s3.tmp, "init", "-q", "--bare", "-b", "main", str(s3.origin))
    git(s3.repo, "remote", "add", "origin", str(s3.origin))
    git(s3.repo, "push", "-q", "-u", "origin", "main")
    return s3


@pytest.mark.slow
def test_s3_remote_from_init_to_a_teammates_clone(s3: S3) -> None:
    from gitops.ml.basemodel import default_base_model
    from gitops.ml.corpus import write_batches

    config = (s3.repo / ".dvc" / "config").read_text()
    assert f"url = s3://{BUCKET}/dvc" in config and f"endpointurl = {s3.url}" in config
    assert KEY not in config and SECRET not in config
    local = (s3.repo / ".dvc" / "config.local").read_text()
    assert KEY in local and SECRET in local
    assert ".dvc/config.local" not in git(s3.repo, "ls-files")  # DVC's own .gitignore keeps it out

    run = [("model", "create", "review"),
           ("register", "review", str(default_base_model()), "--base-model", "gitops/tiny-opt", "--push"),
           ("dataset", "create", "reviews", "--column", "id:string", "--column", "product:string", "--column",
            "rating:int", "--column", "text:string", "--text-field", "text", "--key", "id"),
           ("ingest", str(write_batches(s3.tmp / "batches", n=1, rows_per_batch=80)[0]), "--dataset", "reviews",
            "--push")]
    for args in run:
        res = run_gitops(*args, "-C", str(s3.repo))
        assert res.exit_code == 0, (args, res.stderr)
    git(s3.repo, "push", "-q", "origin", "main")  # the dataset's own commit went with ingest's push
    # S3.keys() lists the bucket (not a dict's keys)
    assert any(k.startswith("dvc/files/md5/") and k.endswith(".dir") for k in s3.keys())  # noqa: SIM118
    pushed = len(s3.keys())
    assert pushed > 5  # the weights' files, the batch and its key shard, and both manifests
    res = run_gitops("check", "--remote", "-C", str(s3.repo))
    assert res.exit_code == 0 and "The registry is valid." in res.stdout, res.stderr
    assert SECRET not in git(s3.repo, "log", "-p", "--all")  # no commit ever held the secret

    # a teammate: a fresh clone, credentials in the environment only, no file edited
    clone = s3.tmp / "clone"
    git(s3.tmp, "clone", "-q", str(s3.origin), str(clone))
    assert not (clone / ".dvc" / "config.local").exists()
    res = run_gitops("check", "--remote", "-C", str(clone))
    assert res.exit_code == 1 and f"the DVC remote s3://{BUCKET}/dvc found no credentials here" in res.stderr, \
        res.stderr
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", KEY)
        mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        res = run_gitops("check", "--remote", "-C", str(clone))
        assert res.exit_code == 0, res.stderr
        out = s3.tmp / "results.json"
        res = run_gitops("eval", "review@v1", "--no-baseline", "--dataset", "reviews@v1", "--max-rows", "6",
                         "--samples", "1", "--max-new-tokens", "4", "--threads", "1", "--no-judge",
                         "--out", str(out), "-C", str(clone))
        assert res.exit_code == 0, res.stderr
    results = json.loads(out.read_text())
    assert results["candidate"]["version"] == "v1" and results["candidate"]["metrics"]["perplexity"] > 1
    assert (clone / "models" / "review" / "v1").is_dir()  # pulled from S3
    assert len(s3.keys()) == pushed  # reading pushed nothing


def test_a_wrong_credential_and_a_missing_bucket_are_one_sentence_and_commit_nothing(s3: S3, tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_text("weights that are never committed")
    before = git_state(s3.repo)
    s3.auth(True)
    try:
        for args in (("check", "--remote"), ("register", "review", str(tmp_path / "w"), "--push")):
            res = run_gitops(*args, "-C", str(s3.repo))
            assert res.exit_code == 1, (args, res.stdout, res.stderr)
            assert f"the DVC remote s3://{BUCKET}/dvc refused the credentials" in res.stderr, res.stderr
            assert "AWS_ACCESS_KEY_ID" in res.stderr and "Traceback" not in res.stderr, res.stderr
            assert res.stderr.count("\n") == (2 if args[0] == "check" else 1), res.stderr  # check: listed
    finally:
        s3.auth(False)
    assert git_state(s3.repo) == before

    local = s3.repo / ".dvc" / "config.local"  # a machine's own setting, over the committed one
    kept = local.read_text()
    local.write_text(kept.rstrip("\n") + "\n    url = s3://no-such-bucket/dvc\n")
    try:
        for args in (("check", "--remote"), ("register", "review", str(tmp_path / "w"), "--push")):
            res = run_gitops(*args, "-C", str(s3.repo))
            assert res.exit_code == 1 and "bucket 'no-such-bucket' does not exist" in res.stderr, res.stderr
            assert res.stderr.count("\n") == (2 if args[0] == "check" else 1), res.stderr
        assert git(s3.repo, "log", "-1", "--format=%H") == before[0].strip()
    finally:
        local.write_text(kept)
    assert git_state(s3.repo) == before


def test_a_missing_plugin_is_one_sentence_naming_the_extra_before_anything_is_made(
        s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if dvc-s3 were not installed (its module made unimportable): every command that would
    reach the remote says which extra to install, and commits, creates or trains nothing."""
    from gitops import yamlio

    monkeypatch.setitem(sys.modules, "dvc_s3", None)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_text("weights")
    batch = tmp_path / "b.csv"
    batch.write_text("id,product,rating,text\nz1,tour,5,Lovely\n")
    config = tmp_path / "train.yaml"
    config.write_text(yamlio.dumps({"base_model": "gitops/tiny-opt", "dataset": "reviews@latest",
                                    "output": {"model": "review"}}))
    # everything else in place: only the plugin is missing (the first test made them when it ran
    # first on this worker: the fixture is module-scoped, and xdist may split the module)
    for made, args in ((s3.repo / "registry" / "review" / "model.yaml", ("model", "create", "review")),
                       (s3.repo / "registry" / "datasets" / "reviews.yaml",
                        ("dataset", "create", "reviews", "--column", "id:string", "--column", "product:string",
                         "--column", "rating:int", "--column", "text:string", "--text-field", "text", "--key", "id"))):
        if not made.exists():
            assert run_gitops(*args, "-C", str(s3.repo)).exit_code == 0, args
    before = git_state(s3.repo)
    wanted = f"the DVC remote s3://{BUCKET}/dvc needs DVC's s3 plugin, which is not installed: " \
             "pip install 'gitops-registry[s3]'"
    for args in (("check", "--remote"), ("register", "review", str(tmp_path / "w"), "--push"),
                 ("ingest", str(batch), "--dataset", "reviews", "--push"),
                 ("train", str(config), "--push", "-C", str(s3.repo)),
                 ("convert", "review@v1", "--to", "ct2", "--push")):
        res = run_gitops(*args, *(() if args[0] == "train" else ("-C", str(s3.repo))))
        assert res.exit_code == 1 and wanted in res.stderr, (args, res.stderr)
        # one sentence (check lists it under its header); convert says what it starts first
        error = res.stderr[res.stderr.index("Error:"):]
        assert error.count("\n") == (2 if args[0] == "check" else 1) and "Traceback" not in res.stderr, res.stderr
    assert git_state(s3.repo) == before and not (s3.repo / ".gitops" / "runs").exists()
    res = run_gitops("init", str(tmp_path / "new"), "--remote", "s3://bucket/dvc")
    assert res.exit_code == 1 and "pip install 'gitops-registry[s3]'" in res.stderr
    assert not (tmp_path / "new").exists()  # checked before anything was made
    res = run_gitops("init", str(tmp_path / "new"), "--remote", "s3://bucket/dvc", "--remote-option", "colour=blue")
    assert res.exit_code == 1 and "pip install 'gitops-registry[s3]'" in res.stderr
    monkeypatch.delitem(sys.modules, "dvc_s3")
    res = run_gitops("init", str(tmp_path / "new"), "--remote", "s3://bucket/dvc", "--remote-option", "colour=blue")
    assert res.exit_code == 1 and "DVC refuses these settings for s3://bucket/dvc" in res.stderr
    assert "'colour'" in res.stderr and not (tmp_path / "new").exists()


def test_the_default_local_remote_is_relative_so_a_clone_beside_it_finds_it(tmp_path: Path) -> None:
    res = run_gitops("init", str(tmp_path / "my-models"))
    assert res.exit_code == 0 and "DVC remote: ../my-models-dvc-storage" in res.stdout
    repo = tmp_path / "my-models"
    assert "url = ../../my-models-dvc-storage" in (repo / ".dvc" / "config").read_text()
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_text("weights")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(tmp_path / "origin.git"))
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    for args in (("model", "create", "m"), ("register", "m", str(tmp_path / "w"), "--push")):
        assert run_gitops(*args, "-C", str(repo)).exit_code == 0
    clone = tmp_path / "teammate"  # another name, beside it: the remote is found all the same
    git(tmp_path, "clone", "-q", str(tmp_path / "origin.git"), str(clone))
    res = run_gitops("check", "--remote", "-C", str(clone))
    assert res.exit_code == 0 and "The registry is valid." in res.stdout, res.stderr
    from gitops.adapters.dvc import Dvc

    Dvc(clone).pull()
    assert (clone / "models" / "m" / "v1" / "model.safetensors").read_text() == "weights"

    res = run_gitops("init", str(tmp_path / "abs"), "--remote", str(tmp_path / "store"))
    assert res.exit_code == 0 and f"url = {tmp_path / 'store'}" in (tmp_path / "abs/.dvc/config").read_text()
