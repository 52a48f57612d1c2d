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
    assert len(written) == 12 and all(p.stat().st_size > 0 for p in written)  # 1a-1d, 4, threshold explorer
