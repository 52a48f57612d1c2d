"""Per-method summary statistics and paired significance tests, as in the ETSAM paper.

For each metric and each pair of methods (in the order given), on the tomograms both methods have:
Shapiro-Wilk on the paired differences (normal when p >= 0.05), a paired t-test, Bonferroni
alpha = 0.05 / number of pairs, and a marker on the raw t-test p-value: ns (p >= alpha), * (p < alpha),
** (p < 0.01), *** (p < 0.001). When the differences are not normal, the Wilcoxon signed-rank p-value is
reported as well (otherwise NaN). Standard deviations use ddof=1.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from tomoseg.core.io import InputError

log = logging.getLogger(__name__)

METRICS = ("dice", "iou", "precision", "recall")
FAMILY_ALPHA = 0.05
SHAPIRO_ALPHA = 0.05
TTEST_COLUMNS = [
    "metric",
    "method_a",
    "method_b",
    "n",
    "mean_difference",
    "shapiro_p",
    "normal",
    "ttest_p",
    "alpha",
    "marker",
    "wilcoxon_p",
]


def read_per_tomogram(path: str | os.PathLike, metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Read a per-tomogram CSV (key: `tomo`, else dataset_id + run_id) indexed by a string key."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype={"tomo": str, "dataset_id": str, "run_id": str})
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable CSV ({err})") from None
    if "tomo" in df.columns:
        key = df["tomo"].astype(str)
    elif {"dataset_id", "run_id"} <= set(df.columns):
        key = df["dataset_id"].astype(str) + "/" + df["run_id"].astype(str)
    else:
        raise InputError(f"{path}: needs a 'tomo' column or 'dataset_id' and 'run_id' columns")
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise InputError(f"{path}: missing metric columns {missing} (has {list(df.columns)})")
    if key.duplicated().any():
        raise InputError(f"{path}: duplicate tomograms {sorted(key[key.duplicated()].unique())}")
    df = df.assign(key=key.values).set_index("key")
    for m in metrics:
        df[m] = pd.to_numeric(df[m], errors="coerce")
    return df


def summary_table(frames: dict[str, pd.DataFrame], metrics: tuple[str, ...] = METRICS) -> pd.DataFrame:
    """Mean, sd (ddof=1) and n per method and metric (NaN values excluded and counted)."""
    rows = []
    for method, df in frames.items():
        row: dict[str, object] = {"method": method}
        for m in metrics:
            values = df[m].dropna()
            row[f"{m}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{m}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            row[f"{m}_n"] = int(len(values))
        rows.append(row)
    return pd.DataFrame(rows)


MIN_TEST_N = 5
"""Below this many paired tomograms a paired t-test means nothing: no significance marker, in the paired-tests
table and in Figure 1b alike (the marker column says `n=3 < 5` instead)."""


def too_few_marker(n: int) -> str:
    """The marker of a pair with fewer than MIN_TEST_N tomograms: the count, instead of a significance level."""
    return f"n={n} < {MIN_TEST_N}"


def marker(p: float, alpha: float) -> str:
    """Significance marker on the raw p-value against the Bonferroni alpha."""
    if not np.isfinite(p) or p >= alpha:
        return "ns"
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    return "*"


@dataclass
class PairingReport:
    """Tomograms a method pair could not be compared on (present for one method only)."""

    method_a: str
    method_b: str
    only_a: list[str]
    only_b: list[str]


def paired_tests(
    frames: dict[str, pd.DataFrame], metrics: tuple[str, ...] = METRICS
) -> tuple[pd.DataFrame, list[PairingReport]]:
    """Paired tests for every metric and pair of methods; also which tomograms were unpaired."""
    pairs = list(itertools.combinations(frames, 2))
    alpha = FAMILY_ALPHA / len(pairs) if pairs else math.nan
    rows, reports = [], []
    for a, b in pairs:
        da, db = frames[a], frames[b]
        common = da.index.intersection(db.index, sort=False)
        only_a = sorted(set(da.index) - set(db.index))
        only_b = sorted(set(db.index) - set(da.index))
        if only_a or only_b:
            log.warning("%s vs %s: unpaired tomograms (%s only: %s; %s only: %s)", a, b, a, only_a, b, only_b)
            reports.append(PairingReport(a, b, only_a, only_b))
        for m in metrics:
            x = da.loc[common, m].to_numpy(float)
            y = db.loc[common, m].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            x, y = x[ok], y[ok]
            rows.append(
                {"metric": m, "method_a": a, "method_b": b, "alpha": alpha, **_test_pair(x, y, alpha)}
            )
    return pd.DataFrame(rows, columns=TTEST_COLUMNS), reports


def _test_pair(x: np.ndarray, y: np.ndarray, alpha: float) -> dict[str, object]:
    n = len(x)
    d = x - y
    out: dict[str, object] = {"n": n, "mean_difference": float(d.mean()) if n else math.nan}
    shapiro_p = math.nan
    if n >= 3 and np.ptp(d) > 0:
        shapiro_p = float(sps.shapiro(d).pvalue)
    normal = bool(shapiro_p >= SHAPIRO_ALPHA) if np.isfinite(shapiro_p) else None
    ttest_p = float(sps.ttest_rel(x, y).pvalue) if n >= 2 else math.nan
    wilcoxon_p = math.nan
    if normal is False:
        wilcoxon_p = float(sps.wilcoxon(x, y).pvalue)
    out.update(
        {
            "shapiro_p": shapiro_p,
            "normal": normal,
            "ttest_p": ttest_p,
            "marker": marker(ttest_p, alpha) if n >= MIN_TEST_N else too_few_marker(n),
            "wilcoxon_p": wilcoxon_p,
        }
    )
    return out
