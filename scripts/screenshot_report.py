"""A PNG of one part of a meshload report, as headless Chromium draws it (for the README's pictures).

    python scripts/screenshot_report.py studies/grpc-balancing/index.html replicas docs/grpc-balancing.png

The part is the element with that id (e.g. `replicas`, a study's requests per replica). Needs
Debian's chromium and chromium-driver (scripts/install-deps) and selenium.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

WIDTH, HEIGHT = 1100, 2400


def screenshot(page: Path, element_id: str, out: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        raise SystemExit("chromium and chromium-driver are not installed (scripts/install-deps installs them)")
    profile = tempfile.mkdtemp(prefix="meshload-screenshot-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.get(page.resolve().as_uri())
        driver.find_element(By.ID, element_id).screenshot(str(out))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: screenshot_report.py REPORT.html ELEMENT_ID OUT.png")
    screenshot(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
