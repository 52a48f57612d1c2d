"""Tables of the plane-wise and theta-wise (orientation) metrics across tomograms and methods.

Each metrics record written with plane-wise metrics carries `plane_wise: {xy|xz|yz: {dice, iou, precision,
recall}}`, one with theta-wise metrics `theta_wise: [{bin, recall, precision, truth_voxels, pred_voxels,
truth_predicted, pred_true}, ...]` (tomoseg.evaluation.planewise, tomoseg.evaluation.orientation). Here
they become per-tomogram frames (one column per plane and metric, or per bin and metric), mean ± sd
tables (sd ddof=1, as Table 1) with pooled θ-bin ratios (counts summed over tomograms), and the paper's
paired tests between methods (tomoseg.evaluation.stats.paired_tests) on those columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from tomoseg.core.io import read_json
from tomoseg.core.methods import PAPER_METHODS
from tomoseg.evaluation.planewise import PLANE_METRICS, PLANES
from tomoseg.evaluation.stats import TTEST_COLUMNS, paired_tests

PLANE_COLUMNS = [
    "method",
    "plane",
    *(f"{m}_{s}" for m in PLANE_METRICS for s in ("mean", "sd")),
    "n",
]
THETA_COLUMNS = [
    "method",
    "bin",
    "bin_lo",
    "bin_hi",
    "recall_mean",
    "recall_sd",
    "precision_mean",
    "precision_sd",
    "n",
    "pooled_recall",
    "pooled_precision",
    "truth_voxels",
    "pred_voxels",
]


def bin_name(lo: float, hi: float) -> str:
    """A θ bin as a column and row name: '0-30'."""
    return f"{lo:g}-{hi:g}"


def _records(frame: pd.DataFrame) -> list[tuple[str, dict[str, Any]]]:
    """(tomo, metrics record) of every tomogram of a method frame (its `_json` column)."""
    return [(row["tomo"], read_json(row["_json"])) for _, row in frame.iterrows()]


def plane_frames(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per method: one row per tomogram with plane-wise metrics, columns `<plane>_<metric>`."""
    out = {}
    for method, frame in frames.items():
        rows = [
            {
                "tomo": tomo,
                "empty_slices": rec.get("plane_wise_empty_slices"),
                **{f"{p}_{m}": rec["plane_wise"][p][m] for p in PLANES for m in PLANE_METRICS},
            }
            for tomo, rec in _records(frame)
            if "plane_wise" in rec
        ]
        if rows:
            out[method] = pd.DataFrame(rows).set_index("tomo", drop=False)
    return out


def theta_frames(
    frames: dict[str, pd.DataFrame],
) -> tuple[dict[str, pd.DataFrame], list[tuple[float, float]], list[str]]:
    """Per method: one row per tomogram with θ-bin metrics and counts, columns `<metric>_<lo-hi>`; the bins;
    and the records (method/tomo) left out because their bins differ from the first record's (one table, one
    set of bins).
    """
    out: dict[str, pd.DataFrame] = {}
    bins: list[tuple[float, float]] | None = None
    other_bins: list[str] = []
    for method, frame in frames.items():
        rows = []
        for tomo, rec in _records(frame):
            if "theta_wise" not in rec:
                continue
            these = [(float(r["bin"][0]), float(r["bin"][1])) for r in rec["theta_wise"]]
            bins = these if bins is None else bins
            if these != bins:
                other_bins.append(f"{method}/{tomo}")
                continue
            row: dict[str, Any] = {"tomo": tomo}
            for r in rec["theta_wise"]:
                name = bin_name(*r["bin"])
                for key in (
                    "recall",
                    "precision",
                    "truth_voxels",
                    "pred_voxels",
                    "truth_predicted",
                    "pred_true",
                ):
                    row[f"{key}_{name}"] = r[key]
            rows.append(row)
        if rows:
            out[method] = pd.DataFrame(rows).set_index("tomo", drop=False)
    return out, bins or [], other_bins


def convention_notes(per: dict[str, pd.DataFrame]) -> list[str]:
    """A table note naming the empty-slice convention(s) of the plane-wise records."""
    found = sorted({str(v) for df in per.values() for v in df["empty_slices"]})
    if not found:
        return []
    return [
        f"a slice where both masks are empty: {' / '.join(found)} (zero = scores 0, upstream's; skip; one)"
    ]


def _mean_sd(values: pd.Series) -> tuple[float, float]:
    v = values.astype(float).dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan)


def plane_table(per: dict[str, pd.DataFrame], label: Callable[[str], str]) -> pd.DataFrame:
    """Mean and sd (ddof=1) over tomograms of each plane-wise metric, per method and plane."""
    rows = []
    for method, df in per.items():
        for plane in PLANES:
            row: dict[str, Any] = {"method": label(method), "plane": plane.upper()}
            for m in PLANE_METRICS:
                row[f"{m}_mean"], row[f"{m}_sd"] = _mean_sd(df[f"{plane}_{m}"])
            row["n"] = len(df)
            rows.append(row)
    return pd.DataFrame(rows, columns=PLANE_COLUMNS)


def theta_table(
    per: dict[str, pd.DataFrame], bins: Sequence[tuple[float, float]], label: Callable[[str], str]
) -> pd.DataFrame:
    """Per method and θ bin: recall and precision mean ± sd over tomograms, and pooled over all voxels."""
    rows = []
    for method, df in per.items():
        for lo, hi in bins:
            name = bin_name(lo, hi)
            tv, tp = int(df[f"truth_voxels_{name}"].sum()), int(df[f"truth_predicted_{name}"].sum())
            pv, pt = int(df[f"pred_voxels_{name}"].sum()), int(df[f"pred_true_{name}"].sum())
            recall_mean, recall_sd = _mean_sd(df[f"recall_{name}"])
            precision_mean, precision_sd = _mean_sd(df[f"precision_{name}"])
            rows.append(
                {
                    "method": label(method),
                    "bin": name,
                    "bin_lo": lo,
                    "bin_hi": hi,
                    "recall_mean": recall_mean,
                    "recall_sd": recall_sd,
                    "precision_mean": precision_mean,
                    "precision_sd": precision_sd,
                    "n": len(df),
                    "pooled_recall": tp / tv if tv else math.nan,
                    "pooled_precision": pt / pv if pv else math.nan,
                    "truth_voxels": tv,
                    "pred_voxels": pv,
                }
            )
    return pd.DataFrame(rows, columns=THETA_COLUMNS)


def paired(per: dict[str, pd.DataFrame], metrics: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """The paper's paired tests between methods on these per-tomogram columns, and notes on unpaired tomograms."""
    if len(per) < 2:
        return pd.DataFrame(columns=TTEST_COLUMNS), []
    tests, unpaired = paired_tests(per, tuple(metrics))
    return tests, [f"unpaired: {r.method_a} only {r.only_a}, {r.method_b} only {r.only_b}" for r in unpaired]


def plane_metric_columns() -> list[str]:
    """The per-tomogram columns of the plane-wise paired tests: `<plane>_<metric>`."""
    return [f"{p}_{m}" for p in PLANES for m in PLANE_METRICS]


def theta_metric_columns(bins: Sequence[tuple[float, float]]) -> list[str]:
    """The per-tomogram columns of the theta-wise paired tests: `recall_<bin>`, `precision_<bin>`."""
    return [f"{m}_{bin_name(lo, hi)}" for lo, hi in bins for m in ("recall", "precision")]


def write_tables(summary: Any) -> None:
    """Plane-wise and θ-bin tables of every method, and the paired tests of the paper's methods on them, through
    the summary step's writer (`reporting.summary`: its frames, labels and `write`)."""
    off = "not computed (evaluate.plane_wise / evaluate.theta_wise off, or no record has them)"
    per = plane_frames(summary.frames)
    summary.write(
        "plane_wise",
        plane_table(per, summary.label),
        "Plane-wise metrics: per-slice scores averaged per plane, mean ± sd over tomograms",
        ["sd with ddof=1", *convention_notes(per), *([] if per else [off])],
    )
    main = {m: per[m] for m in PAPER_METHODS if m in per}
    tests, notes = paired(main, plane_metric_columns())
    summary.write("plane_wise_ttests", tests, "Paired tests on plane-wise metrics", notes)
    per, bins, other_bins = theta_frames(summary.frames)
    summary.write(
        "theta_wise",
        theta_table(per, bins, summary.label),
        "Recall and precision per θ bin (angle between membrane normal and beam)",
        [
            "recall from ground-truth normals, precision from prediction normals; pooled = counts summed over tomograms",
            *([] if per else [off]),
            *([f"left out, scored with other θ bins: {', '.join(other_bins)}"] if other_bins else []),
        ],
    )
    main = {m: per[m] for m in PAPER_METHODS if m in per}
    tests, notes = paired(main, theta_metric_columns(bins))
    summary.write("theta_wise_ttests", tests, "Paired tests on recall and precision per θ bin", notes)
