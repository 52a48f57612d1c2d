"""Tables: Table 1 (mean ± sd), per-tomogram tables, threshold/runtime tables, paper comparison; CSV + Markdown + HTML."""

from __future__ import annotations

import html
import logging
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from tomoseg.core.io import atomic_path
from tomoseg.core.methods import METHODS, label
from tomoseg.evaluation.stats import METRICS

log = logging.getLogger(__name__)


def paper_file(name: str) -> Path:
    """Path of a bundled copy of the paper's published tables (src/tomoseg/data/paper/)."""
    return Path(str(resources.files("tomoseg") / "data" / "paper" / name))


def paper_per_tomogram_paths() -> dict[str, Path]:
    """The paper's per-tomogram CSVs by method name."""
    return {m.name: paper_file(f"{m.paper_file}_per_tomogram.csv") for m in METHODS.values() if m.paper_file}


def fmt(value: float, digits: int = 4) -> str:
    """A number with fixed decimals for the tables, "NaN" for a missing one."""
    return (
        "NaN" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def table1(
    summary: pd.DataFrame,
    metrics: tuple[str, ...] = METRICS,
    untrained: Iterable[str] | Mapping[str, str] = (),
) -> pd.DataFrame:
    """Table 1 as text cells 'mean ± sd' per method (rows) and metric (columns), with n."""
    rows = []
    for _, r in summary.iterrows():
        row = {"method": label(r["method"], untrained)}
        for m in metrics:
            row[m] = f"{fmt(r[f'{m}_mean'])} ± {fmt(r[f'{m}_sd'])}"
        ns = sorted({int(r[f"{m}_n"]) for m in metrics})
        row["n"] = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"  # metrics undefined on some tomograms
        rows.append(row)
    return pd.DataFrame(rows)


def cell_text(value: object, column: str) -> str:
    """A table cell as text: fixed decimals, p-values in significant digits, "NaN" for a missing value."""
    if isinstance(value, float):
        if column.endswith("_p") and not math.isnan(value):
            return f"{value:.3g}"  # p-values: significant digits, not fixed decimals
        return fmt(value)
    return str(value)


def to_markdown(df: pd.DataFrame, title: str | None = None, notes: Iterable[str] = ()) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency), with an optional title and notes."""
    cells = df.astype(object).where(df.notna(), "NaN")
    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(str(c) for c in df.columns) + " |")
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    for _, row in cells.iterrows():
        lines.append(
            "| "
            + " | ".join(
                cell_text(v, str(c)).replace("|", "\\|") for c, v in zip(df.columns, row, strict=True)
            )
            + " |"
        )
    notes = list(notes)
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.2em; color: #222; }
h1 { font-size: 1.25em; }
table.tomoseg { border-collapse: collapse; font-size: 0.9em; }
table.tomoseg th, table.tomoseg td { border: 1px solid #ccc; padding: 0.3em 0.6em; }
table.tomoseg th { background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }
table.tomoseg td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.tomoseg tbody tr:nth-child(even) { background: #fafafa; }
.untrained { background: #fff3cd; border: 1px solid #e0c36a; padding: 0.5em 0.8em; margin: 0.6em 0; }
ul.notes { font-size: 0.9em; color: #444; }
img.figure { max-width: 100%; height: auto; border: 1px solid #ddd; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""

# Click a header to sort by that column (numbers numerically, "NaN" last); a second click reverses.
HTML_SORT_SCRIPT = """
document.querySelectorAll("table.tomoseg").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var asc = th.dataset.order !== "asc"; th.dataset.order = asc ? "asc" : "desc";
      var key = function (r) { var t = r.cells[col].textContent.trim(); var x = parseFloat(t);
        return isNaN(x) ? (t === "NaN" ? null : t) : x; };
      rows.sort(function (a, b) { var x = key(a), y = key(b);
        if (x === null) return 1; if (y === null) return -1;
        var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return asc ? c : -c; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (inline style and the table-sorting script) around `body`."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head>\n<body>\n{body}\n"
        f"<script>{HTML_SORT_SCRIPT}</script>\n</body></html>\n"
    )


def to_html_table(
    df: pd.DataFrame, table_id: str | None = None, links: dict[str, Sequence[str | None]] | None = None
) -> str:
    """`df` as an HTML table (class "tomoseg", numbers right-aligned), cells formatted as in the Markdown.

    `links` maps a column to one link target per row (None: that cell has no link).
    """
    cells = df.astype(object).where(df.notna(), "NaN")
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    links = links or {}
    rows = []
    for i, (_, row) in enumerate(cells.iterrows()):
        tds = []
        for c, v in zip(df.columns, row, strict=True):
            numeric = isinstance(v, numbers.Number) and not isinstance(v, bool)
            cls = ' class="num"' if numeric else ""
            text = html.escape(cell_text(v, str(c)))
            href = links[c][i] if c in links else None
            if href:
                text = f'<a href="{html.escape(href)}">{text}</a>'
            tds.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    return (
        f'<table class="tomoseg"{ident}><thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def untrained_banner(methods: Iterable[str]) -> str:
    """The highlighted warning that outputs of `methods` came from untrained weights ("" when there are none)."""
    shown = list(methods)
    if not shown:
        return ""
    return (
        '<p class="untrained"><strong>Untrained weights:</strong> '
        + html.escape(", ".join(shown))
        + " came from random/test weights; their numbers say nothing about the methods.</p>"
    )


def notes_html(notes: Iterable[str]) -> str:
    """Notes under a table as an HTML list, untrained notes highlighted."""
    items = []
    for n in notes:
        cls = ' class="untrained"' if "untrained" in n else ""
        items.append(f"<li{cls}>{html.escape(n)}</li>")
    return f'<ul class="notes">{"".join(items)}</ul>' if items else ""


def to_html(df: pd.DataFrame, title: str | None = None, notes: Iterable[str] = ()) -> str:
    """A readable, sortable HTML page of `df` with its title and notes (what the report shows)."""
    heading = f"<h1>{html.escape(title)}</h1>\n" if title else ""
    body = f"{heading}{to_html_table(df, 'table')}\n{notes_html(notes)}\n<p>{len(df)} rows.</p>"
    return html_page(title or "table", body)


def write_table(
    df: pd.DataFrame, csv_path: str | os.PathLike, title: str | None = None, notes: Iterable[str] = ()
) -> None:
    """Write `df` as CSV, Markdown (.md) and readable HTML (.html) beside it (same stem), atomically."""
    csv_path = Path(csv_path)
    notes = list(notes)
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(csv_path.with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(df, title, notes))
    with atomic_path(csv_path.with_suffix(".html")) as tmp:
        tmp.write_text(to_html(df, title or csv_path.stem, notes))
    for path in (csv_path, csv_path.with_suffix(".md"), csv_path.with_suffix(".html")):
        log.info("wrote %s", path)


def paper_comparison(ours: pd.DataFrame, paper_csv: str | os.PathLike | None = None) -> pd.DataFrame:
    """Ours next to the paper's Table 1 / runtime numbers with the difference (ours - paper).

    `ours` has a `method` column and any of the paper's columns (dice, iou, precision, recall, auprc,
    runtime_s_mean, cpu_mem_mb_mean, gpu_mem_mb_mean, ...).
    """
    paper = pd.read_csv(paper_csv or paper_file("table1_and_runtime.csv"))
    rows = []
    for _, p in paper.iterrows():
        mine = ours[ours["method"] == p["method"]]
        for col in paper.columns:
            if col == "method":
                continue
            value = float(mine.iloc[0][col]) if len(mine) and col in mine.columns else math.nan
            rows.append(
                {
                    "method": p["method"],
                    "quantity": col,
                    "paper": float(p[col]),
                    "ours": value,
                    "difference": value - float(p[col]) if not math.isnan(value) else math.nan,
                }
            )
    return pd.DataFrame(rows)


def paper_threshold_sweep(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The paper's ETSAM means per Stage-2 threshold and for Stage 1: columns method, threshold, metric, paper."""
    sweep = pd.read_csv(path or paper_file("etsam_threshold_sweep.csv"))
    rows = []
    for col in sweep.columns:
        if col.startswith("etsam_stage2_"):
            metric, _, t = col[len("etsam_stage2_") :].rpartition("_")
            rows.append(
                {
                    "method": "etsam",
                    "threshold": float(t),
                    "metric": metric,
                    "paper": float(sweep[col].mean()),
                }
            )
        elif col.startswith("etsam_stage1_grid_zero_"):
            metric = col[len("etsam_stage1_grid_zero_") :]
            rows.append(
                {
                    "method": "etsam_stage1",
                    "threshold": 0.0,
                    "metric": metric,
                    "paper": float(sweep[col].mean()),
                }
            )
    return pd.DataFrame(rows)
