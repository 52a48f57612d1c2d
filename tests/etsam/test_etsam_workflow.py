"""The etsam rules of the real workflow on a small local tomogram with the tiny untrained checkpoints."""

import json

import numpy as np
import pytest
from snakemake_helpers import make_workdir, run_snakemake

from tomoseg.core.io import read_mask, read_volume, write_volume

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
