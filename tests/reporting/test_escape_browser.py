"""Issue 21, item 2, in the browser: the report's home page, rendered as Snakemake renders it from hostile config
values, runs no script when headless Chromium opens it. A control page that puts the same value in unescaped
shows that a script which ran would be seen."""

from __future__ import annotations

import copy

import pytest
from browser_helpers import report_browser
from test_escape import HOSTILE, WORKFLOW_RST, _snakemake_render, demo_config  # noqa: F401 (fixture)

SCRIPT_VALUES = [v for v in HOSTILE if "pwned" in v]
pytestmark = pytest.mark.browser  # headless Chromium: left out of `make check`

PAGE = "<!DOCTYPE html><html><head><title>report</title></head><body>{}</body></html>"


def _title_after_load(path) -> str:
    """The page's title once Chromium has loaded it and run whatever scripts it holds."""
    with report_browser(path) as page:
        page.driver.get(path.resolve().as_uri())
        return page.driver.execute_script("return document.title")


def test_no_script_runs_on_the_home_page(tmp_path, demo_config):  # noqa: F811
    config = copy.deepcopy(demo_config)
    for i, value in enumerate(SCRIPT_VALUES):
        config["runs"], config["etsam"]["device"], config["splits"] = value, value, [value, "test"]
        page = tmp_path / f"home-{i}.html"
        page.write_text(PAGE.format(_snakemake_render(WORKFLOW_RST.read_text(), config)))
        assert _title_after_load(page) == "report", value


def test_the_control_page_shows_that_a_script_would_be_caught(tmp_path):
    """The detector works: the same reStructuredText, unescaped, runs its script in Chromium."""
    from docutils.core import publish_parts

    raw = publish_parts(SCRIPT_VALUES[0], writer_name="html", settings_overrides={"report_level": 5})
    page = tmp_path / "control.html"
    page.write_text(PAGE.format(raw["html_body"]))
    assert _title_after_load(page) == "pwned"
