"""The prompting ablation (evaluate.ablations) through the real workflow: tiny untrained checkpoints, one
small local tomogram with ground truth; the tables' numbers against a direct computation from the logits."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_helpers import REPO, make_workdir, run_snakemake

from tomoseg.core.io import read_mask, read_volume, write_volume
from tomoseg.evaluation.metrics import scores_from_counts
from tomoseg.reporting.tables import paper_file

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
TABLE4 = "results/tables/supp_table4_stage1_prompts.csv"
TABLES5_8 = "results/tables/supp_tables5-8_stage2_prompts.csv"


def direct(logits: np.ndarray, truth: np.ndarray, t: float) -> dict[str, float]:
    """Dice/IoU/P/R of 'logits > t' counted voxel by voxel (independent of the histograms)."""
    pred, gt = logits > t, truth > 0
    tp, fp, fn = int(np.sum(pred & gt)), int(np.sum(pred & ~gt)), int(np.sum(~pred & gt))
    return scores_from_counts(tp, fp, fn, pred.size - tp - fp - fn)[0]


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ablation")
    rng = np.random.default_rng(3)
    truth = np.zeros((8, 48, 64), np.uint8)
    truth[:, 20:24] = 1
    truth[:, :, 40:42] = 1
    tomogram = (rng.normal(size=truth.shape) - 3.0 * truth).astype(np.float32)
    write_volume(tmp / "mine.mrc", tomogram, (9.0, 9.0, 9.0))
    write_volume(tmp / "mine_truth.mrc", truth, (9.0, 9.0, 9.0))
    ci = yaml.safe_load((REPO / "config/demo/ci.yaml").read_text())
    etsam = {**ci["etsam"], "every_n": 3}  # 8 slices: every-n modes prompt slices 0, 3, 6
    evaluate = {**ci["evaluate"], "ablations": True, "overlays": False}
    wd = make_workdir(
        tmp, runs="config/runs_local.tsv", methods=["etsam", "etsam_stage1"], etsam=etsam, evaluate=evaluate
    )
    (wd / "config" / "runs_local.tsv").write_text(
        HEADER + f"mine\tlocal\t\t\t\t{tmp / 'mine.mrc'}\t{tmp / 'mine_truth.mrc'}\tlocal\ttest\n"
    )
    plan = run_snakemake(wd, "-n").stdout
    run_snakemake(wd, TABLE4, TABLES5_8, "--cores", "2", "--resources", "gpu=1")
    return wd, plan


def test_plan_reuses_the_default_modes(ablation_run):
    wd, plan = ablation_run
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in plan.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    # Stage 1: grid_every_n only (grid_first = the main run); Stage 2: three modes (empty = the main run)
    assert counts["etsam_ablation_stage1"] == 1 and counts["etsam_ablation_stage2"] == 3
    assert counts["etsam_stage1"] == 1 and counts["etsam_stage2"] == 1 and counts["ablation_summary"] == 1
    assert "results/tables/supp_table4_stage1_prompts.csv" in plan
    res = wd / "results"
    assert not (res / "ablation" / "etsam_stage1_grid_first").exists()
    assert not (res / "ablation" / "etsam_stage2_empty").exists()
    for mode in ("grid_first", "grid_every_n", "stage1_mask_every_n"):
        prov = json.loads(
            (res / "ablation" / f"etsam_stage2_{mode}" / "mine" / "provenance.json").read_text()
        )
        assert prov["parameters"]["prompt_stage2"] == mode and prov["untrained"] is True
        assert prov["inputs"]["stage1_logits"] == "results/etsam/mine/stage1_logits.mrc"
        for ext in (".tsv", ".gpu.json"):
            assert (res / "benchmarks" / "etsam_ablation_stage2" / mode / f"mine{ext}").is_file()
    prov = json.loads(
        (res / "ablation" / "etsam_stage1_grid_every_n" / "mine" / "stage1_provenance.json").read_text()
    )
    assert prov["parameters"]["prompt_stage1"] == "grid_every_n"
    # the modes really differ (prompts on slices 3 and 6 change the propagated logits)
    a, _ = read_volume(res / "ablation" / "etsam_stage1_grid_every_n" / "mine" / "stage1_logits.mrc")
    b, _ = read_volume(res / "etsam" / "mine" / "stage1_logits.mrc")
    assert not np.array_equal(a, b)


def test_stage1_table_equals_direct_computation(ablation_run):
    wd, _ = ablation_run
    res = wd / "results"
    table = pd.read_csv(wd / TABLE4)
    assert list(table["mode"]) == ["grid_first (untrained)", "grid_every_n (untrained)"]
    assert list(table["threshold"]) == [0.0, 0.0] and list(table["n"]) == [1, 1]
    truth, _ = read_mask(res / "data" / "mine" / "groundtruth.mrc")
    paths = {
        "grid_first": res / "etsam" / "mine" / "stage1_logits.mrc",
        "grid_every_n": res / "ablation" / "etsam_stage1_grid_every_n" / "mine" / "stage1_logits.mrc",
    }
    checked = 0
    for _, row in table.iterrows():
        logits, _ = read_volume(paths[row["mode"].split()[0]])
        if row["n_floor_inexact"]:
            assert 0.0 < -logits.max()  # flagged only where the threshold is below the -max floor
            continue
        for metric, value in direct(logits, truth, 0.0).items():
            assert row[f"{metric}_mean"] == pytest.approx(value, abs=1e-12)
        checked += 1
    assert checked >= 1
    # the paper's Stage 1 numbers stand beside its default mode only
    sweep = pd.read_csv(paper_file("etsam_threshold_sweep.csv"))
    assert table.loc[0, "paper_dice"] == pytest.approx(sweep["etsam_stage1_grid_zero_dice"].mean())
    assert math.isnan(table.loc[1, "paper_dice"])
    notes = (wd / TABLE4).with_suffix(".md").read_text()
    assert "grid_every_n: produced with untrained weights" in notes and "stage1_mask_every_n" not in notes


def test_stage2_table_equals_direct_computation(ablation_run):
    wd, _ = ablation_run
    res = wd / "results"
    table = pd.read_csv(wd / TABLES5_8)
    thresholds = [-2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2]
    modes = ["grid_first", "grid_every_n", "empty", "stage1_mask_every_n"]
    assert len(table) == len(modes) * len(thresholds)
    assert [m.split()[0] for m in table["mode"].unique()] == modes
    truth, _ = read_mask(res / "data" / "mine" / "groundtruth.mrc")
    checked = 0
    for mode in modes:
        folder = (
            res / "etsam" / "mine" if mode == "empty" else res / "ablation" / f"etsam_stage2_{mode}" / "mine"
        )
        logits, _ = read_volume(folder / "stage2_logits.mrc")
        rows = table[table["mode"].str.split().str[0] == mode]
        assert list(rows["threshold"]) == thresholds
        for _, row in rows.iterrows():
            t = row["threshold"]
            assert bool(row["n_floor_inexact"]) == (t < -logits.max())
            if row["n_floor_inexact"]:
                continue
            for metric, value in direct(logits, truth, t).items():
                if math.isnan(value):
                    assert math.isnan(row[f"{metric}_mean"])
                else:
                    assert row[f"{metric}_mean"] == pytest.approx(value, abs=1e-12), (mode, t, metric)
            checked += 1
    assert checked >= 4
    sweep = pd.read_csv(paper_file("etsam_threshold_sweep.csv"))
    empty = table[table["mode"].str.startswith("empty")].set_index("threshold")
    assert empty.loc[-0.25, "paper_dice"] == pytest.approx(sweep["etsam_stage2_dice_-0.25"].mean())
    assert table[~table["mode"].str.startswith("empty")]["paper_dice"].isna().all()
