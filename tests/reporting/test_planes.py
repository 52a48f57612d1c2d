"""Plane-wise and theta-wise tables, paired tests and figure from real metrics records (no Snakemake)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from tomoseg.core.io import write_volume
from tomoseg.evaluation.metrics import evaluate_files
from tomoseg.evaluation.orientation import ThetaOptions
from tomoseg.evaluation.planewise import PlaneOptions
from tomoseg.reporting.figures import build_figures
from tomoseg.reporting.summary import build_summaries
from tomoseg.testing.synthetic import membrane_mask

METHODS = {"etsam": 0.02, "membrain": 0.06, "tardis": 0.12}  # fraction of membrane voxels each one misses
TOMOS = ("a", "b", "c", "d", "e")


@pytest.fixture(scope="module")
def summarized(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planes")
    res = tmp / "results"
    for j, tomo in enumerate(TOMOS):
        truth = membrane_mask((12, 32, 32), seed=j, n_shells=2, n_specks=5)
        write_volume(tmp / f"t{tomo}.mrc", truth, 1.0)
        for i, (method, miss) in enumerate(METHODS.items()):
            rng = np.random.default_rng(100 * i + j)
            pred = truth & (rng.random(truth.shape) >= miss)
            pred[rng.random(truth.shape) < 0.002] = 1
            write_volume(tmp / f"{method}{tomo}.mrc", pred.astype(np.uint8), 1.0)
            evaluate_files(
                tmp / f"{method}{tomo}.mrc",
                tmp / f"t{tomo}.mrc",
                res / "metrics" / method / f"{tomo}.json",
                method=method,
                tomo=tomo,
                extra={"untrained": method == "tardis"},
                planes=PlaneOptions("skip"),
                orientation=ThetaOptions(k=12),
            )
    runs = pd.DataFrame({"tomo": list(TOMOS)}).set_index("tomo", drop=False)
    out = build_summaries([(m, t) for m in METHODS for t in TOMOS], list(METHODS), res, runs)
    return res, out


def _records(res, method):
    return [json.loads((res / "metrics" / method / f"{t}.json").read_text()) for t in TOMOS]


def test_plane_wise_table_is_mean_and_sd_of_the_records(summarized):
    res, out = summarized
    table = pd.read_csv(res / "tables" / "plane_wise.csv")
    assert len(table) == 3 * 3 and set(table["plane"]) == {"XY", "XZ", "YZ"}
    for method in METHODS:
        dice = [r["plane_wise"]["xz"]["dice"] for r in _records(res, method)]
        row = table[(table["method"].str.startswith(method)) & (table["plane"] == "XZ")].iloc[0]
        assert row["dice_mean"] == pytest.approx(np.mean(dice))
        assert row["dice_sd"] == pytest.approx(np.std(dice, ddof=1))
        assert row["n"] == 5
    assert "tardis (untrained)" in set(table["method"])
    assert "skip" in (res / "tables" / "plane_wise.md").read_text()


def test_plane_wise_paired_tests(summarized):
    res, out = summarized
    tests = pd.read_csv(res / "stats" / "plane_wise_ttests.csv")
    assert len(tests) == 3 * 12  # three pairs x (3 planes x 4 metrics)
    row = tests[
        (tests["metric"] == "yz_recall") & (tests["method_a"] == "etsam") & (tests["method_b"] == "tardis")
    ]
    x = [r["plane_wise"]["yz"]["recall"] for r in _records(res, "etsam")]
    y = [r["plane_wise"]["yz"]["recall"] for r in _records(res, "tardis")]
    assert row["ttest_p"].iloc[0] == pytest.approx(sps.ttest_rel(x, y).pvalue)
    assert row["alpha"].iloc[0] == pytest.approx(0.05 / 3)


def test_theta_wise_table_pooled_and_mean(summarized):
    res, out = summarized
    table = pd.read_csv(res / "tables" / "theta_wise.csv", dtype={"bin": str})
    assert list(table["bin"][:3]) == ["0-30", "30-60", "60-90"]
    for method in METHODS:
        recs = _records(res, method)
        for i, name in enumerate(("0-30", "30-60", "60-90")):
            row = table[table["method"].str.startswith(method) & (table["bin"] == name)].iloc[0]
            hits = sum(r["theta_wise"][i]["truth_predicted"] for r in recs)
            voxels = sum(r["theta_wise"][i]["truth_voxels"] for r in recs)
            assert row["pooled_recall"] == pytest.approx(hits / voxels)
            assert row["truth_voxels"] == voxels
            assert row["recall_mean"] == pytest.approx(
                np.nanmean([r["theta_wise"][i]["recall"] for r in recs])
            )
            pv = sum(r["theta_wise"][i]["pred_voxels"] for r in recs)
            pt = sum(r["theta_wise"][i]["pred_true"] for r in recs)
            assert row["pooled_precision"] == pytest.approx(pt / pv)
    # a method that misses more membrane has lower pooled recall in every bin
    pooled = table.assign(m=table["method"].str.split(" ").str[0]).pivot(
        index="bin", columns="m", values="pooled_recall"
    )
    assert (pooled["etsam"] > pooled["tardis"]).all()


def test_theta_wise_paired_tests_and_figure(summarized):
    res, out = summarized
    tests = pd.read_csv(res / "stats" / "theta_wise_ttests.csv")
    assert set(tests["metric"]) == {
        f"{m}_{b}" for m in ("recall", "precision") for b in ("0-30", "30-60", "60-90")
    }
    row = tests[
        (tests["metric"] == "recall_30-60")
        & (tests["method_a"] == "etsam")
        & (tests["method_b"] == "membrain")
    ]
    x = [r["theta_wise"][1]["recall"] for r in _records(res, "etsam")]
    y = [r["theta_wise"][1]["recall"] for r in _records(res, "membrain")]
    assert row["ttest_p"].iloc[0] == pytest.approx(sps.ttest_rel(x, y).pvalue)
    written = build_figures(res, list(METHODS), res / "figures")
    assert res / "figures" / "figure_theta.png" in written
    assert (res / "figures" / "figure_theta.png").stat().st_size > 10_000


def test_without_the_metrics_the_tables_say_so(tmp_path):
    res = tmp_path / "results"
    truth = membrane_mask((6, 16, 16), seed=0, n_shells=1, n_specks=0)
    write_volume(tmp_path / "t.mrc", truth, 1.0)
    evaluate_files(
        tmp_path / "t.mrc", tmp_path / "t.mrc", res / "metrics" / "etsam" / "a.json", method="etsam", tomo="a"
    )
    runs = pd.DataFrame({"tomo": ["a"]}).set_index("tomo", drop=False)
    out = build_summaries([("etsam", "a")], ["etsam"], res, runs)
    for key in ("plane_wise", "theta_wise", "plane_wise_ttests", "theta_wise_ttests"):
        assert out[key].empty
    assert "not computed" in (res / "tables" / "theta_wise.md").read_text()


def test_records_with_other_bins_are_left_out_and_named(tmp_path):
    from tomoseg.reporting.planes import theta_frames

    res = tmp_path / "results"
    truth = membrane_mask((6, 16, 16), seed=0, n_shells=1, n_specks=0)
    write_volume(tmp_path / "t.mrc", truth, 1.0)
    for tomo, bins in (("a", (0, 30, 60, 90)), ("b", (0, 45, 90))):
        evaluate_files(
            tmp_path / "t.mrc",
            tmp_path / "t.mrc",
            res / "metrics" / "etsam" / f"{tomo}.json",
            method="etsam",
            tomo=tomo,
            orientation=ThetaOptions(bins=bins, k=12),
        )
    frame = pd.DataFrame(
        {"tomo": ["a", "b"], "_json": [str(res / "metrics" / "etsam" / f"{t}.json") for t in "ab"]}
    )
    per, bins, other = theta_frames({"etsam": frame})
    assert list(per["etsam"]["tomo"]) == ["a"] and bins == [(0, 30), (30, 60), (60, 90)]
    assert other == ["etsam/b"]
    runs = pd.DataFrame({"tomo": ["a", "b"]}).set_index("tomo", drop=False)
    build_summaries([("etsam", "a"), ("etsam", "b")], ["etsam"], res, runs)
    assert "left out, scored with other θ bins: etsam/b" in (res / "tables" / "theta_wise.md").read_text()
