"""The etsam rules of the real workflow on a small local tomogram with the tiny untrained checkpoints."""

import json
from pathlib import Path

import numpy as np
import pytest
from snakemake_helpers import make_workdir, run_snakemake

from tomoseg.core.io import read_mask, read_volume, write_volume

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo" / "ci.yaml"
HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"


@pytest.fixture
def workdir(tmp_path):
    rng = np.random.default_rng(7)
    tomogram = rng.normal(size=(8, 48, 64)).astype(np.float32)
    tomogram[:, 20:24] -= 3.0
    write_volume(tmp_path / "mine.mrc", tomogram, (9.0, 9.0, 9.0))
    wd = make_workdir(tmp_path, methods=["etsam", "etsam_stage1"])
    (wd / "config" / "runs_local.tsv").write_text(
        HEADER + f"mine\tlocal\t\t\t\t{tmp_path / 'mine.mrc'}\t\tnone\ttest\n"
    )
    return wd


def test_etsam_rules_end_to_end(workdir):
    run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", "--config", "runs=config/runs_local.tsv")
    res = workdir / "results"
    mask, voxel = read_mask(res / "etsam" / "mine" / "mask.mrc")
    logits2, _ = read_volume(res / "etsam" / "mine" / "stage2_logits.mrc")
    stage1_mask, _ = read_mask(res / "etsam" / "mine" / "stage1_mask.mrc")
    logits1, _ = read_volume(res / "etsam" / "mine" / "stage1_logits.mrc")
    assert mask.shape == logits2.shape == stage1_mask.shape == (8, 48, 64) and voxel == pytest.approx(
        (9.0,) * 3
    )
    np.testing.assert_array_equal(mask, (logits2 > -0.25).astype(np.uint8))
    np.testing.assert_array_equal(stage1_mask, (logits1 > 0.0).astype(np.uint8))
    prov = json.loads((res / "etsam" / "mine" / "provenance.json").read_text())
    assert prov["method"] == "etsam" and prov["untrained"] is True
    s1prov = json.loads((res / "etsam" / "mine" / "stage1_provenance.json").read_text())
    assert s1prov["method"] == "etsam_stage1" and s1prov["untrained"] is True
    for rule in ("etsam_stage1", "etsam_stage2"):
        gpu = json.loads((res / "benchmarks" / rule / "mine.gpu.json").read_text())
        assert gpu == {"device": "cpu", "gpu_name": None, "peak_gpu_memory_mb": None}
        assert (res / "benchmarks" / rule / "mine.tsv").is_file()
        assert "slices/s" in (res / "logs" / rule / "mine.log").read_text()


VARIANTS = [
    "etsam_upstream",
    "etsam_upstream_postprocessed",
    "etsam_upstream_softplus",
    "etsam_upstream_stage1_partial",
    "etsam_upstream_split",
]


def test_upstream_variants_are_run_scored_and_tabled(tmp_path):
    """Every upstream variant runs with its own settings (split tiles, softplus input, Stage 1 mask prompt,
    upstream post-processing), is scored, and appears in the variants table, marked untrained."""
    import yaml

    from tomoseg.evaluation.postprocess import postprocess_mask
    from tomoseg.preprocess import normalize_volume

    rng = np.random.default_rng(8)
    tomogram = rng.normal(size=(6, 40, 40)).astype(np.float32)
    tomogram[:, 18:22] -= 3.0
    truth = np.zeros(tomogram.shape, np.uint8)
    truth[:, 18:22] = 1
    write_volume(tmp_path / "mine.mrc", tomogram, (9.0, 9.0, 9.0))
    write_volume(tmp_path / "truth.mrc", truth, (9.0, 9.0, 9.0))
    ci = yaml.safe_load((REPO_CONFIG).read_text())
    wd = make_workdir(tmp_path, methods=VARIANTS, etsam={**ci["etsam"], "test_image_size": 64})
    (wd / "config" / "runs_local.tsv").write_text(
        HEADER + f"mine\tlocal\t\t\t\t{tmp_path / 'mine.mrc'}\t{tmp_path / 'truth.mrc'}\tlocal\ttest\n"
    )
    run_snakemake(
        wd,
        "--cores",
        "2",
        "--resources",
        "gpu=1",
        "--config",
        "runs=config/runs_local.tsv",
        "--",
        "results/tables/table1.csv",
    )
    res = wd / "results"

    def params(run):
        return json.loads((res / run / "mine" / "provenance.json").read_text())

    up = params("etsam_upstream")
    assert up["method"] == "etsam_upstream" and up["untrained"] is True
    assert up["parameters"]["preset"] == "upstream" and up["parameters"]["variant"] == "etsam_upstream"
    assert up["parameters"]["stage1_threshold"] == -0.25 and up["parameters"]["split"] == 1
    s1, _ = read_volume(res / "etsam_upstream" / "mine" / "stage1_logits.mrc")
    np.testing.assert_array_equal(
        read_mask(res / "etsam_upstream" / "mine" / "stage1_mask.mrc")[0], (s1 > -0.25).astype(np.uint8)
    )
    split = params("etsam_upstream_split")
    assert split["parameters"]["split"] == 4 and split["timing"]["stage2"]["tiles"] == 4
    assert split["parameters"]["split_grid_spacing"] == 10
    assert params("etsam_upstream_stage1_partial")["parameters"]["prompt_stage2"] == "stage1_mask_every_n"
    soft = params("etsam_upstream_softplus")
    assert soft["inputs"]["normalized"].endswith("normalized_softplus_minmax.mrc")
    normalized, _ = read_volume(res / "data" / "mine" / "normalized_softplus_minmax.mrc")
    np.testing.assert_allclose(normalized, normalize_volume(tomogram, "softplus_minmax"), atol=1e-6)
    mask, _ = read_mask(res / "etsam_upstream" / "mine" / "mask.mrc")
    post, _ = read_mask(res / "etsam_upstream" / "mine" / "mask_postprocessed.mrc")
    np.testing.assert_array_equal(post, postprocess_mask(mask, ["thin_noise", "rungs"], 10, 5, 0))
    for name in VARIANTS:
        assert json.loads((res / "metrics" / name / "mine.json").read_text())["untrained"] is True
    table = (res / "tables" / "upstream_variants.md").read_text()
    for name in VARIANTS[1:]:
        assert f"{name} (untrained)" in table
    runtime = (res / "tables" / "runtime_per_tomogram.csv").read_text()
    assert "etsam_variant_stage1/etsam_upstream_split+etsam_variant_stage2/etsam_upstream_split" in runtime
