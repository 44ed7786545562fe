"""``gitops site`` in a real browser: headless Chromium from Debian's packages, driven by Selenium
through Debian's chromedriver (why Selenium: docs/site.md). The pages are opened from disk
(file://), as someone who downloaded the Pages artifact would.

One browser session and one rendered registry per module. Skipped, with the reason, only where
Chromium, its driver or Selenium is missing; ``.ci/run`` installs the browser so CI runs these.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import run_gitops
from tests.hostile_fixtures import isolated
from tests.site_fixtures import DATASET, HOSTILE, MODEL, MOVES, build_site_repo

CHROMIUM = os.environ.get("GITOPS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GITOPS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1000")


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install chromium chromium-driver; .ci/run does)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("site-browser")
    repo = build_site_repo(base)
    with isolated(base / "home"):
        result = run_gitops("site", "-C", str(repo.root), "--out", str(base / "site"))
    assert result.exit_code == 0, result.stderr
    return base / "site"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver
    profile = tempfile.mkdtemp(prefix="gitops-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(browser, path: Path) -> list[dict]:  # untyped: a selenium WebDriver
    """Load ``path`` and return what the browser logged while it did (console errors, CSP reports)."""
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(path.as_uri())
    return browser.get_log("browser")


def by_css(browser, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def test_index_lists_the_models_and_clicking_through_shows_the_timeline_in_order(browser, site: Path) -> None:
    assert open_page(browser, site / "index.html") == []
    assert browser.title == "Model registry · gitops registry"
    models = [row.get_attribute("data-model") for row in by_css(browser, "table.models tbody tr")]
    assert models == [MODEL, "sentiment"]
    by_css(browser, f"tr[data-model='{MODEL}'] th a")[0].click()
    assert browser.current_url == (site / "models" / MODEL / "index.html").as_uri()
    assert browser.get_log("browser") == []
    shown = []
    for row in by_css(browser, "table.timeline tbody tr"):
        cells = [td.text for td in row.find_elements("css selector", "td")]
        shown.append((cells[1], None if cells[2] == "none" else cells[2], cells[3]))
    assert shown == list(reversed(MOVES))  # newest first
    # the move's report is one click away
    by_css(browser, "table.timeline tbody tr td a[href*='results/']")[0].click()
    assert by_css(browser, "h1")[0].text == f"Evaluation of {MODEL}@v3"
    assert browser.get_log("browser") == []


def test_lineage_svg_has_a_node_for_each_version_and_data_set_version(browser, site: Path) -> None:
    assert open_page(browser, site / "models" / MODEL / "index.html") == []
    nodes = {g.get_attribute("data-node") for g in by_css(browser, "svg.lineage g.node")}
    assert {"version:v1", "version:v2", "version:v3", f"dataset:{DATASET}@v1", f"dataset:{DATASET}@v2"} <= nodes
    box = by_css(browser, "svg.lineage")[0].rect
    assert box["width"] > 600 and box["height"] > 100  # drawn, not collapsed
    by_css(browser, "svg.lineage g[data-node='version:v2'] a")[0].click()
    assert browser.current_url.endswith(f"/models/{MODEL}/v2.html")
    assert by_css(browser, "h1")[0].text == f"{MODEL} v2"


def test_hostile_strings_render_as_text_and_run_no_script(browser, site: Path) -> None:
    results = next((site / "results").glob("results-v3-*.html"))
    for page, selector, expected in [
        (site / "models" / MODEL / "index.html", "p.lead", f"Review auto-suggest {HOSTILE['img']}"),
        (site / "models" / MODEL / "index.html", "tr[data-alias='staging'] td:last-child", HOSTILE["script"]),
        (site / "models" / MODEL / "index.html", "tr[data-alias='production'] td:last-child", HOSTILE["link"]),
        (site / "models" / MODEL / "v1.html", "dl.facts", HOSTILE["entity"]),
        (site / "datasets" / DATASET / "v1.html", "table.preview", f"review 1 {HOSTILE['img']}"),
        (results, "table.samples", f"The tour was {HOSTILE['script']}"),
    ]:
        assert open_page(browser, page) == [], page
        assert expected in " ".join(el.text for el in by_css(browser, selector)), (page, selector)
        assert browser.title.endswith("· gitops registry") and "pwned" not in browser.title
        assert by_css(browser, "script, img, iframe, object, embed") == []
        hrefs = [a.get_attribute("href") or "" for a in by_css(browser, "a")]
        assert [h for h in hrefs if "javascript" in h] == []
        assert browser.execute_script("return document.querySelectorAll('[onerror], [onclick], [onload]').length") == 0


def test_the_content_security_policy_blocks_script_the_page_did_not_ship(browser, site: Path, tmp_path: Path) -> None:
    """The meta CSP is enforced: a copy of a page with a script and an inline handler pasted in
    runs neither, and the browser says why (so a future escape bug would still run nothing)."""
    page = site / "models" / MODEL / "v2.html"
    tampered = tmp_path / "tampered.html"
    tampered.write_text(page.read_text(encoding="utf-8").replace(
        "</main>", "<script>document.title='ran'</script><img src='x.png' onerror=\"document.title='ran'\"></main>"))
    logged = open_page(browser, tampered)
    assert browser.title == f"{MODEL} v2 · gitops registry"
    messages = " ".join(entry["message"] for entry in logged)
    assert "Content Security Policy" in messages and entry_levels(logged) == {"SEVERE"}, logged


def entry_levels(entries: list[dict]) -> set[str]:
    return {entry["level"] for entry in entries}


def test_every_page_loads_without_a_console_message(browser, site: Path) -> None:
    for page in sorted(site.rglob("*.html")):
        assert open_page(browser, page) == [], page
