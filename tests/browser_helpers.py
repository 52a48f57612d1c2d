"""Headless Chromium (Debian's chromium + chromium-driver, through selenium) on a Snakemake report.

In CI (CI set) a missing browser is a failure (`.ci/run` installs it); elsewhere the test is skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
WAIT_S = 30


def _missing(message: str) -> None:
    """Fail in CI, skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run this test; see .ci/run)")
    pytest.skip(message)


class ReportPage:
    """A Snakemake report open in the browser, read through its rendered DOM."""

    def __init__(self, driver, url: str):
        self.driver, self.url = driver, url

    def _wait(self, condition, what: str):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                value = condition()
                if value:
                    return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def home(self) -> str:
        """Load the report and return the text of its home page (the rendered workflow.rst)."""
        from selenium.webdriver.common.by import By

        self.driver.switch_to.default_content()
        self.driver.get(self.url)
        return self._wait(
            lambda: self.driver.find_element(By.CSS_SELECTOR, "div.prose").text, "the workflow description"
        )

    def open_entry(self, category: str, label: str) -> dict:
        """Click a result category in the menu, then the eye button of the entry labelled `label`; read its page."""
        from selenium.webdriver.common.by import By

        self.home()  # the menu of categories is on the home view
        self._wait(
            lambda: self.driver.find_element(By.XPATH, f"//a[normalize-space()='{category}']"), category
        ).click()
        row = self._wait(
            lambda: self.driver.find_element(By.XPATH, f"//tr[td[normalize-space()='{label}']]"), label
        )
        row.find_element(By.CSS_SELECTOR, "a[iconname='eye']").click()
        frame = self._wait(lambda: self.driver.find_element(By.TAG_NAME, "iframe"), "the result's frame")
        self.driver.switch_to.frame(frame)
        table = self._wait(lambda: self.driver.find_element(By.CSS_SELECTOR, "table.tomoseg"), "a table")
        headers = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        rows = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
        ]
        title = self.driver.find_element(By.TAG_NAME, "h1").text
        images = len(self.driver.find_elements(By.CSS_SELECTOR, "img.figure"))
        return {"title": title, "headers": headers, "rows": rows, "images": images}

    def screenshot(self, path: Path) -> None:
        """Save what the browser shows now as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))


@contextlib.contextmanager
def report_browser(report: Path) -> Iterator[ReportPage]:
    """Headless Chromium on `report` (a self-contained report.html)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install -e '.[test]')")
    binary = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        _missing("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield ReportPage(driver, report.resolve().as_uri())
    finally:
        driver.quit()
