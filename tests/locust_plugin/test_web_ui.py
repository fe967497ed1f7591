"""The meshload tab in Locust's web UI, in a real browser (Debian's chromium and chromedriver, headless,
`tests/support/browser.py`):
start a test from Locust's own form, open the meshload tab, watch its figures update, stop the test
and follow the link to the report it wrote.

The README's screenshot comes from this test: `MESHLOAD_LOCUST_SCREENSHOT=docs/locust-tab.png pytest
tests/locust_plugin/test_web_ui.py` saves the tab as it looks after the stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from tests.support.browser import headless_chromium

from .conftest import LOCUSTFILES, free_port, locust_command

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

#: The tab as the README shows it.
WINDOW = (1280, 800)
#: The rows of the meshload table, read at once in the page (the UI rewrites them every 2 s).
READ_TABLE = """
return Array.from(document.querySelectorAll("table tr")).map(
    row => Array.from(row.querySelectorAll("td, th")).map(cell => cell.textContent));
"""

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"waited {timeout_s:g} s for {what}")


@pytest.fixture
def locust_web_ui(http_server, tmp_path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    """Locust with the plugin and its web UI on a free loopback port, against a real HTTP server."""
    server = http_server("ok")
    port, out = free_port(), tmp_path / "reports"
    process = subprocess.Popen(
        locust_command(
            LOCUSTFILES / "closed_loop.py",
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--host",
            server.url.rstrip("/"),
            "--meshload-out",
            str(out),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(base + "/", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            return False

    try:
        wait_for(answers, 60, "Locust's web UI")
        yield base, out, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chromium() as driver:
        driver.set_window_size(*WINDOW)
        yield driver


def meshload_rows(driver) -> dict[str, list[str]]:
    """The meshload table: {figure: [requests, p50, ..., p99.99, detail]}."""
    rows = driver.execute_script(READ_TABLE)
    return {row[0]: row[1:] for row in rows if row and row[0] not in ("meshload", "")}


def requests_of(rows: dict[str, list[str]]) -> int:
    latency = next((cells for figure, cells in rows.items() if figure.startswith("latency")), None)
    return int(latency[0].replace(",", "")) if latency and latency[0] else 0


def type_into(driver, name: str, text: str) -> None:
    field = driver.find_element(By.NAME, name)
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(text)


def test_the_meshload_tab_shows_live_figures_and_links_to_the_last_tests_report(locust_web_ui, browser) -> None:
    base, out, locust = locust_web_ui
    driver = browser
    driver.get(base + "/")
    wait_for(lambda: driver.find_elements(By.NAME, "userCount"), 30, "Locust's start form")
    type_into(driver, "userCount", "4")
    type_into(driver, "spawnRate", "100")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    tabs = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "[role=tab]"), 30, "the tabs")
    titles = [tab.text.lower() for tab in tabs]
    assert {"statistics", "charts", "failures", "download data", "meshload"} <= set(titles)  # Locust's stay
    tabs[titles.index("meshload")].click()
    assert driver.current_url.endswith("?tab=meshload")

    first = wait_for(lambda: requests_of(meshload_rows(driver)), 30, "meshload's first figures")
    later = wait_for(lambda: requests_of(meshload_rows(driver)) > first and meshload_rows(driver), 15, "an update")
    assert isinstance(later, dict)
    assert later["schedule lag"][1:6] == ["0.000"] * 5  # closed loop
    percentiles = [float(value) for value in later["latency (closed loop, from the actual send)"][1:6]]
    assert 0 < percentiles[0] <= percentiles[1] <= percentiles[2] <= percentiles[3] <= percentiles[4]
    assert {"uncorrected (from the actual send)", "Locust's own (rounded)", "name: front", "name: item"} <= set(later)
    assert "busiest CPU" in later["worker locust-0"][-1] and later["verdict"][-1].split(":")[0] in ("VALID", "INVALID")
    assert later["load model"][-1].startswith("Closed loop: 4 clients")
    bar = driver.find_element(By.ID, "meshload-bar")
    assert bar.is_displayed() and "running" in bar.text

    next(button for button in driver.find_elements(By.TAG_NAME, "button") if button.text == "STOP").click()

    def report_links() -> list:
        return [a for a in driver.find_elements(By.CSS_SELECTOR, "#meshload-reports a") if a.text == "report.html"]

    wait_for(report_links, 40, "the link to the report")
    assert {a.text for a in driver.find_elements(By.CSS_SELECTOR, "#meshload-reports a")} == {
        "report.html",
        "smp.json",
        "fortio.json",
        "histograms.hlog",
    }
    screenshot = os.environ.get("MESHLOAD_LOCUST_SCREENSHOT")
    if screenshot:
        # After Locust's own header has caught up with the stop, if it does within a few seconds.
        deadline = time.monotonic() + 8
        while "STOPPED" not in driver.find_element(By.TAG_NAME, "body").text and time.monotonic() < deadline:
            time.sleep(0.25)
        driver.save_screenshot(screenshot)

    tab_window = driver.current_window_handle
    report_links()[0].click()
    wait_for(lambda: len(driver.window_handles) == 2, 15, "the report's window")
    driver.switch_to.window(next(handle for handle in driver.window_handles if handle != tab_window))
    wait_for(lambda: "meshload report" in driver.title, 15, "the report")
    smp = json.loads((out / "smp.json").read_text())["meshload"]
    assert driver.find_element(By.ID, "validity").text.split(":")[0] in ("VALID RUN", "INVALID RUN")
    assert f"{smp['requests']:,}" in driver.find_element(By.CSS_SELECTOR, ".figures").text
    assert "Closed loop: 4 clients" in driver.find_element(By.ID, "load-model").text
    assert smp["requests"] >= requests_of(later)
    assert locust.poll() is None  # Locust itself keeps running for the next test
