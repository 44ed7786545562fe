"""Every known way to change what a protected alias computes, or what deploys, without its owners or
the admins, tried through the GitHub emulator.

Issue 9 (item 3): a pull request that edits the ``gitops.yaml`` hook to deploy on ``[production,
staging]`` and moves staging passed ``gitops approvals`` ("changes no protected alias"). The
approvals check now treats everything that decides deploys as protected: ``gitops.yaml`` (compared
by meaning between the base and the head), CODEOWNERS, everything under ``.github/``, the
``admin_paths`` of ``gitops.yaml`` (here the toolkit itself: ``gitops/``, ``pyproject.toml``,
``.ci/``), and the ``protected``/``gates`` settings in ``model.yaml`` (which CODEOWNERS cannot own,
being lines of a file anyone appends versions to). Each bypass below is a pull request by bob (write
access, no code owner) without an approval: each must fail; with alice's approval (an admin) each passes.

Issue 17 widened it to the whole closure of every protected alias (gitops/registry/closure.py): the
base has ``ratings@production``, a few-shot prompt version pinned to ``ratings-base@v1`` that
retrieves from ``reviews@v1``, and ``review@production`` trained on ``reviews@v1``. Data set records,
batch rewrites behind ``data.dvc``, ``.dvc/``, the classification block, a prompt config and its
copy, a base version's record and weights: each needs the owners (alice is one) or an admin.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from gitops.adapters.github import connect
from gitops.github.approvals import check_approvals
from tests.github_fixtures import MD5, MODEL_YAML, REPO, Site

# every test here in its own HOME, no GitHub variables, no retries (opt-in: the plugin fixture is not autouse)
pytestmark = pytest.mark.usefixtures("github_env")

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
/.dvc/ @acme/mlops
/.dvcignore @acme/mlops
/gitops/ @acme/mlops
/pyproject.toml @acme/mlops
/.ci/ @acme/mlops

/registry/ratings/aliases/production.yaml @acme/mlops
/registry/review/aliases/production.yaml @acme/mlops
"""
WORKFLOW = "name: registry-check\non: pull_request\njobs: {}\n"
# The closure's files: review's versions trained on reviews@v1; ratings@production (v1) a prompt
# version on ratings-base@v1 retrieving from reviews@v1; DVC's config and the data pointer.
RATINGS, RATINGS_BASE, DATASET = "registry/ratings/model.yaml", "registry/ratings-base/model.yaml", \
    "registry/datasets/reviews.yaml"
PROMPT_FILE = "models/ratings/v1.prompt.yaml"
SHA = "0123456789" + "ab" * 27
DVC_CONFIG = "[core]\n    remote = storage\n['remote \"storage\"']\n    url = s3://acme-models/dvc\n"
DATA_DVC = "outs:\n- md5: 11111111111111111111111111111111.dir\n  size: 2000\n  nfiles: 2\n  hash: md5\n  path: data\n"
DATASET_YAML = f"""\
name: reviews
description: product reviews
columns: {{id: string, text: string, rating: string}}
text_field: text
key: [id]
splits: {{train: 0.8, valid: 0.1, test: 0.1}}
versions:
  v1:
    rows: 400
    splits: {{train: 320, valid: 40, test: 40}}
    batch: data/reviews/b000001-0123456789.jsonl
    md5: 11111111111111111111111111111111.dir
    sha256: {SHA}
"""
PROMPT = """\
base: ratings-base@v1
base_md5: 0123456789abcdef0123456789abcdef.dir
template: "{task}\\n{context}{sample}\\nRating:"
task: Rate the review.
retrieval: {type: bm25, k: 3, seed: 0}
generation: {max_new_tokens: 3, temperature: 0.0}
dataset: reviews@v1
example: "Review: {text} Rating: {rating}\\n"
"""
RATINGS_YAML = f"""\
name: ratings
description: rates reviews
task: classification
classification:
  input: "Review: {{text}}"
  label: rating
  labels: ["1", "2", "3", "4", "5"]
  fallback: "3"
owners: ['@acme/ml']
protected:
  production: ['@acme/mlops']
versions:
  v1:
    format: prompt
    path: {PROMPT_FILE}
    md5: '22222222222222222222222222222222'
    base_model: ratings-base@v1
    base_md5: {MD5}
    dataset: reviews@v1
    task_md5: '33333333333333333333333333333333'
    config_hash: 0123456789abcdef
    config: {{base: ratings-base@v1, template: "{{task}} {{sample}}", generation: {{max_new_tokens: 3}}}}
"""
RATINGS_BASE_YAML = f"""\
name: ratings-base
description: the base the prompts run on
owners: ['@acme/ml']
versions:
  v1: {{format: hf, path: models/ratings-base/v1, md5: {MD5}}}
"""
POINTER = f"outs:\n- md5: {MD5}\n  size: 100\n  nfiles: 2\n  hash: md5\n  path: v1\n"
BASE_FILES = {"gitops.yaml": SETTINGS, ".github/CODEOWNERS": GENERATED_CODEOWNERS,
              MODEL: BASE_MODEL_YAML.replace(f"path: models/review/v1, md5: {MD5}}}",
                                             f"path: models/review/v1, md5: {MD5}, dataset: reviews@v1}}"),
              ".github/workflows/registry-check.yml": WORKFLOW, ".github/workflows/deploy.yml": WORKFLOW,
              "gitops/github/approvals.py": "def check_approvals(gh, n):\n    ...\n",
              "pyproject.toml": "[project]\nname = 'gitops-registry'\n", ".ci/run": "#!/bin/sh\npytest\n",
              ".dvc/config": DVC_CONFIG, ".dvcignore": "# DVC ignores nothing here\n", "data.dvc": DATA_DVC,
              DATASET: DATASET_YAML, RATINGS: RATINGS_YAML, RATINGS_BASE: RATINGS_BASE_YAML, PROMPT_FILE: PROMPT,
              "registry/ratings/aliases/production.yaml": "version: v1\n", "models/review/v1.dvc": POINTER,
              "models/ratings-base/v1.dvc": POINTER}


def _settings(old: str, new: str) -> str:
    assert old in SETTINGS
    return SETTINGS.replace(old, new)


def _model(old: str, new: str) -> str:
    assert old in BASE_MODEL_YAML
    return BASE_FILES[MODEL].replace(old, new)


def _edit(path: str, old: str, new: str) -> str:
    assert old in BASE_FILES[path], (path, old)
    return BASE_FILES[path].replace(old, new)


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
# Issue 17: everything else in the closure of a protected alias.
CLOSURE = [
    ("a released data set version's rows", {DATASET: _edit(DATASET, "rows: 400", "rows: 800")}, DATASET),
    ("a released batch re-pointed at a new hash-named file", {DATASET: _edit(
        DATASET, "b000001-0123456789", "b000001-9876543210")}, DATASET),
    ("the split fractions", {DATASET: _edit(DATASET, "train: 0.8, valid: 0.1, test: 0.1",
                                            "train: 0.5, valid: 0.1, test: 0.4")}, DATASET),
    ("a released data set version removed", {DATASET: DATASET_YAML.split("  v1:")[0] + "  {}\n"}, DATASET),
    ("the data set file deleted", {DATASET: None}, DATASET),
    ("the batches rewritten behind data.dvc", {"data.dvc": _edit("data.dvc", "md5: 1111", "md5: 4444")},
     "data.dvc"),
    ("data.dvc rewritten beside a new version that recorded another pointer", {
        "data.dvc": _edit("data.dvc", "md5: 1111", "md5: 4444").replace("nfiles: 2", "nfiles: 4"),
        DATASET: DATASET_YAML + "  v2:\n    rows: 10\n    splits: {train: 10}\n    batch: data/reviews/b000002-"
                 "0123456789.jsonl\n    md5: 55555555555555555555555555555555.dir\n"}, "data.dvc"),
    ("data.dvc deleted", {"data.dvc": None}, "data.dvc"),
    ("a batch committed to git beside DVC", {"data/reviews/b000001-0123456789.jsonl": '{"id": "x"}\n'},
     "data/reviews/b000001-0123456789.jsonl"),
    ("the DVC remote URL", {".dvc/config": _edit(".dvc/config", "s3://acme-models/dvc", "https://evil.example/dvc")},
     ".dvc/config"),
    ("a DVC config.local committed", {".dvc/config.local": "['remote \"storage\"']\n    url = https://evil.example\n"},
     ".dvc/config.local"),
    ("DVC's ignore rules", {".dvcignore": "data/reviews/\n"}, ".dvcignore"),
    ("the classification input template", {RATINGS: _edit(RATINGS, 'input: "Review: {text}"',
                                                           'input: "Say 5. {text}"')}, RATINGS),
    ("the label order", {RATINGS: _edit(RATINGS, '["1", "2", "3", "4", "5"]', '["5", "4", "3", "2", "1"]')}, RATINGS),
    ("the fallback label", {RATINGS: _edit(RATINGS, 'fallback: "3"', 'fallback: "5"')}, RATINGS),
    ("an extraction rule", {RATINGS: _edit(RATINGS, 'fallback: "3"\n',
                                           'fallback: "3"\n  extract:\n    "5": {regex: "."}\n')}, RATINGS),
    ("the task turned into completion", {RATINGS: _edit(RATINGS, "task: classification", "task: completion")},
     RATINGS),
    ("production's prompt config copy diverges from its file", {RATINGS: _edit(
        RATINGS, "generation: {max_new_tokens: 3}", "generation: {max_new_tokens: 500, temperature: 2.0}")}, RATINGS),
    ("production's prompt file edited", {PROMPT_FILE: PROMPT.replace("k: 3", "k: 8")}, PROMPT_FILE),
    ("production's prompt file deleted", {PROMPT_FILE: None}, PROMPT_FILE),
    ("the base version's record", {RATINGS_BASE: _edit(RATINGS_BASE, "path: models/ratings-base/v1",
                                                       "path: models/ratings-base/v9")}, RATINGS_BASE),
    ("the base version's weights pointer", {"models/ratings-base/v1.dvc": POINTER.replace("0123", "9999", 1)},
     "models/ratings-base/v1.dvc"),
    ("production's version record", {MODEL: _model("path: models/review/v1,", "path: models/review/v3,")}, MODEL),
    ("production's weights pointer", {"models/review/v1.dvc": POINTER.replace("0123", "9999", 1)},
     "models/review/v1.dvc"),
    ("a new model declares its own protected production", {
        "registry/evil/model.yaml": "name: evil\nowners: ['@bob']\nprotected:\n  production: ['@bob']\nversions:\n"
                                    f"  v1: {{format: hf, path: models/evil/v1, md5: {MD5}}}\n",
        "registry/evil/aliases/production.yaml": "version: v1\n"}, "registry/evil/model.yaml"),
    ("a CODEOWNERS in docs/", {"docs/CODEOWNERS": "* @bob\n"}, "docs/CODEOWNERS"),
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


@pytest.mark.parametrize("name, files, path", BYPASSES + CLOSURE + HELD_BEFORE,
                         ids=[b[0] for b in BYPASSES + CLOSURE + HELD_BEFORE])
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
    res = CliRunner().invoke(main, ["approvals", "--pr", str(number), "-C", str(guarded.work)])
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
    ("a version registered",
     {MODEL: BASE_FILES[MODEL] + f"  v4: {{format: hf, path: models/review/v4, md5: {MD5}}}\n"}),
    ("a description edited", {MODEL: _model("description: review autocomplete", "description: better")}),
    ("staging moves", {STAGING: "version: v3\n"}),
    ("docs edited", {"docs/usage.md": "# usage\n"}),
    ("a new data set version ingested", {
        "data.dvc": _edit("data.dvc", "md5: " + "1" * 32, "md5: " + "5" * 32).replace("nfiles: 2", "nfiles: 4"),
        DATASET: DATASET_YAML + "  v2:\n    rows: 10\n    splits: {train: 10}\n    batch: data/reviews/b000002-"
                 "0123456789.jsonl\n    md5: 55555555555555555555555555555555.dir\n"}),
    ("a data set's description", {DATASET: _edit(DATASET, "description: product reviews", "description: reviews")}),
    ("a new prompt version of ratings", {RATINGS: RATINGS_YAML + f"  v2:\n    format: prompt\n    path: "
                                         f"models/ratings/v2.prompt.yaml\n    md5: {MD5[:32]}\n",
                                         "models/ratings/v2.prompt.yaml": PROMPT}),
    ("a new model with an unprotected production (hooks without models skip it)", {
        "registry/evil/model.yaml": f"name: evil\nowners: ['@bob']\nversions:\n  v1: {{format: hf, path: "
                                    f"models/evil/v1, md5: {MD5}}}\n", "registry/evil/aliases/production.yaml":
        "version: v1\n"}),
    ("a version nothing protected runs on", {"models/review/v2.dvc": POINTER}),
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


def test_a_closure_change_needs_that_aliases_owners_not_just_an_admin(guarded: Site) -> None:
    """The owners of ``ratings@production`` (carol alone, at the base) approve a change to its task
    block; an admin who does not own it (alice) does not stand in for them, and the verdict names
    the alias whose closure the change touches."""
    guarded.commit_files("main", {
        ".github/CODEOWNERS": GENERATED_CODEOWNERS.replace("ratings/aliases/production.yaml @acme/mlops",
                                                           "ratings/aliases/production.yaml @carol"),
        RATINGS: RATINGS_YAML.replace("production: ['@acme/mlops']", "production: ['@carol']")}, "carol owns ratings")
    number = _open(guarded, "attempt", {RATINGS: RATINGS_YAML.replace("production: ['@acme/mlops']",
                                                                      "production: ['@carol']")
                                        .replace('fallback: "3"', 'fallback: "5"')})
    res = _check(guarded, number)
    [change] = res.changes
    assert (change.path, change.kind, change.aliases, change.owners) == (RATINGS, "closure", ["ratings@production"],
                                                                         ["@carol"])
    assert "the task block changed (fallback)" in res.lines()[0] and "owner of ratings@production" in res.lines()[0]
    guarded.review("alice", number, "APPROVE")
    assert not _check(guarded, number).ok
    guarded.review("carol", number, "APPROVE")
    assert _check(guarded, number).ok
