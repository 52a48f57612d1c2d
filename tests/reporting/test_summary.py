"""Summary tables and figures straight from metrics records (no Snakemake): one method, an empty truth."""

import json

import numpy as np
import pandas as pd

from tomoseg.core.io import write_volume
from tomoseg.evaluation.metrics import evaluate_files
from tomoseg.reporting.figures import build_figures
from tomoseg.reporting.summary import build_summaries


def test_single_method_with_empty_truth(tmp_path):
    res = tmp_path / "results"
    rng = np.random.default_rng(0)
    for tomo, empty in (("a", False), ("b", False), ("c", True)):
        truth = np.zeros((4, 16, 16), np.uint8) if empty else (rng.random((4, 16, 16)) < 0.1).astype(np.uint8)
        logits = (truth * 3 - 1.5 + rng.normal(0, 1, truth.shape)).astype(np.float32)
        for name, arr in (("t", truth), ("s", logits), ("p", (logits > 0).astype(np.uint8))):
            write_volume(tmp_path / f"{name}{tomo}.mrc", arr, 1.0)
        evaluate_files(
            tmp_path / f"p{tomo}.mrc",
            tmp_path / f"t{tomo}.mrc",
            res / "metrics" / "etsam" / f"{tomo}.json",
            tmp_path / f"s{tomo}.mrc",
            "logits",
            method="etsam",
            tomo=tomo,
            extra={"untrained": False},
        )
    runs = pd.DataFrame(
        {"tomo": ["a", "b", "c"], "dataset_id": ["1", "1", "2"], "run_id": ["5", "6", "7"]}
    ).set_index("tomo", drop=False)
    out = build_summaries([("etsam", t) for t in "abc"], ["etsam"], res, runs, thresholds=[0.0])
    failures = out["failures"]
    assert (
        list(failures["tomo"]) == ["c", "c", "c", "c"]
        and "ground truth is empty" in failures["reason"].iloc[0]
    )
    assert out["ttests"].empty and list(out["table1"]["n"]) == ["2-3"]  # NaN Dice of c excluded and listed
    assert "(untrained)" not in (res / "tables" / "table1.md").read_text()
    per = pd.read_csv(res / "tables" / "per_tomogram" / "etsam.csv")
    assert list(per["run_id"]) == [5, 6, 7]
    assert json.loads((res / "tables" / "methods.json").read_text())["etsam"]["untrained"] is False
    written = build_figures(res, ["etsam"], res / "figures")
    assert len(written) == 14 and all(
        p.stat().st_size > 0 for p in written
    )  # 1a-1d, 4, θ bins, threshold explorer


def test_variants_table_pairs_each_variant_with_its_reference(tmp_path):
    """etsam_upstream against etsam, an option variant against etsam_upstream; arithmetic of the means."""
    res = tmp_path / "results"
    rng = np.random.default_rng(1)
    truths = {t: (rng.random((3, 12, 12)) < 0.2).astype(np.uint8) for t in "abcd"}
    flips = {"etsam": 0.05, "etsam_upstream": 0.05, "etsam_upstream_split": 0.2}
    dice = {}
    for i, (method, p) in enumerate(flips.items()):
        for j, (tomo, truth) in enumerate(truths.items()):
            flip = np.random.default_rng(10 * i + j).random(truth.shape) < p
            pred = np.where(flip, 1 - truth, truth).astype(np.uint8)
            write_volume(tmp_path / f"t{tomo}.mrc", truth, 1.0)
            write_volume(tmp_path / f"{method}{tomo}.mrc", pred, 1.0)
            rec = evaluate_files(
                tmp_path / f"{method}{tomo}.mrc",
                tmp_path / f"t{tomo}.mrc",
                res / "metrics" / method / f"{tomo}.json",
                method=method,
                tomo=tomo,
                extra={"untrained": True},
            )
            dice.setdefault(method, []).append(rec["dice"])
    runs = pd.DataFrame({"tomo": list("abcd")}).set_index("tomo", drop=False)
    expected = [(m, t) for m in flips for t in "abcd"]
    out = build_summaries(expected, list(flips), res, runs)
    table = out["variants"]
    assert list(zip(table["method_a"], table["method_b"], strict=True))[::4] == [
        ("etsam (untrained)", "etsam_upstream (untrained)"),
        ("etsam_upstream (untrained)", "etsam_upstream_split (untrained)"),
    ]
    row = table[(table["metric"] == "dice") & (table["method_b"] == "etsam_upstream_split (untrained)")].iloc[
        0
    ]
    assert row["mean_a"] == np.mean(dice["etsam_upstream"]) and row["mean_b"] == np.mean(
        dice["etsam_upstream_split"]
    )
    assert row["mean_difference"] == np.mean(dice["etsam_upstream_split"]) - np.mean(dice["etsam_upstream"])
    assert row["n"] == 4
    assert "Upstream ETSAM variants" in (res / "tables" / "upstream_variants.md").read_text()


def test_tables_and_figures_say_what_a_model_was_trained_on(tmp_path):
    """A model trained here carries "trained on ..." from its provenance into tables, notes and figures."""
    from tomoseg.core.io import write_json
    from tomoseg.core.methods import label, method_marks, unlabel
    from tomoseg.evaluation.metrics import evaluate_method_output

    res = tmp_path / "results"
    rng = np.random.default_rng(1)
    for tomo in "abc":
        truth = (rng.random((4, 16, 16)) < 0.2).astype(np.uint8)
        write_volume(tmp_path / f"t{tomo}.mrc", truth, 1.0)
        for method, params in (
            ("etsam", {"untrained": True, "parameters": {}}),
            ("etsam_trained", {"untrained": False, "parameters": {"trained_on": "synthetic phantoms"}}),
        ):
            logits = (truth * 3 - 1.5 + rng.normal(0, 1, truth.shape)).astype(np.float32)
            write_volume(tmp_path / f"{method}{tomo}_s.mrc", logits, 1.0)
            write_volume(tmp_path / f"{method}{tomo}_p.mrc", (logits > 0).astype(np.uint8), 1.0)
            write_json(tmp_path / f"{method}{tomo}.json", params)
            evaluate_method_output(
                tmp_path / f"{method}{tomo}_p.mrc",
                tmp_path / f"t{tomo}.mrc",
                res / "metrics" / method / f"{tomo}.json",
                tmp_path / f"{method}{tomo}_s.mrc",
                "logits",
                method,
                tomo,
                provenance=tmp_path / f"{method}{tomo}.json",
            )
    assert json.loads((res / "metrics" / "etsam_trained" / "a.json").read_text())["trained_on"] == (
        "synthetic phantoms"
    )
    runs = pd.DataFrame({"tomo": list("abc"), "dataset_id": ["1"] * 3, "run_id": ["5", "6", "7"]})
    methods = ["etsam", "etsam_trained"]
    build_summaries(
        [(m, t) for m in methods for t in "abc"], methods, res, runs.set_index("tomo", drop=False)
    )
    table1 = (res / "tables" / "table1.md").read_text()
    assert "etsam_trained (trained on synthetic phantoms)" in table1 and "etsam (untrained)" in table1
    assert "etsam_trained: weights trained here (tomoseg train) on synthetic phantoms" in table1
    info = json.loads((res / "tables" / "methods.json").read_text())
    assert info["etsam_trained"]["trained_on"] == "synthetic phantoms" and info["etsam"]["trained_on"] is None
    assert len(build_figures(res, methods, res / "figures")) == 14
    marks = method_marks(["etsam"], {"etsam_trained": "x", "etsam": None})
    assert [label(m, marks) for m in ("etsam", "etsam_trained", "membrain")] == [
        "etsam (untrained)",
        "etsam_trained (trained on x)",
        "membrain",
    ]
    assert [unlabel(label(m, marks), marks) for m in ("etsam", "etsam_trained", "membrain")] == [
        "etsam",
        "etsam_trained",
        "membrain",
    ]
