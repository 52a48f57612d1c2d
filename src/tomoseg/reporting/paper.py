"""The paper-statistics use case (`tomoseg stats`): Table 1, the paired tests and Figure 1b from
per-tomogram metric CSVs, such as the paper's own published numbers."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from tomoseg.evaluation.stats import METRICS, paired_tests, read_per_tomogram, summary_table
from tomoseg.reporting import figures, tables


def run_stats(
    inputs: dict[str, str | os.PathLike],
    out_dir: str | os.PathLike,
    untrained: tuple[str, ...] | list[str] = (),
    metrics: tuple[str, ...] = METRICS,
    figure: bool = True,
) -> dict[str, pd.DataFrame]:
    """Table 1 (csv + md), ttests.csv (+ md), unpaired.csv and Figure 1b from per-tomogram CSVs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames = {name: read_per_tomogram(path, metrics) for name, path in inputs.items()}
    summary = summary_table(frames, metrics)
    tests, reports = paired_tests(frames, metrics)
    unpaired = pd.DataFrame(
        [
            {"method_a": r.method_a, "method_b": r.method_b, "tomo": t, "present_in": present}
            for r in reports
            for t, present in [(t, r.method_a) for t in r.only_a] + [(t, r.method_b) for t in r.only_b]
        ],
        columns=["method_a", "method_b", "tomo", "present_in"],
    )
    notes = [
        "mean ± sd over tomograms (sd with ddof=1)",
        *(f"{m}: produced with untrained weights" for m in untrained if m in frames),
        *(
            f"unpaired tomogram {r['tomo']} (only in {r['present_in']}) left out of {r['method_a']} vs {r['method_b']}"
            for _, r in unpaired.iterrows()
        ),
    ]
    tables.write_table(tables.table1(summary, metrics, untrained), out / "table1.csv", "Table 1", notes)
    tables.write_table(summary, out / "table1_numeric.csv")
    n_pairs = len(frames) * (len(frames) - 1) // 2
    test_notes = [
        f"paired t-test per metric and method pair; Bonferroni alpha = 0.05/{n_pairs}; markers on the raw p-value: "
        "ns (p >= alpha), * (p < alpha), ** (p < 0.01), *** (p < 0.001)",
        "Shapiro-Wilk on the paired differences at 0.05; wilcoxon_p (signed-rank) reported where normality fails",
    ]
    tables.write_table(tests, out / "ttests.csv", "Paired tests", test_notes)
    tables.write_table(unpaired, out / "unpaired.csv", "Unpaired tomograms")
    if figure and len(frames):
        figures.box_plots(frames, tests, metrics, out / "figure1b", untrained)
    return {"summary": summary, "ttests": tests, "unpaired": unpaired}
