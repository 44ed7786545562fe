"""A tampered DVC remote is caught after the pull, before any use (issue 9, item 2).

The weights are pushed to a fresh local DVC remote, one object there is corrupted, the clone's
cache and weights are absent, and the real CLI is run: DVC pulls the corrupted bytes without
complaint (it names objects by hash but does not re-hash what it downloads), so the check in
:func:`gitops.core.materialize.version_files` is what refuses them, naming the version and the file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_gitops
from tests.eval_fixtures import FAST, MODEL, EvalRepo


def _object(remote: Path, md5: str) -> Path:
    """Where DVC 3 keeps an object in a local remote."""
    return remote / "files" / "md5" / md5[:2] / md5[2:]


def _clone_with_fresh_remote(repo: EvalRepo, tmp_path: Path) -> tuple[Path, Path]:
    """A clone of the repo whose DVC remote is a fresh copy of the pushed one (config.local points
    at it), with no weights and an empty cache: what a CI runner starts from."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(clone)], check=True)
    remote = tmp_path / "fresh-remote"
    from gitops.adapters.dvc import Dvc

    shutil.copytree(Dvc(repo.root).remote_url(), remote)
    (clone / ".dvc" / "config.local").write_text(f"['remote \"storage\"']\n    url = {remote}\n")
    assert not (clone / ".dvc" / "cache").exists()
    return clone, remote


def _manifest(repo: EvalRepo, version: str) -> tuple[str, list[dict]]:
    from gitops.core.workspace import Workspace

    md5 = Workspace(repo.root).registry().resolve(f"{MODEL}@{version}")[1].md5
    remote = Path(Workspace(repo.root).dvc.remote_url())
    return md5, json.loads(_object(remote, md5).read_bytes())


def _corrupt(path: Path, data: bytes | None = None) -> None:
    os.chmod(path, 0o644)
    body = path.read_bytes()
    path.write_bytes(data if data is not None else body[:-8] + bytes(b ^ 0xFF for b in body[-8:]))


def test_eval_refuses_a_file_corrupted_on_the_remote(eval_repo, tmp_path):
    clone, remote = _clone_with_fresh_remote(eval_repo, tmp_path)
    _md5, entries = _manifest(eval_repo, "v2")
    [weights] = [e for e in entries if e["relpath"].endswith(".safetensors")]
    _corrupt(_object(remote, weights["md5"]))
    out = tmp_path / "results.json"
    result = run_gitops("eval", f"{MODEL}@v2", "--no-baseline", "--out", str(out), *FAST, cwd=clone)
    assert result.exit_code == 1, result.stderr
    assert f"{MODEL}@v2" in result.stderr and weights["relpath"] in result.stderr
    assert "do not match the md5 the registry records" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()
    # the bad copy is not left behind for the next command (or a person) to pick up
    assert not (clone / f"models/{MODEL}/v2").exists()
    # once the remote is repaired, the same command succeeds: nothing corrupted stayed in the cache
    _corrupt(_object(remote, weights["md5"]), _object(Path(eval_repo.root / ".dvc/cache"),
                                                        weights["md5"]).read_bytes())
    result = run_gitops("eval", f"{MODEL}@v2", "--no-baseline", "--out", str(out), *FAST, cwd=clone)
    assert result.exit_code == 0, result.stderr


def test_eval_refuses_a_manifest_corrupted_on_the_remote(eval_repo, tmp_path):
    """The ``.dir`` manifest itself is checked against the md5 the registry records: a remote that
    serves a manifest listing other files (here: v1's weights under v2's name) is refused."""
    clone, remote = _clone_with_fresh_remote(eval_repo, tmp_path)
    v2_md5, _ = _manifest(eval_repo, "v2")
    v1_md5, _ = _manifest(eval_repo, "v1")
    _corrupt(_object(remote, v2_md5), _object(remote, v1_md5).read_bytes())
    result = run_gitops("eval", f"{MODEL}@v2", "--no-baseline", "--out", str(tmp_path / "r.json"), *FAST,
                        cwd=clone)
    assert result.exit_code == 1, result.stderr
    assert f"{MODEL}@v2" in result.stderr and "manifest" in result.stderr
    assert v2_md5 in result.stderr


def test_convert_refuses_a_file_corrupted_on_the_remote(eval_repo, tmp_path):
    """Conversion goes through the same door: the corrupted source is never converted or registered."""
    clone, remote = _clone_with_fresh_remote(eval_repo, tmp_path)
    _md5, entries = _manifest(eval_repo, "v1")
    [config] = [e for e in entries if e["relpath"] == "config.json"]
    _corrupt(_object(remote, config["md5"]))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout
    result = run_gitops("convert", f"{MODEL}@v1", "--to", "ct2", cwd=clone)
    assert result.exit_code == 1, result.stderr
    assert f"{MODEL}@v1" in result.stderr and "config.json" in result.stderr
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                          text=True).stdout == head


def test_a_locally_edited_file_is_named(eval_repo, tmp_path):
    """Files already on disk are hashed too (no trust in DVC's state database): an edited file is
    named, an extra file is named, and both are left for the user to restore."""
    clone, _remote = _clone_with_fresh_remote(eval_repo, tmp_path)
    assert run_gitops("eval", f"{MODEL}@v2", "--no-baseline", "--out", str(tmp_path / "a.json"), *FAST,
                      cwd=clone).exit_code == 0
    extra = clone / f"models/{MODEL}/v2/injected.py"
    extra.write_text("print('hello')\n")
    result = run_gitops("eval", f"{MODEL}@v2", "--no-baseline", "--out", str(tmp_path / "b.json"), *FAST,
                        cwd=clone)
    assert result.exit_code == 1, result.stderr
    assert "injected.py" in result.stderr and f"{MODEL}@v2" in result.stderr
    assert extra.exists()


def test_the_pulled_copy_verifies_when_nothing_was_tampered(eval_repo, tmp_path):
    from gitops.core.materialize import version_files
    from gitops.core.workspace import Workspace

    clone, _remote = _clone_with_fresh_remote(eval_repo, tmp_path)
    ws = Workspace(clone)
    model, v = ws.registry().resolve(f"{MODEL}@v1")
    path = version_files(ws, model.name, v)
    assert (path / "config.json").is_file()


def test_without_the_cache_the_files_must_make_the_recorded_manifest(eval_repo, tmp_path):
    """Weights on disk but the DVC cache cleared: the manifest the files make (as ``dvc add`` would
    write it) must have the recorded md5, so an unchanged copy passes and an edited one does not."""
    from gitops.core.materialize import version_files
    from gitops.core.workspace import Workspace
    from gitops.errors import IntegrityError

    clone, _remote = _clone_with_fresh_remote(eval_repo, tmp_path)
    ws = Workspace(clone)
    model, v1 = ws.registry().resolve(f"{MODEL}@v1")
    path = version_files(ws, model.name, v1)
    shutil.rmtree(clone / ".dvc" / "cache")
    assert version_files(ws, model.name, v1) == path
    config = path / "config.json"
    os.chmod(config, 0o644)
    config.write_text(config.read_text() + " ")
    with pytest.raises(IntegrityError, match=f"{MODEL}@v1: .* not in the DVC cache"):
        version_files(ws, model.name, v1)


def test_a_tampered_cached_base_model_is_refused(eval_repo, base_model_dir, tmp_path, monkeypatch):
    """The embedded base in the cache (``~/.cache/gitops`` on a runner) is hashed on every use: a
    LoRA version evaluated on a base whose config someone edited is refused in one sentence."""
    cache = tmp_path / "cache"
    shutil.copytree(base_model_dir, cache / base_model_dir.name)
    monkeypatch.setenv("GITOPS_CACHE_DIR", str(cache))
    config = cache / base_model_dir.name / "config.json"
    config.write_text(config.read_text().replace('"num_hidden_layers": 2', '"num_hidden_layers": 1'))
    out = tmp_path / "results.json"
    result = run_gitops("eval", f"{MODEL}@v2", "--no-baseline", "--out", str(out), *FAST, cwd=eval_repo.root)
    assert result.exit_code == 1, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert "cached base model" in line and "config.json" in line and "delete" in line
    assert "Traceback" not in result.stderr and not out.exists()
