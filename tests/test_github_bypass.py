"""Every known way to change what deploys without the admins, tried through the GitHub emulator.

Issue 9 (item 3): a pull request that edits the ``gitops.yaml`` hook to deploy on ``[production,
staging]`` and moves staging passed ``gitops approvals`` ("changes no protected alias"). The
approvals check now treats everything that decides deploys as protected: ``gitops.yaml`` (compared
by meaning between the base and the head), CODEOWNERS, everything under ``.github/``, the
``admin_paths`` of ``gitops.yaml`` (here the toolkit itself: ``gitops/``, ``pyproject.toml``,
``.ci/``), and the ``protected``/``gates`` settings in ``model.yaml`` (which CODEOWNERS cannot own,
being lines of a file anyone appends versions to). Each bypass below is a pull request by bob (write
access, no code owner) without an approval: each must fail; with alice's approval (an admin) each passes.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gitops.adapters.github import connect
from gitops.github.approvals import check_approvals
from tests.github_fixtures import MD5, MODEL_YAML, REPO, Site, github_env, site  # noqa: F401 - fixtures

PROD = "registry/review/aliases/production.yaml"
STAGING = "registry/review/aliases/staging.yaml"
MODEL = "registry/review/model.yaml"
GATES = "gates:\n- metric: perplexity\n  max_increase_pct: 10\n"
BASE_MODEL_YAML = MODEL_YAML.replace("versions:\n", GATES + "versions:\n")
HOOK = """\
  - name: prod-endpoint
    url: https://deploy.example.com/hooks/gitops
    aliases: [production]
"""
SETTINGS = f"""\
# repository settings
github:
  repo: acme/models
runners:
  gpu: [self-hosted, gpu, ephemeral]
  trusted: [self-hosted, gpu, trusted]
admins: ['@acme/mlops']
admin_paths: [/gitops/, /pyproject.toml, /.ci/]
deploy:
  hooks:
{HOOK}notify:
  slack_webhook_env: SLACK_WEBHOOK_URL
"""
GENERATED_CODEOWNERS = """\
# The GitOps machinery
/.github/ @acme/mlops
/CODEOWNERS @acme/mlops
/docs/CODEOWNERS @acme/mlops
/gitops.yaml @acme/mlops
/gitops/ @acme/mlops
/pyproject.toml @acme/mlops
/.ci/ @acme/mlops

/registry/review/aliases/production.yaml @acme/mlops
"""
WORKFLOW = "name: registry-check\non: pull_request\njobs: {}\n"
BASE_FILES = {"gitops.yaml": SETTINGS, ".github/CODEOWNERS": GENERATED_CODEOWNERS, MODEL: BASE_MODEL_YAML,
              ".github/workflows/registry-check.yml": WORKFLOW, ".github/workflows/deploy.yml": WORKFLOW,
              "gitops/github/approvals.py": "def check_approvals(gh, n):\n    ...\n",
              "pyproject.toml": "[project]\nname = 'gitops-registry'\n", ".ci/run": "#!/bin/sh\npytest\n"}


def _settings(old: str, new: str) -> str:
    assert old in SETTINGS
    return SETTINGS.replace(old, new)


def _model(old: str, new: str) -> str:
    assert old in BASE_MODEL_YAML
    return BASE_MODEL_YAML.replace(old, new)


# (name, files the pull request writes (None: delete), the path the check must name)
BYPASSES = [
    ("hook fires on staging too, staging moves", {
        "gitops.yaml": _settings("aliases: [production]", "aliases: [production, staging]"),
        STAGING: "version: v3\n"}, "gitops.yaml"),
    ("payload claims alias production, staging moves", {
        "gitops.yaml": _settings("aliases: [production]\n", "aliases: [production, staging]\n"
                                 "    payload: {alias: production, version: '{version}'}\n"),
        STAGING: "version: v3\n"}, "gitops.yaml"),
    ("a second hook to another endpoint", {
        "gitops.yaml": _settings(HOOK, HOOK + "  - name: mine\n    url: https://evil.example/h\n"
                                 "    aliases: [staging]\n")}, "gitops.yaml"),
    ("hook URL changed", {
        "gitops.yaml": _settings("deploy.example.com", "deploy.evil.example")}, "gitops.yaml"),
    ("notify goes elsewhere", {
        "gitops.yaml": _settings("SLACK_WEBHOOK_URL", "MY_WEBHOOK_URL")}, "gitops.yaml"),
    ("the author becomes an admin", {
        "gitops.yaml": _settings("admins: ['@acme/mlops']", "admins: ['@acme/mlops', '@bob']")}, "gitops.yaml"),
    ("admins emptied", {"gitops.yaml": _settings("admins: ['@acme/mlops']", "admins: []")}, "gitops.yaml"),
    ("jobs move to another runner", {
        "gitops.yaml": _settings("trusted: [self-hosted, gpu, trusted]",
                                                 "trusted: [self-hosted, bobs-box]")}, "gitops.yaml"),
    ("the toolkit's own paths unguarded", {
        "gitops.yaml": _settings("admin_paths: [/gitops/, /pyproject.toml, /.ci/]\n", "")}, "gitops.yaml"),
    ("gitops.yaml deleted", {"gitops.yaml": None}, "gitops.yaml"),
    ("gitops.yaml made unreadable", {"gitops.yaml": SETTINGS + "deploy: [\n"}, "gitops.yaml"),
    ("CODEOWNERS hands production to the author", {
        ".github/CODEOWNERS": GENERATED_CODEOWNERS.replace("production.yaml @acme/mlops",
                                                           "production.yaml @bob")}, ".github/CODEOWNERS"),
    ("CODEOWNERS deleted", {".github/CODEOWNERS": None}, ".github/CODEOWNERS"),
    ("a CODEOWNERS at the root", {"CODEOWNERS": "* @bob\n"}, "CODEOWNERS"),
    ("registry-check no longer checks", {
        ".github/workflows/registry-check.yml": WORKFLOW.replace("{}", "{x: {runs-on: ubuntu-latest}}")},
     ".github/workflows/registry-check.yml"),
    ("a new workflow", {".github/workflows/mine.yml": WORKFLOW}, ".github/workflows/mine.yml"),
    ("deploy.yml deleted", {".github/workflows/deploy.yml": None}, ".github/workflows/deploy.yml"),
    ("a local action the workflows could use", {".github/actions/setup/action.yml": "runs: {using: node20}\n"},
     ".github/actions/setup/action.yml"),
    ("production unprotected (moved by a later PR)", {
        MODEL: _model("protected:\n  production: ['@acme/mlops']\n", "")}, MODEL),
    ("the author becomes an owner of production", {
        MODEL: _model("production: ['@acme/mlops']", "production: ['@acme/mlops', '@bob']")}, MODEL),
    ("gates loosened", {MODEL: _model("max_increase_pct: 10", "max_increase_pct: 1000")}, MODEL),
    ("gates removed", {MODEL: _model(GATES, "")}, MODEL),
    ("model.yaml deleted", {MODEL: None}, MODEL),
    ("model.yaml made unreadable", {MODEL: BASE_MODEL_YAML + "protected: [\n"}, MODEL),
    ("the approvals check rewritten", {
        "gitops/github/approvals.py": "def check_approvals(gh, n):\n    return True\n"},
     "gitops/github/approvals.py"),
    ("a dependency swapped", {"pyproject.toml": "[project]\nname = 'gitops-registry'\ndependencies = ['evil']\n"},
     "pyproject.toml"),
    ("the CI script changed", {".ci/run": "#!/bin/sh\ntrue\n"}, ".ci/run"),
]
# What held before this fix, kept beside the new ones so the count in the README covers them all.
HELD_BEFORE = [
    ("production moves", {PROD: "version: v2\n"}, PROD),
    ("production unprotected and moved at once", {
        MODEL: _model("protected:\n  production: ['@acme/mlops']\n", ""), PROD: "version: v3\n"}, PROD),
    ("CODEOWNERS hands production to the author, production moves", {
        ".github/CODEOWNERS": GENERATED_CODEOWNERS.replace("production.yaml @acme/mlops", "production.yaml @bob"),
        PROD: "version: v3\n"}, PROD),
    ("production alias deleted", {PROD: None}, PROD),
]


@pytest.fixture
def guarded(site: Site) -> Site:
    """The emulator's repository with a realistic base: settings with admins, a deploy hook and
    admin paths, the generated CODEOWNERS, workflows, gates, and the toolkit's own files."""
    site.commit_files("main", BASE_FILES, "the machinery")
    return site


def _check(site: Site, number: int):
    return check_approvals(connect(REPO, token=site.tokens["org-reader"], base_url=site.url), number)


def _open(site: Site, branch: str, files: dict[str, str | None]) -> int:
    """A pull request by bob that writes ``files`` (None: deletes the file) in one commit."""
    from tests.github_fixtures import git

    git(site.work, "checkout", "-q", "-b", branch, "main")
    for rel, text in files.items():
        path = site.work / rel
        if text is None:
            git(site.work, "rm", "-q", rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git(site.work, "add", "-A")
    git(site.work, "commit", "-q", "-m", f"attempt: {branch}")
    git(site.work, "push", "-q", "origin", branch)
    git(site.work, "checkout", "-q", "main")
    return site.em.open_pull(branch, "main", f"Change {branch}", "bob")


@pytest.mark.parametrize("name, files, path", BYPASSES + HELD_BEFORE,
                         ids=[b[0] for b in BYPASSES + HELD_BEFORE])
def test_each_bypass_needs_an_admin(guarded: Site, name: str, files: dict, path: str) -> None:
    number = _open(guarded, "attempt", files)
    res = _check(guarded, number)
    assert not res.ok, f"{name}: passed without an admin's approval"
    assert path in [c.path for c in res.changes if not c.ok], res.lines()
    guarded.review("alice", number, "APPROVE")
    res = _check(guarded, number)
    assert res.ok, res.lines()


def test_the_verdict_names_what_changed_and_who_may_approve(guarded: Site, monkeypatch) -> None:
    from gitops.cli import main

    number = _open(guarded, "attempt", BYPASSES[0][1])
    guarded.use(monkeypatch, "org-reader")
    res = CliRunner().invoke(main, ["approvals", "--pr", str(number)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "gitops.yaml: deploy changed" in res.output
    assert "who may approve: alice, carol." in res.output and "@acme/mlops" in res.output


def test_an_approval_by_an_admin_the_pr_itself_names_does_not_count(guarded: Site) -> None:
    """Who the admins are is read from the base branch: a PR that makes erin (write access, no
    owner) the admin and code owner of everything is not approved by erin, nor by its author."""
    guarded.tokens["erin"] = guarded.em.add_user("erin", permission="write")
    files = {".github/CODEOWNERS": GENERATED_CODEOWNERS.replace("@acme/mlops", "@erin"),
             "gitops.yaml": _settings("admins: ['@acme/mlops']", "admins: ['@erin']")}
    number = _open(guarded, "attempt", files)
    guarded.review("erin", number, "APPROVE")
    guarded.em.add_review(number, "bob", "APPROVE")  # GitHub refuses this; the check must not rely on it
    res = _check(guarded, number)
    assert not res.ok
    assert {c.path for c in res.changes} == {".github/CODEOWNERS", "gitops.yaml"}
    assert all(c.owners == ["@acme/mlops"] and c.approved_by == [] for c in res.changes)


@pytest.mark.parametrize("name, files", [
    ("a comment in gitops.yaml", {"gitops.yaml": SETTINGS.replace("# repository settings", "# settings!")}),
    ("gitops.yaml re-indented", {"gitops.yaml": SETTINGS.replace("admins: ['@acme/mlops']",
                                                                 "admins:\n  - '@acme/mlops'")}),
    ("a version registered", {MODEL: BASE_MODEL_YAML + f"  v4: {{format: hf, path: models/review/v4, md5: {MD5}}}\n"}),
    ("a description edited", {MODEL: _model("description: review autocomplete", "description: better")}),
    ("staging moves", {STAGING: "version: v3\n"}),
    ("docs edited", {"docs/usage.md": "# usage\n"}),
])
def test_changes_that_decide_nothing_need_no_admin(guarded: Site, name: str, files: dict) -> None:
    res = _check(guarded, _open(guarded, "harmless", files))
    assert res.ok and res.changes == [], res.lines()


def test_without_admins_the_protected_aliases_owners_guard_the_machinery(site: Site) -> None:
    """No ``admins`` and no CODEOWNERS rule for gitops.yaml on the base: the owners of every
    protected alias guard it (as the generated CODEOWNERS would), found by listing the registry."""
    number = _open(site, "hook", {"gitops.yaml": "deploy:\n  hooks:\n" + HOOK.replace("production", "staging")})
    res = _check(site, number)
    assert not res.ok
    [change] = res.changes
    assert change.path == "gitops.yaml" and change.owners == ["@acme/mlops"]


def test_nothing_protected_means_nothing_to_guard(site: Site) -> None:
    """A repository that protects nothing (a fresh ``gitops init``) is not locked out of its settings."""
    site.commit_files("main", {MODEL: MODEL_YAML.replace("protected:\n  production: ['@acme/mlops']\n", ""),
                               ".github/CODEOWNERS": "# nothing protected\n"})
    number = _open(site, "hook", {"gitops.yaml": "deploy:\n  hooks:\n" + HOOK})
    res = _check(site, number)
    assert res.ok, res.lines()


def test_admin_paths_are_owned_in_the_generated_codeowners(gitops_repo) -> None:
    from tests.conftest import run_gitops

    settings = gitops_repo / "gitops.yaml"
    text = settings.read_text()
    assert "admin_paths: []" in text  # `gitops init` writes the key, empty
    settings.write_text(text.replace("admins: []", "admins: ['@acme/mlops']")
                        .replace("admin_paths: []", "admin_paths: [/scripts/, /Makefile]"))
    assert run_gitops("codeowners", "--check", cwd=gitops_repo).exit_code == 1
    assert run_gitops("codeowners", "--write", cwd=gitops_repo).exit_code == 0
    from gitops.registry.codeowners_rules import parse

    owners = parse((gitops_repo / ".github" / "CODEOWNERS").read_text())
    for path in ("scripts/deploy.sh", "Makefile", ".github/workflows/deploy.yml", ".github/actions/a/action.yml",
                 "gitops.yaml", "CODEOWNERS", "docs/CODEOWNERS", ".github/CODEOWNERS"):
        assert owners.owners_of(path) == ["@acme/mlops"], path
    assert owners.owners_of("registry/m/model.yaml") == []
    assert run_gitops("check", cwd=gitops_repo).exit_code == 0


@pytest.mark.parametrize("value, message", [
    ("[' /a b']", "is not a CODEOWNERS pattern GitHub reads"),
    ("['!secret']", "is not a CODEOWNERS pattern GitHub reads"),
    ("[[/a]]", "must be a path pattern of 1 to 200 characters"),
    ("/scripts/", "admin_paths must be a list of at most 64 path patterns"),
    (f"[{', '.join(['/a'] * 65)}]", "admin_paths must be a list of at most 64 path patterns"),
])
def test_a_bad_admin_path_is_one_sentence(gitops_repo, value: str, message: str) -> None:
    from tests.conftest import run_gitops

    settings = gitops_repo / "gitops.yaml"
    settings.write_text(settings.read_text().replace("admin_paths: []", f"admin_paths: {value}"))
    result = run_gitops("check", cwd=gitops_repo)
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "gitops.yaml:" in result.stderr and message in result.stderr, result.stderr
