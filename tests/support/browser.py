"""Headless Chromium driven by selenium (Debian's chromium and chromium-driver), with a fresh profile,
no network of its own (no sync, updates or background requests), stopped when the block ends.

    with headless_chromium() as browser:
        browser.get(path.as_uri())
        assert console_errors(browser) == []
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WINDOW = (1280, 1400)


def chromium_paths() -> tuple[str, str] | None:
    """(browser, driver) when both are installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium(width: int = WINDOW[0], height: int = WINDOW[1]) -> Iterator[webdriver.Chrome]:
    """A selenium WebDriver on a headless Chromium with a profile made for it and removed after; the
    page's console is kept (`console_errors`)."""
    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("chromium and chromium-driver are not installed (scripts/install-deps installs them)")
    browser, driver_path = paths
    profile = Path(tempfile.mkdtemp(prefix="meshload-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(browser: webdriver.Chrome) -> list[str]:
    """What the page logged as errors (scripts, failed loads, bad markup the browser reports)."""
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
