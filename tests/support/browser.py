"""A real headless Chromium for tests (Debian's chromium and chromium-driver, driven by selenium): a
fresh profile per browser, nothing fetched in the background, stopped after use.

    with headless_chromium() as browser:
        browser.get(path.as_uri())
        errors = console_errors(browser)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@contextmanager
def headless_chromium(width: int = 1280, height: int = 1400) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its own throw-away profile; its console log is kept (`console_errors`)."""
    profile = tempfile.mkdtemp(prefix="meshload-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(browser: webdriver.Chrome) -> list[str]:
    """What the page logged as errors (scripts, failed loads, bad markup the browser reports)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
