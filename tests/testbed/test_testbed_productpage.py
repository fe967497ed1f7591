"""BookInfo's product page as users see it: the texts and star SVGs of the upstream template, checked
in the HTML and in a real headless Chromium (Debian's chromium and chromium-driver, driven by
selenium), which also runs the page's script: the sign-in dialog opens, and signing in shows the user."""

from __future__ import annotations

import re
import tempfile
from html.parser import HTMLParser

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from .client import fetch, login

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
    "--window-size=1280,1400",
)
DIALOG_TEXTS = ["Close", "Sign in to BookInfo", "Username", "Password", "Sign in", "Not using Istio yet? Start here"]
FULL_STAR = "0 0 20 20"  # the view boxes of the two star drawings
OUTLINE_STAR = "0 0 24 24"


class _Stars(HTMLParser):
    """The star SVGs of each review, as (view box, fill) in page order, and the colour class of each row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[tuple[str, str]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "div" and "gap-x-1" in classes:
            self.rows.append((next(c for c in classes if c.startswith("text-")), []))
        elif tag == "svg" and "h-5" in classes and self.rows:
            self.rows[-1][1].append((found.get("viewbox") or "", found.get("fill") or ""))


def _pages_by_version(base: str, count: int = 3) -> dict[str, bytes]:
    pages = [fetch(f"{base}/productpage").body for _ in range(count)]
    found = [re.search(rb"reviews-(v\d)-", page) for page in pages]
    return {match.group(1).decode(): page for match, page in zip(found, pages, strict=True) if match is not None}


def test_the_page_carries_the_upstream_texts_and_star_svgs(testbed):
    testbed.apply("lb-round-robin")
    pages = _pages_by_version(testbed.ingress_url)
    assert set(pages) == {"v1", "v2", "v3"}
    for page in pages.values():
        text = page.decode()
        for visible in (
            "<title>Simple Bookstore App</title>",
            ">BookInfo Sample</a>",
            'id="sign-in-button"',
            "Sign in to BookInfo",
            ">Username</label>",
            ">Password</label>",
            "Not using Istio yet?",
            ">Start here</a>",
            "Learn more about Istio",
            "The Comedy of Errors</h1>",
            "<b>William Shakespeare's</b>",  # the description is HTML, not escaped
            "Book Details</h4>",
            "Book Reviews</h4>",
            "Reviews served by:",
        ):
            assert visible in text, visible
        for header in ("ISBN-10", "Publisher", "Pages", "Type", "Language"):
            assert f">{header}</th>" in text
        assert "<html" not in text and text.lstrip().startswith('<meta charset="utf-8">')  # upstream's shape
    stars = {}
    for version, page in pages.items():
        parser = _Stars()
        parser.feed(page.decode())
        stars[version] = parser.rows
    assert stars["v1"] == []  # reviews v1 does not call ratings: no stars at all
    full, outline = (FULL_STAR, "currentColor"), (OUTLINE_STAR, "none")
    assert stars["v2"] == [("text-black-500", [full] * 5), ("text-black-500", [full] * 4 + [outline])]
    assert stars["v3"] == [("text-red-500", [full] * 5), ("text-red-500", [full] * 4 + [outline])]

    signed_in = fetch(f"{testbed.ingress_url}/productpage", headers={"cookie": login(testbed.ingress_url, "jason")})
    assert b'<p class="text-base font-medium text-gray-50">jason</p>' in signed_in.body
    assert b">Sign out</a>" in signed_in.body and b'id="sign-in-button"' not in signed_in.body


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="meshload-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        try:
            yield driver
        finally:
            driver.quit()


def _stars_drawn(driver) -> list[tuple[str, str, str]]:
    """(view box, fill, colour) of every star the browser lays out."""
    return [
        (svg.get_dom_attribute("viewBox"), svg.get_dom_attribute("fill"), svg.value_of_css_property("color"))
        for svg in driver.find_elements(By.CSS_SELECTOR, "div.gap-x-1 > svg")
        if svg.is_displayed() and svg.size["width"] > 0
    ]


@pytest.mark.slow  # a real browser: about 10 s on a busy machine
def test_a_browser_shows_the_page_signs_in_and_draws_the_stars(testbed, browser, tmp_path):
    testbed.apply("lb-round-robin")
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for _ in range(3):
        browser.get(f"{testbed.ingress_url}/productpage")
        served_by = re.search(r"reviews-(v\d)-", browser.find_element(By.TAG_NAME, "body").text)
        assert served_by is not None
        seen[served_by.group(1)] = _stars_drawn(browser)
    assert browser.title == "Simple Bookstore App"
    assert seen["v1"] == []
    # text-black-500 (v2) is no Tailwind colour, so black stars take the page's text colour, as upstream
    black, red = "rgba(0, 0, 0, 1)", "rgba(239, 68, 68, 1)"
    full, outline = (FULL_STAR, "currentColor"), (OUTLINE_STAR, "none")
    assert seen["v2"] == [(*full, black)] * 9 + [(*outline, black)]
    assert seen["v3"] == [(*full, red)] * 9 + [(*outline, red)]

    page = browser.find_element(By.TAG_NAME, "body").text
    for visible in ("BookInfo Sample", "The Comedy of Errors", "Book Details", "PublisherA", "Book Reviews"):
        assert visible in page
    dialog = browser.find_element(By.ID, "dialog")
    assert not dialog.is_displayed()  # closed until asked for
    browser.find_element(By.ID, "sign-in-button").click()
    assert dialog.is_displayed()
    assert [line.strip() for line in dialog.text.splitlines()] == DIALOG_TEXTS
    assert browser.save_screenshot(str(tmp_path / "sign-in.png"))
    assert (tmp_path / "sign-in.png").stat().st_size > 10_000

    browser.find_element(By.ID, "username").send_keys("jason")
    browser.find_element(By.ID, "password").send_keys("secret")
    browser.find_element(By.CSS_SELECTOR, "form[name=login_form] button[type=submit]").click()
    # The submit navigates: the old page's elements go stale while the new one loads.
    WebDriverWait(browser, 5, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda page: "Sign out" in page.find_element(By.TAG_NAME, "body").text
    )
    nav = browser.find_element(By.TAG_NAME, "nav").text
    assert "jason" in nav and "Sign out" in nav and "Sign in" not in nav
