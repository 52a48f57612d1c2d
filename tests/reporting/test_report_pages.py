"""Readable report pieces: HTML tables, Figure 1b/1d honesty, overlay statistics and the tomogram page."""

import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from tomoseg.core.io import write_volume
from tomoseg.evaluation import stats
from tomoseg.reporting import figures, overlays
from tomoseg.reporting.pages import tomogram_page
from tomoseg.reporting.tables import to_html_table, untrained_banner, write_table


class Cells(HTMLParser):
    """Collects the text of every table cell (th and td) in document order."""

    def __init__(self):
        super().__init__()
        self.cells, self._in = [], False

    def handle_starttag(self, tag, attrs):
        self._in = tag in ("td", "th")
        if self._in:
            self.cells.append("")

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.cells[-1] += data


def test_write_table_writes_escaped_sortable_html(tmp_path):
    df = pd.DataFrame(
        {"method": ["etsam (untrained)", "<b>x</b>"], "dice": [0.5, np.nan], "ttest_p": [1e-4, 0.5]}
    )
    write_table(df, tmp_path / "t.csv", "Table 1", ["etsam: untrained weights"])
    page = (tmp_path / "t.html").read_text()
    assert (tmp_path / "t.md").exists() and "<b>x</b>" not in page and "&lt;b&gt;" in page
    parser = Cells()
    parser.feed(page)
    assert parser.cells == [
        "method",
        "dice",
        "ttest_p",
        "etsam (untrained)",
        "0.5000",
        "0.0001",
        "<b>x</b>",
        "NaN",
        "0.5",
    ]
    assert 'class="untrained"' in page and "addEventListener" in page  # untrained note highlighted, sortable


def test_html_table_links_and_untrained_banner():
    df = pd.DataFrame({"tomo": ["a", "b&c"], "dice": [0.5, np.nan]})
    table = to_html_table(df, "runs", links={"tomo": [None, "pages/b&c.html"]})
    assert "<td>a</td>" in table and '<td><a href="pages/b&amp;c.html">b&amp;c</a></td>' in table
    assert untrained_banner([]) == "" and 'class="untrained"' in untrained_banner(["etsam", "membrain"])


def test_box_plots_draw_no_marker_below_min_n(tmp_path, monkeypatch):
    texts = []
    monkeypatch.setattr(figures.plt.Axes, "text", lambda self, x, y, s, **kw: texts.append(s))
    frames = {m: pd.DataFrame({"dice": [0.5, 0.6, 0.7]}) for m in ("etsam", "membrain")}
    tests = pd.DataFrame(
        [{"metric": "dice", "method_a": "etsam", "method_b": "membrain", "n": 3, "marker": "***"}]
    )
    figures.box_plots(frames, tests, ["dice"], tmp_path / "b")
    assert texts == [f"n=3 < {stats.MIN_TEST_N}"]
    texts.clear()
    figures.box_plots(frames, tests.assign(n=12), ["dice"], tmp_path / "b")
    assert texts == ["***"]


def test_runtime_panel_says_no_gpu_records(tmp_path, monkeypatch):
    texts = []
    monkeypatch.setattr(figures.plt.Axes, "text", lambda self, x, y, s, **kw: texts.append(s))
    table = pd.DataFrame(
        {"method": ["etsam"], "runtime_s_mean": [3.0], "runtime_s_sd": [0.1], "cpu_mem_mb_mean": [500.0]}
        | {"cpu_mem_mb_sd": [1.0], "gpu_mem_mb_mean": [np.nan], "gpu_mem_mb_sd": [np.nan]}
    )
    figures.runtime_memory(table, tmp_path / "d")
    assert texts == ["no GPU records"]


def test_mask_statistics_and_tomogram_page(tmp_path):
    truth = np.zeros((4, 8, 8), np.uint8)
    truth[:2, :4] = 1  # 64 voxels in slices 0-1
    pred = np.zeros_like(truth)
    pred[0, :4] = 1  # slice 0 right, slice 1 missed
    pred[3, 0, 0] = 1  # a false positive in a slice without truth
    stats = overlays.mask_statistics({"etsam": pred}, truth)
    assert stats["dice_z"]["etsam"] == [1.0, 0.0, None, 0.0]
    assert stats["mask_fraction"]["etsam"] == 33 / 256 and stats["truth_fraction"] == 64 / 256
    for name, arr in (
        ("tomo", np.random.default_rng(0).normal(size=truth.shape)),
        ("gt", truth),
        ("p", pred),
    ):
        write_volume(tmp_path / f"{name}.mrc", arr.astype(np.float32 if name == "tomo" else np.uint8), 10.0)
    written = overlays.overlay_files(
        tmp_path / "tomo.mrc",
        {"etsam": tmp_path / "p.mrc"},
        tmp_path / "ov",
        truth=tmp_path / "gt.mrc",
        title="t1",
        formats=("png",),
        dice_z_stem=tmp_path / "dz",
        stats_json=tmp_path / "s.json",
    )
    assert {p.name for p in written} == {"ov.png", "s.json", "dz.png", "dz.pdf"}
    metrics = tmp_path / "m.json"
    metrics.write_text(
        json.dumps({"status": "ok", "dice": 0.6667, "iou": 0.5, "precision": 0.97, "recall": 0.5})
    )
    prov = tmp_path / "provenance.json"
    prov.write_text(json.dumps({"method": "etsam", "untrained": True}))
    page = tomogram_page(
        "t1",
        tmp_path / "t1.html",
        ["etsam", "membrain"],
        tmp_path / "s.json",
        tmp_path / "ov.png",
        tmp_path / "dz.png",
        metrics={"etsam": metrics},
        provenance={"etsam": prov},
        untrained=["etsam"],
        results=tmp_path,
    ).read_text()
    parser = Cells()
    parser.feed(page)
    assert parser.cells[:8] == [
        "method",
        "status",
        "dice",
        "iou",
        "precision",
        "recall",
        "auprc",
        "best_threshold",
    ]
    assert parser.cells[8:11] == ["etsam (untrained)", "ok", "0.6667"]
    assert "Not scored: membrain" in page and "Untrained weights" in page and "data:image/png;base64," in page
    assert "No complete benchmark records" in page and "&quot;untrained&quot;: true" in page


def test_threshold_curves_from_histogram_counts():
    from tomoseg.evaluation.metrics import ScoreHistogram

    hist = ScoreHistogram()
    hist.add_atom(1.0, 3, 1)  # 3 membrane voxels and 1 background voxel at logit 1
    hist.add_atom(-1.0, 1, 5)
    curves = figures.threshold_curves([("a", hist)], [-2.0, 0.0, 2.0])
    np.testing.assert_allclose(curves["dice"], [[8 / 14, 6 / 8, 0.0]])
    np.testing.assert_allclose(curves["fraction"], [[1.0, 0.4, 0.0]])


@pytest.mark.browser
def test_a_demo_size_tomogram_page_stays_under_chromiums_data_uri_limit(tmp_path):
    """Issue 26 item 1: Snakemake embeds each page as a data URI and Chromium refuses those over 2 MB. A
    `make demo`-size page (a 64 x 256 x 256 phantom, the demo's seven methods) stays well under it, and the
    browser shows its overlay when the page is opened as such a data URI."""
    import base64

    from tomoseg.acquisition.phantoms import make_phantom

    phantom = make_phantom(1)
    rng = np.random.default_rng(0)
    methods = ["etsam", "etsam_stage1", "etsam_postprocessed", "membrain", "tardis", "etsam_upstream", "x"]
    masks = {m: (rng.random(phantom.truth.shape) < 0.3).astype(np.uint8) for m in methods}
    overlays.slice_overlays(phantom.tomogram, masks, tmp_path / "ov", "phantom-001", truth=phantom.truth)
    assert (tmp_path / "ov.png").stat().st_size > 2_000_000  # as large as the demo's: the case that failed
    (tmp_path / "s.json").write_text(json.dumps(overlays.mask_statistics(masks, phantom.truth)))
    page = tomogram_page(
        "phantom-001", tmp_path / "p.html", methods, tmp_path / "s.json", tmp_path / "ov.png"
    )
    html = page.read_bytes()
    assert len(base64.b64encode(html)) < 1_500_000, len(html)  # the data URI, with room to spare
    assert b"image/jpeg" in html and str(tmp_path / "ov.png").encode() in html  # full resolution named

    from browser_helpers import report_browser

    with report_browser(page) as browser:
        browser.driver.get("data:text/html;base64," + base64.b64encode(html).decode("ascii"))
        width = browser.driver.execute_script(
            "const i = document.querySelector('img.figure'); return i && i.complete ? i.naturalWidth : 0"
        )
    assert width > 0
