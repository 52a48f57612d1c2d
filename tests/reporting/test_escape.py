"""Issue 21, item 2: a value from the config, the runs sheet or a server is shown as text, never run as markup.

The report's home page is rendered the way Snakemake renders it (its Jinja environment, then docutils'
HTML writer) with hostile config values; Markdown goes through markdown-it (CommonMark, raw HTML on),
TSV cells through the formula rule spreadsheets apply.
"""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import pytest
import yaml
from docutils.core import publish_parts
from jinja2 import Environment

from tomoseg.reporting.escape import html_text, markdown_text, one_line, rst_text, tsv_cell

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_RST = ROOT / "workflow" / "report" / "workflow.rst"

HOSTILE = [
    "runs.tsv\n\n.. raw:: html\n\n   <script>document.title='pwned'</script>\n",
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=\"document.title='pwned'\">",
    "`click <javascript:document.title='pwned'>`_",
    "javascript:alert(1)",
    "|sub| **bold** *em* ``lit`` :raw:`x` [link](javascript:alert(1))",
    ".. image:: http://example.invalid/x.png",
    "ends with a backslash \\",
    "tab\tand\r\ncarriage return\u2028and line separator",
    "Ünïcödé – and “quotes”",
    "",
]


def _snakemake_render(template: str, config: dict) -> str:
    """The report's home page as Snakemake builds it: Jinja (trim_blocks, lstrip_blocks), then docutils HTML."""

    class Snakemake:
        pass

    Snakemake.config = config  # type: ignore[attr-defined]
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(template).render(snakemake=Snakemake, categories={}, files={})
    return publish_parts(text, writer_name="html", settings_overrides={"report_level": 5})["html_body"]


def _rendered_text(value: str) -> str:
    """What docutils shows for `rst_text(value)` as a paragraph (tags stripped, entities decoded)."""
    body = publish_parts(rst_text(value), writer_name="html", settings_overrides={"report_level": 5})["body"]
    return html.unescape(re.sub(r"<[^>]+>", "", body)).strip()


@pytest.mark.parametrize("value", HOSTILE)
def test_rst_text_renders_as_exactly_its_characters(value):
    body = publish_parts(rst_text(value), writer_name="html", settings_overrides={"report_level": 5})["body"]
    assert set(re.findall(r"<(\w+)", body)) <= {"p"}  # a paragraph of text: no link, image, script, emphasis
    expected = " ".join(one_line(value).split())
    assert " ".join(_rendered_text(value).split()) == expected


@pytest.fixture(scope="module")
def demo_config():
    from snakemake.utils import validate

    config = yaml.safe_load((ROOT / "config" / "demo" / "config.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return config


@pytest.mark.parametrize("value", HOSTILE[:7])
def test_the_report_home_page_shows_hostile_config_values_as_text(demo_config, value):
    config = copy.deepcopy(demo_config)
    config["runs"] = value
    config["etsam"]["checkpoints"] = value
    config["etsam"]["device"] = value
    config["splits"] = [value, "test"]
    page = _snakemake_render(WORKFLOW_RST.read_text(), config)
    assert "<script" not in page and "<img" not in page and 'href="javascript' not in page
    text = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<pre>.*?</pre>", "", page, flags=re.S)))
    shown = one_line(value)
    assert " ".join(f"runs sheet {shown}, splits {shown}, test".split()) in " ".join(text.split())


def test_the_report_macro_and_rst_text_agree():
    """workflow.rst cannot import Python: its `lit` macro must apply rst_text's rule, character for character."""
    macros = "\n".join(line for line in WORKFLOW_RST.read_text().splitlines() if line.startswith("{% macro"))
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    lit = env.from_string(macros + "\n{{ lit(v) }}")
    for value in [*HOSTILE, 0.25, -5, "\x00\x1b[31m", "a\x7fb"]:
        assert lit.render(v=value) == rst_text(value), value


def _markdown_html(text: str) -> str:
    # markdown-it-py: in the environment as a dependency of rich, not a declared dependency of tomoseg
    MarkdownIt = pytest.importorskip("markdown_it").MarkdownIt

    return MarkdownIt("commonmark").enable("table").render(text)


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_text_renders_as_its_characters_in_a_table_cell(value):
    table = f"| run | status |\n|---|---|\n| {markdown_text(value)} | ok |\n"
    page = _markdown_html(table)
    assert "<script" not in page and "<img" not in page and "<a " not in page and "<strong" not in page
    cells = re.findall(r"<td>(.*?)</td>", page, flags=re.S)
    assert len(cells) == 2 and cells[1] == "ok"
    assert " ".join(html.unescape(cells[0]).split()) == " ".join(one_line(value).split())


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-0.25", "-0.25"),
        ("+1e3", "+1e3"),
        (-0.25, "-0.25"),
        (3, "3"),
        (None, ""),
        ("a\tb\nc", "a b c"),
        ("\t=1", " =1"),
    ],
)
def test_tsv_cells_never_start_a_formula(value, cell):
    assert tsv_cell(value) == cell


def test_html_text_escapes_markup():
    assert html_text('<b a="1">&\'</b>\n') == "&lt;b a=&quot;1&quot;&gt;&amp;&#x27;&lt;/b&gt; "
