"""The report's HTML pages: a page per tomogram (thumbnail overlays, mask fractions, metrics, runtime,
provenance) and the nightly's index of a night's runs, linking to their tomogram pages.

A page is one self-contained HTML file (images inlined as data URIs) so that `snakemake --report`
can embed it and a browser can open it on its own.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tomoseg.core.io import atomic_path, read_json
from tomoseg.core.methods import label
from tomoseg.reporting.runtime import runtime_records
from tomoseg.reporting.tables import html_page, to_html_table, untrained_banner

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("dice", "iou", "precision", "recall", "auprc")


SCREEN_WIDTH = 1600
"""Widest an image is inlined into a page, in pixels: a screen's width, not the figure's print resolution."""
IMAGE_BUDGET = 600_000
"""Most bytes one inlined image may take. Snakemake embeds each page in the report as a data URI, and
Chromium (Chrome, Edge) refuses data URIs over 2 MB, so a page must stay well under 2 MB / (4/3 for base64)."""


def screen_image(
    path: str | os.PathLike, width: int = SCREEN_WIDTH, budget: int = IMAGE_BUDGET
) -> tuple[bytes, str]:
    """`path` (a PNG) as image bytes sized for a page: the PNG itself when small enough, else scaled to at most
    `width` px and encoded as JPEG, its quality and then its size stepped down until it fits `budget` bytes.
    Returns (bytes, MIME type)."""
    import io

    from PIL import Image  # matplotlib's own dependency

    raw = Path(path).read_bytes()
    if len(raw) <= budget:
        return raw, "image/png"
    with Image.open(io.BytesIO(raw)) as img:
        rgb = img.convert("RGB")
    for scale in (1.0, 0.75, 0.5, 0.35, 0.25):
        w = min(rgb.width, int(width * scale))
        scaled = (
            rgb.resize((w, max(1, round(rgb.height * w / rgb.width))), Image.LANCZOS)
            if w < rgb.width
            else rgb
        )
        for quality in (85, 70, 55):
            out = io.BytesIO()
            scaled.save(out, format="JPEG", quality=quality, optimize=True)
            if out.tell() <= budget:
                return out.getvalue(), "image/jpeg"
    return out.getvalue(), "image/jpeg"  # the smallest tried (a 400 px JPEG at quality 55)


def _image(path: str | os.PathLike | None, alt: str) -> str:
    """An inline image sized for the screen (data URI; the full-resolution file is named), or why there is none."""
    if path is None or not Path(path).exists():
        return f"<p><em>{html.escape(alt)}: not drawn.</em></p>"
    data, mime = screen_image(path)
    encoded = base64.b64encode(data).decode("ascii")
    img = f'<img class="figure" alt="{html.escape(alt)}" src="data:{mime};base64,{encoded}">'
    if mime == "image/png":
        return img
    return (
        img
        + f"<p><small>Sized for the screen; full resolution: <code>{html.escape(str(path))}</code>.</small></p>"
    )


def metrics_frame(metrics: dict[str, str | os.PathLike], untrained: Iterable[str] = ()) -> pd.DataFrame:
    """One row per method from its metrics JSON: status, Dice, IoU, precision, recall, AUPRC, best threshold."""
    rows = []
    for method, path in metrics.items():
        rec = read_json(path)
        row: dict[str, Any] = {"method": label(method, untrained), "status": rec.get("status", "ok")}
        for key in METRIC_COLUMNS:
            value = rec.get(key)
            row[key] = float(value) if value is not None else math.nan
        best = rec.get("best_threshold") or {}
        row["best_threshold"] = best.get("threshold", math.nan)
        if rec.get("status") == "failed":
            row["status"] = f"failed: {rec.get('reason', '')}"
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "status", *METRIC_COLUMNS, "best_threshold"])


def tomogram_page(
    tomo: str,
    out: str | os.PathLike,
    methods: Sequence[str],
    stats_json: str | os.PathLike,
    overlay_png: str | os.PathLike | None = None,
    dice_z_png: str | os.PathLike | None = None,
    metrics: dict[str, str | os.PathLike] | None = None,
    provenance: dict[str, str | os.PathLike] | None = None,
    untrained: Iterable[str] = (),
    results: str | os.PathLike = "results",
    benchmark_rules: dict[str, list[str]] | None = None,
    run: dict[str, Any] | None = None,
) -> Path:
    """Write the HTML page of one tomogram: overlays, Dice along Z, mask fractions, metrics, runtime, provenance.

    A method is marked untrained when its provenance or its metrics record says so, and "untrained status
    unknown" when neither says either way.
    """
    untrained, unknown = _untrained_status(methods, untrained, provenance or {}, metrics or {})
    stats = read_json(stats_json)
    parts = [f"<h1>Tomogram {html.escape(tomo)}</h1>"]
    banner = untrained_banner(m for m in methods if m in untrained)
    if banner:
        parts.append(banner)
    if unknown:
        parts.append(
            '<p class="untrained">Untrained status unknown (no provenance record says): '
            + html.escape(", ".join(unknown))
            + ".</p>"
        )
    if run:
        desc = ", ".join(f"{k} = {v}" for k, v in run.items() if v not in (None, "") and not _isnan(v))
        parts.append(f"<p>Runs sheet: {html.escape(desc)}</p>")
    vs = stats.get("voxel_size_zyx") or []
    parts.append(
        f"<p>Shape (z, y, x): {html.escape(str(tuple(stats.get('shape', []))))}; voxel size (Å, z y x): "
        f"{html.escape(' '.join(f'{v:g}' for v in vs))}.</p>"
    )
    parts += _metrics_section(methods, metrics, untrained, stats)
    parts += _fractions_section(untrained, stats)
    # images
    parts.append('<h2 id="overlays">Slice overlays</h2>')
    parts.append(
        "<p>XY slices at the Z quartiles and the central XZ slice; with ground truth, each method's mask in "
        "true positive (green), false positive (vermillion) and false negative (sky blue).</p>"
    )
    parts.append(_image(overlay_png, "slice overlays"))
    parts.append('<h2 id="dice-z">Dice along Z</h2>')
    parts.append(_image(dice_z_png, "Dice along Z"))
    # runtime and memory from the benchmark records
    parts.append('<h2 id="runtime">Runtime and memory</h2>')
    rt = runtime_records(list(methods), [tomo], Path(results), benchmark_rules or {})
    if len(rt):
        rt["method"] = [label(m, untrained) for m in rt["method"]]
        parts.append(to_html_table(rt.drop(columns=["tomo"]), "runtime"))
    else:
        parts.append("<p>No complete benchmark records for this tomogram.</p>")
    parts += _provenance_section(provenance or {}, untrained)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(html_page(f"tomogram {tomo}", "\n".join(parts)))
    log.info("wrote the page of tomogram %s: %s", tomo, out)
    return out


def _metrics_section(
    methods: Sequence[str],
    metrics: dict[str, str | os.PathLike] | None,
    untrained: Sequence[str],
    stats: dict[str, Any],
) -> list[str]:
    """A tomogram page's metrics of every method (or why it was not scored)."""
    parts = ['<h2 id="metrics">Metrics</h2>']
    if metrics:
        parts.append(to_html_table(metrics_frame(metrics, untrained), "metrics"))
        missing = [m for m in methods if m not in metrics]
        if missing:
            parts.append(f"<p>Not scored: {html.escape(', '.join(missing))} (see the failures table).</p>")
    elif "truth_fraction" in stats:
        parts.append("<p>Not scored: no metrics records for this tomogram.</p>")
    else:
        parts.append("<p>No ground truth for this tomogram: not scored (overlays only).</p>")
    return parts


def _fractions_section(untrained: Sequence[str], stats: dict[str, Any]) -> list[str]:
    """A tomogram page's table of foreground fractions: the ground truth's, then each mask's."""
    fractions = [
        {"mask": label(m, untrained), "fraction of voxels": f}
        for m, f in stats.get("mask_fraction", {}).items()
    ]
    if "truth_fraction" in stats:
        fractions.insert(0, {"mask": "groundtruth", "fraction of voxels": stats["truth_fraction"]})
    table = to_html_table(pd.DataFrame(fractions, columns=["mask", "fraction of voxels"]), "fractions")
    return ['<h2 id="fractions">Mask fraction</h2>', table]


def _provenance_section(provenance: dict[str, str | os.PathLike], untrained: Sequence[str]) -> list[str]:
    """A tomogram page's provenance records, one folded block per method."""
    parts = ['<h2 id="provenance">Provenance</h2>']
    for method, path in provenance.items():
        p = Path(path)
        body = html.escape(json.dumps(read_json(p), indent=2, default=str)) if p.exists() else "(no record)"
        parts.append(
            f"<details><summary>{html.escape(label(method, untrained))}: <code>{html.escape(str(p))}</code>"
            f"</summary><pre>{body}</pre></details>"
        )
    return parts


def _untrained_status(
    methods: Sequence[str],
    untrained: Iterable[str],
    provenance: dict[str, str | os.PathLike],
    metrics: dict[str, str | os.PathLike],
) -> tuple[list[str], list[str]]:
    """(untrained, unknown) methods from the given list, the provenance records and the metrics records."""
    marked = set(untrained)
    known = set(marked)
    for m in methods:
        for path in (provenance.get(m), metrics.get(m)):
            if path is not None and Path(path).exists():
                flag = read_json(path).get("untrained")
                if flag is not None:
                    known.add(m)
                    if flag:
                        marked.add(m)
    return [m for m in methods if m in marked], [m for m in methods if m not in known]


def _isnan(value: object) -> bool:
    """Whether a runs-sheet value is a float NaN (an empty cell)."""
    return isinstance(value, float) and math.isnan(value)


INDEX_TEXT_COLUMNS = (
    *("tomo", "dataset_id", "run_id", "name", "status", "tomogram_id", "shape", "untrained"),
    *("attempts", "retry_after", "reason"),
)
"""Columns of the night's HTML table shown empty, not as NaN, where a run has no value."""


def write_index(
    night_dir: Path,
    night_id: str,
    status: str,
    since: str,
    rows: list[dict[str, Any]],
    pending: int,
    methods: list[str],
    backlog: str | None = None,
) -> Path:
    """The night's HTML page (`index.html`): status, backlog, untrained banner and a table of the runs that
    links each run to its page (`tomogram_page`, one per run under `pages/`)."""
    columns = ["tomo", "dataset_id", "run_id", "name", "status", "tomogram_id", "shape", "voxel_spacing"]
    columns += ["truth_fraction", *(f"{m}_{k}" for m in methods for k in ("fraction", "dice", "iou"))]
    columns += ["untrained", "gpu_hours", "attempts", "retry_after", "reason"]
    columns = [c for c in columns if c in ("tomo", "status") or any(r.get(c) not in (None, "") for r in rows)]
    table = pd.DataFrame(
        [
            {
                c: r.get(c) if r.get(c) is not None else ("" if c in INDEX_TEXT_COLUMNS else math.nan)
                for c in columns
            }
            for r in rows
        ],
        columns=columns,
    )
    done = sum(r["status"] == "processed" for r in rows)
    untrained = sorted({m for r in rows for m in str(r.get("untrained") or "").split(", ") if m})
    parts = [
        f"<h1>Night {html.escape(night_id)}</h1>",
        f"<p><strong>Status:</strong> {html.escape(status)}.</p>",
        f"<p>Runs released or modified since {html.escape(since)}: {len(rows)} in this batch, {done} processed, "
        f"{len(rows) - done} failed, {pending} still pending.</p>",
        untrained_banner(untrained),
    ]
    if backlog:
        parts.append(f"<h2>Backlog</h2><p>{html.escape(backlog)}</p>")
    parts += [
        "<h2>Runs</h2>",
        to_html_table(table, "runs", links={"tomo": [r.get("page") for r in rows]}),
        "<p>A run's key (tomo) links to its page (overlays, mask fractions, metrics, runtime, provenance); pages are "
        'drawn for the first <code>report_figures</code> processed runs. Also: <a href="report.md">report.md</a>, '
        '<a href="report.tsv">report.tsv</a>.</p>',
    ]
    index = night_dir / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(html_page(f"night {night_id}", "\n".join(p for p in parts if p)))
    return index
