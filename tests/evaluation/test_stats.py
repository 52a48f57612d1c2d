"""Statistics and tables: the paper's Table 1 and significance pattern, scipy parity, Wilcoxon branch."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tomoseg.evaluation.stats import marker, paired_tests, read_per_tomogram, summary_table
from tomoseg.reporting.paper import run_stats
from tomoseg.reporting.tables import paper_comparison, paper_per_tomogram_paths

PAPER_MEANS = {
    ("etsam", "dice"): 0.7867,
    ("etsam", "iou"): 0.6751,
    ("etsam", "precision"): 0.8016,
    ("etsam", "recall"): 0.8025,
    ("membrain", "precision"): 0.4741,
    ("membrain", "recall"): 0.7362,
    ("tardis", "precision"): 0.6202,
    ("tardis", "recall"): 0.5742,
}


@pytest.fixture(scope="module")
def paper_frames():
    return {m: read_per_tomogram(p) for m, p in paper_per_tomogram_paths().items()}


def test_paper_table1_means(paper_frames):
    summary = summary_table(paper_frames).set_index("method")
    for (method, metric), value in PAPER_MEANS.items():
        assert round(summary.loc[method, f"{metric}_mean"], 4) == value
    assert (summary[[c for c in summary.columns if c.endswith("_n")]] == 10).all().all()


def test_paper_significance_pattern_and_scipy_parity(paper_frames):
    tests, unpaired = paired_tests(paper_frames)
    assert unpaired == []
    t = tests.set_index(["metric", "method_a", "method_b"])
    assert np.allclose(tests["alpha"], 0.05 / 3)
    for metric in ("dice", "iou", "precision"):
        for other in ("membrain", "tardis"):
            row = t.loc[(metric, "etsam", other)]
            assert row["ttest_p"] < row["alpha"] and row["marker"] != "ns" and row["mean_difference"] > 0
    assert t.loc[("recall", "etsam", "tardis"), "marker"] != "ns"
    assert t.loc[("recall", "etsam", "membrain"), "marker"] == "ns"
    # the published t-test.py numbers
    assert t.loc[("dice", "etsam", "membrain"), "ttest_p"] == pytest.approx(0.0030, abs=5e-5)
    assert t.loc[("dice", "etsam", "tardis"), "ttest_p"] == pytest.approx(5.0e-5, abs=5e-7)
    # p-values equal scipy's
    for (metric, a, b), row in t.iterrows():
        x, y = paper_frames[a][metric], paper_frames[b].loc[paper_frames[a].index, metric]
        assert row["ttest_p"] == pytest.approx(sps.ttest_rel(x, y).pvalue, abs=1e-6)
        assert row["shapiro_p"] == pytest.approx(sps.shapiro(x.to_numpy() - y.to_numpy()).pvalue, abs=1e-6)


def test_markers():
    alpha = 0.05 / 3
    assert [marker(p, alpha) for p in (0.5, 0.0167, 0.016, 0.009, 0.0009)] == ["ns", "ns", "*", "**", "***"]
    assert marker(0.007, 0.005) == "ns"  # ** only once below alpha
    assert marker(float("nan"), alpha) == "ns"


def test_wilcoxon_branch_on_non_normal_differences(tmp_path):
    rng = np.random.default_rng(0)
    n = 20
    base = rng.uniform(0.3, 0.7, n)
    diff = np.r_[np.full(n - 3, 0.01), [0.5, 0.6, 0.7]]  # heavily skewed differences
    a = pd.DataFrame(
        {
            "tomo": [f"t{i}" for i in range(n)],
            "dice": base + diff,
            "iou": base + diff,
            "precision": base + diff,
            "recall": base + diff,
        }
    )
    b = a.assign(dice=base, iou=base, precision=base, recall=base)
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    result = run_stats({"a": tmp_path / "a.csv", "b": tmp_path / "b.csv"}, tmp_path / "out", figure=False)
    row = result["ttests"].iloc[0]
    assert row["shapiro_p"] < 0.05 and row["normal"] == False  # noqa: E712
    assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(base + diff, base).pvalue, abs=1e-6)


def test_missing_tomogram_is_reported(tmp_path, cli_main):
    a = pd.DataFrame(
        {
            "tomo": ["x", "y", "z", "w"],
            "dice": [0.5, 0.6, 0.7, 0.65],
            "iou": 0.4,
            "precision": 0.5,
            "recall": [0.5, 0.7, 0.6, 0.8],
        }
    )
    b = a.iloc[:3].assign(dice=[0.4, 0.5, 0.65])
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "out"
    argv = [
        "stats",
        "--method",
        f"a={tmp_path / 'a.csv'}",
        "--method",
        f"b={tmp_path / 'b.csv'}",
        "--out",
        str(out),
    ]
    assert cli_main([*argv, "--untrained", "b"]) == 0
    unpaired = pd.read_csv(out / "unpaired.csv")
    assert list(unpaired["tomo"]) == ["w"] and list(unpaired["present_in"]) == ["a"]
    tests = pd.read_csv(out / "ttests.csv")
    assert list(tests.columns) == [
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
    assert (tests["n"] == 3).all()
    md = (out / "table1.md").read_text()
    assert "b (untrained)" in md and "unpaired tomogram w" in md
    assert (out / "figure1b.png").stat().st_size > 0 and (out / "figure1b.pdf").exists()
    bad = ["stats", "--method", f"a={tmp_path / 'nope.csv'}", "--out", str(out)]
    assert cli_main(bad) == 2


def test_paper_comparison_difference():
    ours = pd.DataFrame([{"method": "etsam", "dice": 0.8, "auprc": 0.8}])
    comp = paper_comparison(ours).set_index(["method", "quantity"])
    assert comp.loc[("etsam", "dice"), "difference"] == pytest.approx(0.8 - 0.7867)
    assert np.isnan(comp.loc[("membrain", "dice"), "ours"])


def test_too_few_pairs_get_no_marker_in_the_table():
    """One rule for the table and Figure 1b: below MIN_TEST_N pairs no *, ** or ***, however small p is."""
    from tomoseg.evaluation.stats import MIN_TEST_N, paired_tests

    idx = [f"t{i}" for i in range(MIN_TEST_N)]
    a = pd.DataFrame({"dice": [0.9, 0.91, 0.92, 0.93, 0.94]}, index=idx)
    b = pd.DataFrame({"dice": [0.1, 0.12, 0.13, 0.11, 0.1]}, index=idx)
    few, _ = paired_tests({"a": a.iloc[:3], "b": b.iloc[:3]}, metrics=("dice",))
    assert few.iloc[0]["ttest_p"] < 0.001 and few.iloc[0]["marker"] == f"n=3 < {MIN_TEST_N}"
    enough, _ = paired_tests({"a": a, "b": b}, metrics=("dice",))
    assert enough.iloc[0]["marker"] == "***"
