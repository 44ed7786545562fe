"""``gitops site`` (issue 21): the registry as static pages, read from real git history.

One demo-shaped registry (tests/site_fixtures.py) is built per module with the registry verbs;
tests that change it work on a copy. The pages are read back with a small HTML parser; the
browser tests (tests/test_site_browser.py) open the same pages in headless Chromium.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git_state, run_gitops
from tests.hostile_fixtures import isolated
from tests.site_fixtures import AUTHOR, CLASSIFIER, DATASET, HOSTILE, MODEL, REPO, build_site_repo, git
from tests.site_html import parse, rows

CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
       "form-action 'none'")
PAGES = {
    "index.html",
    f"models/{MODEL}/index.html", f"models/{MODEL}/timeline-1.html", f"models/{MODEL}/versions-1.html",
    *(f"models/{MODEL}/v{i}.html" for i in (1, 2, 3)),
    f"models/{CLASSIFIER}/index.html", f"models/{CLASSIFIER}/versions-1.html",
    *(f"models/{CLASSIFIER}/v{i}.html" for i in (1, 2, 3)),
    f"datasets/{DATASET}/index.html", f"datasets/{DATASET}/v1.html", f"datasets/{DATASET}/v2.html",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("site")
    return build_site_repo(base)


@pytest.fixture(scope="module")
def rendered(template, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pages of the template registry (the template is only read)."""
    out = tmp_path_factory.mktemp("pages") / "site"
    with isolated(tmp_path_factory.mktemp("home")):
        result = run_gitops("site", "-C", str(template.root), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert re.fullmatch(r"18 pages of [0-9a-f]{10} in .*: 18 written, 0 unchanged, 0 removed \(\d+\.\d s; largest "
                        r"\d+ KiB\)\. Open .*index\.html\n", result.stdout), result.stdout
    return out


@pytest.fixture
def repo(template, tmp_path: Path) -> Path:
    """A copy of the template to change (its DVC remote stays shared: nothing here pushes)."""
    dest = tmp_path / "repo"
    shutil.copytree(template.root, dest, symlinks=True)
    return dest


def pages(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.html")}


def results_pages(out: Path) -> set[str]:
    return {p for p in pages(out) if p.startswith("results/")}


def test_every_model_version_data_set_version_and_results_document_has_a_page(rendered: Path) -> None:
    assert pages(rendered) - results_pages(rendered) == PAGES
    # two committed results documents and the one the work tree holds (git-ignored, as gitops eval leaves it)
    found = sorted(parse(rendered / p).find("code").text() for p in results_pages(rendered))
    assert found == ["results-v3.json", "results/sentiment/results.json", "results/v2/results.json"]


def test_index_lists_models_and_data_sets_with_aliases_owners_protection_and_last_change(rendered: Path,
                                                                                        template) -> None:
    doc = parse(rendered / "index.html")
    models = {r[0].split(" ")[0]: r for r in rows(doc.find("table", class_="models"))}
    assert set(models) == {MODEL, CLASSIFIER}
    _name, task, versions, latest, aliases, owners, last = models[MODEL]
    assert (task, versions, latest, owners) == ("text-generation", "3", "v3", "@acme/ml")
    assert aliases == "production → v3 protected: @acme/mlops staging → v3"
    assert "Merge pull request #12 from acme/promote-v3" in last
    link = doc.find("tr", data_model=MODEL).find("a")
    assert link.attrs["href"] == f"models/{MODEL}/index.html"
    (dataset,) = rows(doc.find("table", class_="datasets"))
    assert dataset[:4] == [f"{DATASET} Product reviews {HOSTILE['script']}", "2", "v2", "40"]
    commit = doc.find("p", class_="lead").find("a")
    assert commit.attrs["href"] == f"https://github.com/{REPO}/commit/{template.head}"


def test_model_page_timeline_shows_every_move_in_order_with_pr_and_report(rendered: Path, template) -> None:
    doc = parse(rendered / f"models/{MODEL}/index.html")
    timeline = rows(doc.find("table", class_="timeline"))
    moves = [(r[1], r[2], r[3]) for r in timeline]
    assert moves == [("production", "v1", "v3"), ("staging", "none", "v3"), ("production", "none", "v1")]
    newest = doc.find("table", class_="timeline").find("tbody").find("tr")
    by_header = dict(zip(["when", "alias", "from", "to", "who", "commit", "pr", "report", "note"], timeline[0]))
    assert by_header["pr"] == "#12" and by_header["who"] == "Ada Tester"
    assert newest.find("a", href=f"https://github.com/{REPO}/pull/12")
    # the report of the production move: the evaluation of v3 against v1 proposed for production
    report = [a for a in newest.find_all("a") if a.attrs["href"].startswith("../../results/")]
    assert [a.text() for a in report] == ["v3 vs v1"] and by_header["report"] == "v3 vs v1 ( pass )"
    assert timeline[1][4] == AUTHOR  # the commit author, quotes and "&amp;" as written
    assert doc.find("time").attrs["datetime"].endswith("Z")
    # the full timeline page holds the same moves
    assert [(r[1], r[2], r[3]) for r in rows(parse(rendered / f"models/{MODEL}/timeline-1.html")
                                             .find("table", class_="timeline"))] == moves


def test_lineage_graph_has_a_node_for_every_version_data_set_version_and_alias(rendered: Path) -> None:
    svg = parse(rendered / f"models/{MODEL}/index.html").find("svg", class_="lineage")
    nodes = {g.attrs["data-node"] for g in svg.find_all("g") if "data-node" in g.attrs}
    assert nodes == {"version:v1", "version:v2", "version:v3", f"dataset:{DATASET}@v1", f"dataset:{DATASET}@v2",
                     "alias:production", "alias:staging"}
    edges = {p.attrs["data-edge"]: p.attrs["class"] for p in svg.find_all("path") if "data-edge" in p.attrs}
    assert edges == {f"dataset:{DATASET}@v1 version:v1": "edge edge-data", f"dataset:{DATASET}@v2 version:v2":
                     "edge edge-data", "version:v1 version:v2": "edge edge-parent",
                     "version:v2 version:v3": "edge edge-derived", "version:v3 alias:production": "edge edge-alias",
                     "version:v3 alias:staging": "edge edge-alias"}
    assert svg.find("title").text() == f"Lineage of {MODEL}" and "3 versions shown of 3" in svg.find("desc").text()
    assert svg.find("g", data_node="version:v2").find("a").attrs["href"] == "v2.html"


def test_metric_trends_are_charts_with_a_description_and_a_table(rendered: Path) -> None:
    doc = parse(rendered / f"models/{MODEL}/index.html")
    charts = doc.find_all("svg", class_="trend")
    assert [c.find("title").text() for c in charts] == ["eval_loss across versions", "perplexity across versions"]
    assert charts[0].find("desc").text() == ("eval_loss over 2 versions: 0.8 at v1, 0.79 at v2; lowest 0.79 (v2), "
                                             "highest 0.8 (v1).")
    assert charts[0].attrs["role"] == "img" and charts[0].attrs["aria-labelledby"] == "trend-1-title trend-1-desc"
    table = charts[0].parent.find("details").find("table")
    assert rows(table) == [["v1", "0.8"], ["v2", "0.79"]]


def test_classification_model_shows_its_variants_side_by_side(rendered: Path) -> None:
    doc = parse(rendered / f"models/{CLASSIFIER}/index.html")
    table = rows(doc.find("table", class_="variants"))
    # variant, kind, accuracy, vs baseline, then macro-F1 with its interval (the report's columns)
    assert [r[:4] for r in table] == [["v1", "few-shot bm25 k=3", "50.0% [33.3%, 66.7%]", "—"],
                                      ["v2", "zero-shot", "80.0% [63.3%, 93.3%]", "+30.0% [+13.3%, +46.7%] (vs v1)"]]
    assert [r[4].split(" [")[0] for r in table] == ["50.0%", "80.0%"]
    headers = [th.text() for th in doc.find("table", class_="variants").find_all("th", scope="col")]
    assert headers[4:7] == ["Macro-F1", "Log loss", "ECE"]
    assert parse(rendered / f"models/{MODEL}/index.html").find_all("table", class_="variants") == []
    # the prompt version is a variant made from v1, in the lineage and on its page
    svg = doc.find("svg", class_="lineage")
    assert svg.find("path", data_edge="version:v1 version:v3").attrs["class"] == "edge edge-derived"
    assert "node-derived" in svg.find("g", data_node="version:v3").attrs["class"]
    v3 = parse(rendered / f"models/{CLASSIFIER}/v3.html")
    assert "v3 is a prompt on v1" in v3.find("section", aria_labelledby="lineage").text()
    config = v3.find("section", aria_labelledby="download").find("a")
    assert config.text() == f"models/{CLASSIFIER}/v3.prompt.yaml" and "/blob/" in config.attrs["href"]


def test_version_and_data_set_version_pages(rendered: Path, template) -> None:
    doc = parse(rendered / f"models/{MODEL}/v2.html")
    facts = doc.find("dl", class_="facts").text()
    assert "Parent v1" in facts and f"Data set {DATASET}@v2" in facts and "register review-autocomplete v2" in facts
    assert [li.text() for li in doc.find("section", aria_labelledby="lineage").find_all("li")] == [
        f"Trained on {DATASET}@v2", "v2 is fine-tuned from v1", "v3 was made from it (converted)"]
    evaluated = doc.find("section", aria_labelledby="evaluations").text()
    assert "v2 vs v1 (candidate)" in evaluated
    download = doc.find("section", aria_labelledby="download")
    assert f"dvc pull models/{MODEL}/v2.dvc" in download.text()
    assert re.search(r"md5 [0-9a-f]{32}\.dir", download.text())
    # the card in the weights, from this clone's DVC cache (verified by md5), as text
    assert doc.find("pre", class_="card").text() == f"# v2 A model card. {HOSTILE['script']}"
    v3 = parse(rendered / f"models/{MODEL}/v3.html")
    assert "ct2/int8" in v3.find("dl", class_="facts").text()
    assert "Aliases production (protected: @acme/mlops) staging" in v3.find("dl", class_="facts").text()
    data = parse(rendered / f"datasets/{DATASET}/v2.html")
    assert "Total rows 40" in data.find("dl", class_="facts").text()
    assert sum(int(r[1]) for r in rows(data.find("table", class_="splits"))) == 20
    assert next(li.text() for li in data.find("section", aria_labelledby="batches").find_all("li")).startswith("v1 : ")
    assert data.find("section", aria_labelledby="models").text().endswith(f"{MODEL}@v2")
    assert rows(data.find("table", class_="preview"))[0][0] == "s0"


def test_pages_are_self_contained_script_free_and_every_link_resolves(rendered: Path) -> None:
    for rel in sorted(pages(rendered)):
        page = rendered / rel
        doc = parse(page)
        metas = [m for m in doc.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
        assert [m.attrs["content"] for m in metas] == [CSP], rel
        tags = {n.tag for n in doc.iter()}
        assert not tags & {"script", "iframe", "object", "embed", "img", "link", "form", "base", "foreignobject"}, rel
        for node in doc.iter():
            for name, value in node.attrs.items():
                assert not name.startswith("on"), (rel, node.tag, name)
                assert "javascript:" not in value.lower(), (rel, node.tag, name)
            href = node.attrs.get("href")
            if href is None or href.startswith("#"):
                continue
            if href.startswith("https://"):
                assert href == f"https://github.com/{REPO}" or href.startswith(f"https://github.com/{REPO}/"), href
            else:
                assert "://" not in href and (page.parent / href).resolve().is_file(), (rel, href)


def test_hostile_strings_are_text_on_every_page_that_shows_them(rendered: Path) -> None:
    shown = {
        "index.html": [HOSTILE["img"], HOSTILE["script"]],                      # descriptions
        f"models/{MODEL}/index.html": [HOSTILE["img"], HOSTILE["link"], HOSTILE["script"], HOSTILE["entity"], AUTHOR],
        f"models/{MODEL}/v1.html": [HOSTILE["entity"]],                          # a version's note
        f"models/{MODEL}/v2.html": [HOSTILE["script"]],                          # its model card
        f"datasets/{DATASET}/v1.html": [f"review {i} {HOSTILE[k]}" for i, k in enumerate(HOSTILE)],  # data rows
    }
    results = next(p for p in results_pages(rendered) if "results-v3" in p)
    shown[results] = [f"The tour was {HOSTILE['script']}", f" great {HOSTILE['img']}".strip(), HOSTILE["entity"]]
    for rel, texts in shown.items():
        text = parse(rendered / rel).text()
        for hostile in texts:
            assert " ".join(hostile.split()) in text, (rel, hostile)
    for rel in pages(rendered):
        source = (rendered / rel).read_text(encoding="utf-8")
        assert "<script" not in source and "<img" not in source and "<a href=\"javascript" not in source, rel


def test_rerendering_touches_only_what_changed(repo: Path, tmp_path: Path, weights) -> None:
    out = tmp_path / "site"
    assert run_gitops("site", "-C", str(repo), "--out", str(out)).exit_code == 0
    before = {p: (out / p).stat().st_mtime_ns for p in pages(out)}
    again = run_gitops("site", "-C", str(repo), "--out", str(out))
    assert ": 0 written, 18 unchanged, 0 removed" in again.stdout
    assert {p: (out / p).stat().st_mtime_ns for p in pages(out)} == before

    # one new version, fine-tuned from v2 on reviews@v1: exactly the pages that show it change
    assert run_gitops("register", MODEL, str(weights()), "--parent", "v2", "--dataset", f"{DATASET}@v1",
                      cwd=repo).exit_code == 0
    result = run_gitops("site", "-C", str(repo), "--out", str(out))
    assert ": 7 written, 12 unchanged, 0 removed" in result.stdout, result.stdout
    changed = {p for p in pages(out) if (out / p).stat().st_mtime_ns != before.get(p)}
    assert changed == {"index.html", f"models/{MODEL}/index.html", f"models/{MODEL}/versions-1.html",
                       f"models/{MODEL}/v4.html", f"models/{MODEL}/v2.html",  # v2 lists v4 as made from it
                       f"datasets/{DATASET}/v1.html",                          # v1 lists v4 as trained on it
                       f"datasets/{DATASET}/index.html"}                       # and counts it

    # a page edited by hand is put back; a results document that disappears takes its page along
    (out / f"models/{MODEL}/v1.html").write_text("edited")
    (repo / "results-v3.json").unlink()
    before = {p: (out / p).stat().st_mtime_ns for p in pages(out)}
    result = run_gitops("site", "-C", str(repo), "--out", str(out))
    assert ": 5 written, 13 unchanged, 1 removed" in result.stdout, result.stdout
    changed = {p for p in pages(out) if (out / p).stat().st_mtime_ns != before.get(p)}
    assert changed == {f"models/{MODEL}/v1.html",  # edited, and no longer the baseline of an evaluation
                       f"models/{MODEL}/v3.html", f"models/{MODEL}/index.html", f"models/{MODEL}/timeline-1.html",
                       "index.html"}  # no report for its moves, one results document fewer
    assert "<title>review-autocomplete v1" in (out / f"models/{MODEL}/v1.html").read_text()
    assert not any("results-v3" in p for p in pages(out))
    manifest = json.loads((out / ".gitops-site.json").read_text())
    assert set(manifest["pages"]) == pages(out)


def test_rev_renders_the_registry_as_committed_then(repo: Path, template, tmp_path: Path) -> None:
    out = tmp_path / "site"
    result = run_gitops("site", "-C", str(repo), "--out", str(out), "--rev", template.before_results)
    assert result.exit_code == 0, result.stderr
    assert f"pages of {template.before_results[:10]}" in result.stdout
    # no classifier yet, and no results document committed then (the work tree's count only without --rev)
    assert not any(p.startswith(f"models/{CLASSIFIER}/") for p in pages(out)) and results_pages(out) == set()
    head = run_gitops("site", "-C", str(repo), "--out", str(out))
    assert head.exit_code == 0 and ", 0 removed" in head.stdout
    back = run_gitops("site", "-C", str(repo), "--out", str(out), "--rev", template.before_results)
    assert re.search(r", 8 removed \(", back.stdout), back.stdout  # the classifier's 5 pages, 3 results pages
    assert not (out / "models" / CLASSIFIER).exists()  # its directory went with its last page


@pytest.mark.parametrize("args, needle", [
    (["--rev", "no-such-branch"], "git reference 'no-such-branch' does not exist"),
    (["--rev", "--upload-pack=touch /tmp/x"], "is not a git revision"),
    (["--out", "{repo}"], "would hold the repository itself"),
    (["--out", "{repo}/gitops.yaml"], "is a file"),
    (["--out", "{repo}/registry"], "is not empty and was not made by gitops site"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(repo: Path, args: list[str], needle: str) -> None:
    before = git_state(repo)
    result = run_gitops("site", "-C", str(repo), *[a.format(repo=repo) for a in args])
    assert result.exit_code == 1 and needle in result.stderr, result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert git_state(repo) == before and not (repo / "_site").exists()


def test_a_github_repo_that_is_not_one_is_refused_before_anything_is_written(repo: Path, tmp_path: Path) -> None:
    settings = repo / "gitops.yaml"
    settings.write_text(settings.read_text().replace(f"repo: {REPO}", "repo: 'javascript:alert(1)/x'"))
    git(repo, "commit", "-qam", "a hostile github.repo")
    result = run_gitops("site", "-C", str(repo), "--out", str(tmp_path / "site"))
    # gitops.yaml's own validation refuses it first (the pages re-check it before linking anywhere)
    assert result.exit_code == 1 and "github.repo 'javascript:alert(1)/x' must look like OWNER/NAME" \
        in result.stderr, result.stderr
    assert not (tmp_path / "site").exists()


def test_a_registry_that_does_not_validate_at_the_commit_stops_before_anything_is_written(repo: Path,
                                                                                          tmp_path: Path) -> None:
    model = repo / "registry" / MODEL / "model.yaml"
    model.write_text(model.read_text().replace("format: ct2", "format: onnx-ish"))
    git(repo, "commit", "-qam", "a version of an unknown format")
    out = tmp_path / "site"
    out.mkdir()
    result = run_gitops("site", "-C", str(repo), "--out", str(out))
    assert result.exit_code == 1 and f"registry/{MODEL}/model.yaml:" in result.stderr and "format" in result.stderr
    assert list(out.iterdir()) == []
    # the commit before it still renders
    assert run_gitops("site", "-C", str(repo), "--out", str(out), "--rev", "HEAD~1").exit_code == 0


def test_without_a_github_repo_pages_link_nowhere_outside(repo: Path, tmp_path: Path) -> None:
    settings = repo / "gitops.yaml"
    settings.write_text(re.sub(r"(?m)^github:\n  repo: .*\n", "", settings.read_text()))
    git(repo, "commit", "-qam", "no GitHub repository")
    out = tmp_path / "site"
    assert run_gitops("site", "-C", str(repo), "--out", str(out)).exit_code == 0
    assert not [p for p in pages(out) if "https://" in (out / p).read_text()]
    assert parse(out / "index.html").find("p", class_="lead").find("code").text() == \
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout[:10]


def test_long_histories_are_paginated_and_old_pages_stay_untouched(repo: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from gitops import api
    from gitops.site import modelpages

    monkeypatch.setattr(modelpages, "TIMELINE_PAGE", 2)
    monkeypatch.setattr(modelpages, "TIMELINE_ON_MODEL_PAGE", 1)
    out = tmp_path / "site"
    ws = api.Workspace.open(repo)
    api.site(ws, out)
    assert {p for p in pages(out) if "timeline" in p} == {f"models/{MODEL}/timeline-1.html",
                                                         f"models/{MODEL}/timeline-2.html"}
    first = parse(out / f"models/{MODEL}/timeline-1.html")
    assert [r[1:4] for r in rows(first.find("table", class_="timeline"))] == [["staging", "none", "v3"],
                                                                             ["production", "none", "v1"]]
    assert len(rows(parse(out / f"models/{MODEL}/index.html").find("table", class_="timeline"))) == 1
    api.set_alias(api.Workspace.open(repo), MODEL, "staging", "v2")
    result = api.site(api.Workspace.open(repo), out)
    assert set(result.written) == {"index.html", f"models/{MODEL}/index.html", f"models/{MODEL}/timeline-2.html",
                                   f"models/{MODEL}/v2.html", f"models/{MODEL}/v3.html"}  # who points where


def test_pages_whose_inputs_did_not_change_are_not_even_rendered(repo: Path, tmp_path: Path, weights,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's input hashes decide what to render: nothing when nothing changed, only the
    pages that show a new version when one is registered (the bytes check alone would render all)."""
    from gitops import api
    from gitops.site import build

    out = tmp_path / "site"
    api.site(api.Workspace.open(repo), out)
    rendered: list[str] = []
    real = build.render
    monkeypatch.setattr(build, "render", lambda template, view: rendered.append(template) or real(template, view))
    result = api.site(api.Workspace.open(repo), out)
    assert rendered == [] and result.written == [] and result.unchanged == result.pages == 18
    api.register(api.Workspace.open(repo), MODEL, weights(), parent="v2", dataset=f"{DATASET}@v1")
    result = api.site(api.Workspace.open(repo), out)
    assert len(rendered) == len(result.written) == 7 and result.unchanged == 12
