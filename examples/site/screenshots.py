"""The README's screenshots of ``gitops site``: the index and a model page of the demo repository,
taken by headless Chromium (Debian's, through its chromedriver, as the browser tests do).

    gitops demo --keep demo-repo
    gitops site -C demo-repo --out demo-repo/site
    python examples/site/screenshots.py demo-repo/site docs/
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
SHOTS = [("index.html", "site-index.png", 1100, 900), ("models/review-autocomplete/index.html", "site-model.png", 1100,
                                                          1500)]


def main(site: Path, out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='gitops-shots-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        for page, name, width, height in SHOTS:
            driver.set_window_size(width, height)
            driver.get((site / page).resolve().as_uri())
            driver.save_screenshot(str(out / name))
            print(out / name)
    finally:
        driver.quit()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
