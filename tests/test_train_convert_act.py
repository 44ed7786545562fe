"""train.yml and convert.yml for real, offline: the real workflow files under ``act`` (host mode)
against the GitHub emulator, on the repository of the PR loop (``tests/prloop_fixtures.py``).

The chain a team runs, once per module:

- train.yml on a ``workflow_dispatch`` with learning_rate and epochs: ``gitops train train.yaml
  --alias staging --pr`` with the two ``--set`` overrides (a 4-step LoRA run on the embedded base
  model): the version registered and staging moved on a branch of its own, its weights pushed, the
  pull request opened;
- merging that PR moves ``staging`` to the trained (hf) version on main: convert.yml on that push
  runs plan (``gitops diff``) -> convert (``gitops convert MODEL@staging --to ct2 --quantization
  int8``, ``dvc push``, ``gitops promote --to staging-ct2 --pr``).

Each asserts what GitHub and the DVC remote end up holding: the pushed branch with the new version
registered, its weights on the remote, the pull request on the emulator. The emulator checks every
call against GitHub's OpenAPI description and the module fails on any violation.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gitops import yamlio
from tests.act_helpers import ActResult, run_act
from tests.prloop_fixtures import (
    MODEL,
    REPO,
    Loop,
    act_env,
    act_secrets,
    build_loop,
    git,
    isolated_environ,
)

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("trainconvert")
    cache = Path(os.environ.get("GITOPS_TEST_CACHE_DIR") or tmp_path_factory.getbasetemp() / "gitops-cache")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in isolated_environ(tmp / "home", cache).items():
            mp.setenv(key, value)
        built = build_loop(tmp)
        # act runs every step with the host's environment: keep it isolated for the whole module
        # (the jobs' git identity, and the embedded base model's cache).
        yield built
        built.em.stop()
    assert built.em.violations == [], "GitHub contract violations:\n" + "\n".join(built.em.violations)


def act(loop: Loop, workflow: str, event_name: str, event: dict, run_name: str) -> ActResult:
    return run_act(WORKFLOWS / workflow, event_name, event, env=act_env(loop), secrets=act_secrets(loop),
                   workdir=loop.work, scratch=loop.work.parent / f"act-{run_name}", timeout_s=300)


REPOSITORY = {"full_name": REPO, "name": REPO.split("/")[1], "owner": {"login": REPO.split("/")[0]}}


def push_event(before: str, after: str) -> dict:
    """A minimal ``push`` payload for main (act takes GITHUB_SHA from the local HEAD, not ``after``)."""
    return {"ref": "refs/heads/main", "before": before, "after": after, "repository": REPOSITORY}


def model_at(loop: Loop, ref: str) -> dict:
    """The model file of MODEL as ``origin`` holds it at ``ref``."""
    return yamlio.loads(git(loop.origin, "show", f"{ref}:registry/{MODEL}/model.yaml"), "model.yaml")


def on_remote(loop: Loop, md5: str) -> list[str]:
    """What of the directory ``md5`` (a DVC ``.dir`` hash) is missing from the DVC remote."""
    def path(h: str) -> Path:
        return loop.dvc_remote / "files" / "md5" / h[:2] / h[2:]

    if not path(md5).is_file():
        return [md5]
    return [e["relpath"] for e in json.loads(path(md5).read_text()) if not path(e["md5"]).is_file()]


def the_pull(loop: Loop, branch: str):
    (pull,) = [p for p in loop.em.pulls.values() if p.head == branch]
    return pull


def pull_files(loop: Loop, branch: str) -> set[str]:
    return {f["filename"] for f in loop.em.changed_files(the_pull(loop, branch))}


TRAIN_CONFIG = {"base_model": "gitops/tiny-opt", "dataset": "reviews@latest", "output": {"model": MODEL},
                "adapter": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                "trainer": {"batch_size": 8, "max_length": 32, "eval_steps": 2, "learning_rate": 3e-3, "seed": 7,
                            "max_steps": 4, "epochs": 1}}


@pytest.fixture(scope="module")
def trained(loop):
    """train.yml run once for the module, on a workflow_dispatch with learning_rate and epochs, after
    ``train.yaml`` (a 4-step run on the embedded base model) was pushed to main."""
    loop.checkout("main")
    (loop.work / "train.yaml").write_text(yamlio.dumps(TRAIN_CONFIG))
    git(loop.work, "add", "train.yaml")
    git(loop.work, "commit", "-q", "-m", "train.yaml: the tiny training config")
    git(loop.work, "push", "-q", "origin", "main")
    event = {"inputs": {"learning_rate": "5e-3", "epochs": "2", "dataset": ""}, "ref": "refs/heads/main",
             "repository": REPOSITORY}
    before = set(model_at(loop, "main")["versions"])
    return act(loop, "train.yml", "workflow_dispatch", event, "train"), before


def test_train_on_dispatch(loop, trained):
    """The dispatch inputs reach the new version's config as --set overrides, its weights are
    pushed to DVC, and a PR proposes it as staging."""
    result, versions_before = trained
    assert result.returncode == 0, result.output[-5000:]
    assert result.jobs_ran == {"train"} and not result.jobs_failed, result.output[-3000:]

    branch = f"gitops/train-{MODEL}-v3"
    model = model_at(loop, branch)
    assert set(model["versions"]) - versions_before == {"v3"}
    assert set(model_at(loop, "main")["versions"]) == versions_before  # nothing pushed to main
    v3 = model["versions"]["v3"]
    assert v3["format"] == "hf" and v3["base_model"] == "gitops/tiny-opt" and v3["dataset"] == "reviews@v1"
    trainer = v3["config"]["trainer"]
    assert trainer["learning_rate"] == 5e-3 and trainer["epochs"] == 2  # the --set overrides
    assert trainer["max_steps"] == 4 and v3["metrics"]["steps"] == 4
    assert on_remote(loop, v3["md5"]) == []  # dvc push (the weights are new: no other version has them)

    pull = the_pull(loop, branch)
    assert (pull.base, pull.author, pull.title) == ("main", "gitops-bot", f"Train {MODEL} v3 as staging")
    # one branch carries the registration and the move
    assert pull_files(loop, branch) == {f"registry/{MODEL}/model.yaml", f"models/{MODEL}/v3.dvc",
                                        f"models/{MODEL}/.gitignore", f"registry/{MODEL}/aliases/staging.yaml"}
    assert alias_at(loop, branch, "staging") == "v3"


def test_convert_when_the_staging_pr_merges(loop, trained):
    """Merging train's PR moves staging to the trained version (hf, a LoRA run on the embedded base)
    on main: convert.yml registers its ct2 int8 conversion on a new branch, pushes the weights to
    DVC and opens a PR proposing it as staging-ct2."""
    assert trained[0].returncode == 0, trained[0].output[-3000:]
    loop.checkout("main")
    before = git(loop.work, "rev-parse", "HEAD")
    git(loop.work, "fetch", "-q", str(loop.origin), f"gitops/train-{MODEL}-v3")
    git(loop.work, "merge", "-q", "--ff-only", "FETCH_HEAD")  # what merging the PR does to main
    git(loop.work, "push", "-q", "origin", "main")
    after = git(loop.work, "rev-parse", "HEAD")

    result = act(loop, "convert.yml", "push", push_event(before, after), "convert")
    assert result.returncode == 0, result.output[-5000:]
    assert result.jobs_ran == {"plan", "convert"} and not result.jobs_failed, result.output[-3000:]
    assert f"Registered {MODEL}@v4 (ct2/int8, parent v3" in result.output

    branch = f"gitops/promote-{MODEL}-staging-ct2-v4"
    model = model_at(loop, branch)
    assert set(model["versions"]) - set(model_at(loop, "main")["versions"]) == {"v4"}
    v4 = model["versions"]["v4"]
    assert (v4["format"], v4["quantization"], v4["parent"]) == ("ct2", "int8", "v3")
    assert v4["config"]["trainer"]["learning_rate"] == 5e-3  # the training record travels with the variant
    assert on_remote(loop, v4["md5"]) == []

    pull = the_pull(loop, branch)
    assert (pull.base, pull.author, pull.title) == ("main", "gitops-bot", f"Promote {MODEL} v4 to staging-ct2")
    assert pull_files(loop, branch) == {f"registry/{MODEL}/model.yaml", f"models/{MODEL}/v4.dvc",
                                        f"models/{MODEL}/.gitignore", f"registry/{MODEL}/aliases/staging-ct2.yaml"}
    assert alias_at(loop, branch, "staging-ct2") == "v4"


def test_convert_skips_a_staging_move_to_a_ct2_version(loop, trained):
    """Merging the loop's PR that points staging at v2 (already ct2): convert.yml runs, converts
    nothing, registers nothing and opens no PR."""
    loop.checkout("main")
    before = git(loop.work, "rev-parse", "HEAD")
    api_set_alias(loop, "staging", "v2")
    git(loop.work, "push", "-q", "origin", "main")
    pulls_before = len(loop.em.pulls)

    result = act(loop, "convert.yml", "push", push_event(before, git(loop.work, "rev-parse", "HEAD")), "convert-ct2")
    assert result.returncode == 0, result.output[-5000:]
    assert not result.jobs_failed, result.output[-3000:]
    assert "new:v2" in result.output and "format:ct2" in result.output  # the matrix job ran, its steps did not
    assert "Converting" not in result.output and "Registered" not in result.output
    assert len(loop.em.pulls) == pulls_before


def api_set_alias(loop: Loop, alias: str, version: str) -> None:
    from gitops import api

    api.set_alias(api.Workspace(loop.work), MODEL, alias, version, note=f"{alias} -> {version}")


def alias_at(loop: Loop, ref: str, alias: str) -> str:
    return yamlio.loads(git(loop.origin, "show", f"{ref}:registry/{MODEL}/aliases/{alias}.yaml"), "alias")["version"]
