"""The prompting ablation tables straight from metrics records (no Snakemake)."""

import numpy as np
import pandas as pd

from tomoseg.core.io import write_volume
from tomoseg.evaluation.metrics import evaluate_files
from tomoseg.reporting.ablation import build_ablation_tables


def test_ablation_tables_per_stage(tmp_path):
    res = tmp_path / "results"
    rng = np.random.default_rng(0)
    variants = [
        (1, "grid_first", "ablation_stage1_grid_first"),
        (2, "empty", "ablation_stage2_empty"),
        (2, "box", "ablation_stage2_box"),
    ]
    for tomo in ("a", "b"):
        truth = (rng.random((4, 16, 16)) < 0.1).astype(np.uint8)
        write_volume(tmp_path / f"t{tomo}.mrc", truth, 1.0)
        for _, mode, method in variants[:2]:
            logits = (truth * 3 - 1.5 + rng.normal(0, 1, truth.shape)).astype(np.float32)
            write_volume(tmp_path / f"s{tomo}.mrc", logits, 1.0)
            write_volume(tmp_path / f"p{tomo}.mrc", (logits > 0).astype(np.uint8), 1.0)
            evaluate_files(
                tmp_path / f"p{tomo}.mrc",
                tmp_path / f"t{tomo}.mrc",
                res / "metrics" / method / f"{tomo}.json",
                tmp_path / f"s{tomo}.mrc",
                "logits",
                method=method,
                tomo=tomo,
                extra={"untrained": mode == "empty"},
            )
    out = build_ablation_tables(variants, ["a", "b"], res, 0.0, [-0.25, 0.0])
    assert list(out[1]["mode"]) == ["grid_first"] and list(out[1]["default"]) == ["yes"]
    assert list(out[1]["n"]) == [2] and not np.isnan(out[1]["paper_dice"].iloc[0])
    assert list(out[2]["mode"]) == ["empty (untrained)"] * 2 and list(out[2]["threshold"]) == [-0.25, 0.0]
    md = (res / "tables" / "supp_tables5-8_stage2_prompts.md").read_text()
    assert "ablation_stage2_box a: missing" in md and "empty: produced with untrained weights" in md
    assert pd.read_csv(res / "tables" / "supp_table4_stage1_prompts.csv")["n"].tolist() == [2]
