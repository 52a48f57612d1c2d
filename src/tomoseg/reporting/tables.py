"""Tables: Table 1 (mean ± sd), per-tomogram tables, threshold/runtime tables, paper comparison; CSV + Markdown."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import pandas as pd

from tomoseg.core.io import atomic_path
from tomoseg.core.methods import METHODS, label
from tomoseg.evaluation.stats import METRICS


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
    summary: pd.DataFrame, metrics: tuple[str, ...] = METRICS, untrained: Iterable[str] = ()
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


def to_markdown(df: pd.DataFrame, title: str | None = None, notes: Iterable[str] = ()) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency), with an optional title and notes."""
    cells = df.astype(object).where(df.notna(), "NaN")

    def cell(v: object, column: str) -> str:
        if isinstance(v, float):
            if column.endswith("_p") and not math.isnan(v):
                return f"{v:.3g}"  # p-values: significant digits, not fixed decimals
            return fmt(v)
        return str(v).replace("|", "\\|")

    lines = []
    if title:
        lines += [f"### {title}", ""]
    lines.append("| " + " | ".join(str(c) for c in df.columns) + " |")
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    for _, row in cells.iterrows():
        lines.append("| " + " | ".join(cell(v, str(c)) for c, v in zip(df.columns, row, strict=True)) + " |")
    notes = list(notes)
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def write_table(
    df: pd.DataFrame, csv_path: str | os.PathLike, title: str | None = None, notes: Iterable[str] = ()
) -> None:
    """Write `df` as CSV and as Markdown beside it (same stem, .md), atomically."""
    csv_path = Path(csv_path)
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(csv_path.with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(df, title, notes))


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
