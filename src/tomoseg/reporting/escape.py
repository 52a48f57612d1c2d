"""Values from a config, a runs sheet or a server as literal text in a page or a sheet: never markup, never a formula.

One function per output language. Each turns any value into text that shows as the value itself: a
reStructuredText directive (`.. raw:: html`), inline markup, HTML, Markdown or a spreadsheet formula in a
value is displayed, not run. Line breaks become spaces (a value is one cell, one line).
"""

from __future__ import annotations

import html
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_MARKDOWN_SPECIAL = set("\\`*_{}[]()#+-.!|~=:")
FORMULA_STARTS = ("=", "+", "-", "@")
"""First characters that make a spreadsheet cell a formula (LibreOffice, Excel, Google Sheets)."""


def one_line(value: object) -> str:
    """`value` as a string with every control character (line breaks, tabs, escapes) replaced by a space."""
    return _CONTROL.sub(" ", str(value))


def rst_text(value: object) -> str:
    """`value` as reStructuredText that renders as exactly its characters: every character other than a letter,
    a digit or a space is backslash-escaped, so no directive, role, link or substitution can start.

    `workflow/report/workflow.rst` applies the same rule with its `lit` macro (the report's templates cannot
    import Python); `tests/reporting/test_escape.py` checks that both agree.
    """
    return "".join(c if c.isalnum() or c == " " else "\\" + c for c in one_line(value))


def html_text(value: object) -> str:
    """`value` as HTML text (and attribute) content: & < > " ' escaped, line breaks as spaces."""
    return html.escape(one_line(value), quote=True)


def markdown_text(value: object) -> str:
    """`value` as Markdown (GitHub-flavoured, with inline HTML) that renders as its characters: HTML escaped,
    Markdown punctuation backslash-escaped, one line (so a table cell stays one cell)."""
    escaped = "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in one_line(value))
    return html.escape(escaped, quote=True)  # after: the entities' own "#" and ";" stay as they are


def tsv_cell(value: object) -> str:
    """`value` as one TSV cell a spreadsheet shows as text: no tab or line break, and a string that starts like
    a formula (= + - @) gets a leading apostrophe (numbers such as -0.25 stay numbers)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = one_line(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
