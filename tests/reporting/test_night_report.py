"""The night's report treats portal run names and error lines as data (issue 21): report.md shows them as
text, report.tsv keeps a spreadsheet from running them as formulas."""

from __future__ import annotations

import csv

from markdown_it import MarkdownIt

from tomoseg.reporting import night

HOSTILE = {
    "script": "<script>alert(1)</script>",
    "image": "![x](http://evil.example/x.png)",
    "link": "[click](javascript:alert(1))",
    "html_img": '<img src=x onerror="alert(1)">',
    "cell": "a | b",
    "emphasis": "**bold** _it_ `code`",
}


def _rows():
    done = {"tomo": "cdp-1-2", "dataset_id": 1, "run_id": 2, "status": "processed", "shape": "4x8x8"}
    failed = {"tomo": "cdp-1-3", "dataset_id": 1, "run_id": 3, "status": "failed", "attempts": 1}
    rows = [{**done, "name": name} for name in HOSTILE.values()]
    rows += [{**failed, "name": name, "reason": name, "retry_after": None} for name in HOSTILE.values()]
    return rows


def _render(text):
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


def test_report_md_shows_run_names_as_text(tmp_path):
    report = night.write_report(tmp_path, "N", "2024-01-01", _rows(), 0, []).read_text()
    rendered = _render(report)
    for tag in ("<script", "<img", "<a ", "<strong", "<em", "<code"):
        assert tag not in rendered, (tag, rendered)
    # every table row keeps its cells: a | in a name does not split the cell
    table_rows = [line for line in report.splitlines() if line.startswith("| ")]
    assert {line.count(" | ") - line.count("\\|") for line in table_rows} <= {5, 4, 3}
    assert rendered.count("<tr>") == len(table_rows)
    # and the text is still there to read
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert "javascript:alert(1)" in rendered


def test_report_tsv_cells_are_not_formulas(tmp_path):
    rows = [
        {
            "tomo": "cdp-1-2",
            "dataset_id": 1,
            "run_id": 2,
            "status": "failed",
            "attempts": 1,
            "name": name,
            "reason": reason,
        }
        for name, reason in [
            ('=HYPERLINK("http://evil","x")', "+1+1"),
            ("-2+3", "@SUM(A1:A2)"),
            ("TS_001", "download_tomogram: HTTP 404"),
        ]
    ]
    rows[0]["voxel_spacing"] = -1.5  # a number stays a number
    night.write_report(tmp_path, "N", "2024-01-01", rows, 0, [])
    with open(tmp_path / "report.tsv", newline="") as handle:
        cells = list(csv.DictReader(handle, delimiter="\t"))
    assert [c["name"] for c in cells] == ['\'=HYPERLINK("http://evil","x")', "'-2+3", "TS_001"]
    assert [c["reason"] for c in cells] == ["'+1+1", "'@SUM(A1:A2)", "download_tomogram: HTTP 404"]
    assert cells[0]["voxel_spacing"] == "-1.5"
    text_cells = [v for c in cells for k, v in c.items() if k != "voxel_spacing" and v]
    assert not any(v.startswith(night.FORMULA_STARTS) for v in text_cells)
