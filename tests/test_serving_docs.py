"""The deploy hook templates in docs/serving.md (gitops serve, vLLM, KServe) are valid gitops.yaml:
`gitops check` accepts them and `gitops deploy --dry-run` renders the bodies the docs describe."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_gitops

# every test here in its own HOME and git identity (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("_isolated_git")

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"


def templates() -> str:
    """The gitops.yaml block under "Deploy hook templates"."""
    section = DOC.read_text(encoding="utf-8").split("### Deploy hook templates", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)


def test_gitops_check_accepts_the_documented_hook_templates(gitops_repo: Path):
    (gitops_repo / "gitops.yaml").write_text(templates(), encoding="utf-8")
    checked = run_gitops("check", cwd=gitops_repo)
    assert checked.exit_code == 0, checked.stdout + checked.stderr


def test_a_broken_template_is_refused_by_check(gitops_repo: Path):
    """The check above has teeth: the same block with an unknown placeholder fails `gitops check`."""
    (gitops_repo / "gitops.yaml").write_text(templates().replace("{weights_path}", "{weights_dir}"), encoding="utf-8")
    checked = run_gitops("check", cwd=gitops_repo)
    assert checked.exit_code == 1 and "gitops.yaml" in checked.stderr and "weights_dir" in checked.stderr


def test_the_documented_hook_templates_render_the_documented_bodies(repo):
    (repo.root / "gitops.yaml").write_text(templates().replace("review-autocomplete", "chat"), encoding="utf-8")
    out = run_gitops("deploy", "--base", repo.base, "--head", repo.head, "--dry-run", "--json", cwd=repo.root)
    assert out.exit_code == 0, out.stderr
    result = json.loads(out.stdout)
    bodies = {d["hook"]: p for d, p in zip(result["deliveries"], result["payloads"])}
    assert set(bodies) == {"gitops-serve", "kserve-rollout", "vllm-lora"}  # chat@production v1 -> v3
    serve = bodies["gitops-serve"]  # the default payload: what gitops serve's hook needs
    assert (serve["model"], serve["alias"], serve["version"], serve["commit"]) == ("chat", "production", "v3",
                                                                                    repo.head)
    assert bodies["vllm-lora"] == {"lora_name": "chat-v3", "lora_path": "/srv/gitops-models/models/chat/v3"}
    kserve = bodies["kserve-rollout"]
    assert kserve["storage_uri"] == "s3://acme-serving/chat/v3" and kserve["commit"] == repo.head
    ids = {d["hook"]: d["delivery_id"] for d in result["deliveries"]}
    assert kserve["md5"] == f"{3:032x}.dir" and kserve["delivery"] == ids["kserve-rollout"]

