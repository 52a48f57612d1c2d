"""copick source and OME-Zarr in and out through the CI demo's stages: a local copick project made with
copick's API (a phantom tomogram stored as an OME-Zarr image placed at an origin, its membranes as an
annotator's segmentation) goes through import, normalization, ETSAM with tiny untrained checkpoints,
post-processing, both baselines with tiny untrained checkpoints, evaluation, tables and figures; every
method's mask is written back into the project and read through copick, and the OME-Zarr copies are
compared with their MRCs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from copick_helpers import new_project
from snakemake_helpers import REPO, make_workdir, run_snakemake

from tomoseg.acquisition.phantoms import make_phantom
from tomoseg.core import methods
from tomoseg.core.io import read_json, read_mask, read_placement, read_volume

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

copick = pytest.importorskip("copick")
pytest.importorskip("ome_zarr")

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
ORIGIN = (100.0, 200.0, 300.0)
METHODS = ["etsam", "etsam_postprocessed", "membrain", "tardis"]


def make_project(tmp):
    """A local-filesystem copick project: run TS_1 with a 10 A wbp phantom tomogram and its truth segmentation."""
    from tomoseg.core.omezarr import write_ome_zarr

    path = new_project(tmp, "tomoseg test")
    phantom = make_phantom(7, (16, 64, 64), voxel_size=10.0)
    root = copick.from_file(str(path))
    run = root.new_run("TS_1")
    tomogram = run.new_voxel_spacing(10.0).new_tomogram("wbp")
    # written as an OME-Zarr image with a translation, so that the origin has to survive every step
    write_ome_zarr(tomogram.overlay_path, phantom.tomogram, 10.0, origin=ORIGIN)
    run.new_segmentation(10.0, "membrane", "1", user_id="annotator").from_numpy(phantom.truth)
    return path, phantom


@pytest.fixture(scope="module")
def copick_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("copick")
    project, phantom = make_project(tmp)
    ci = yaml.safe_load((REPO / "config/demo/ci.yaml").read_text())
    wd = make_workdir(
        tmp,
        runs="config/runs_copick.tsv",
        methods=METHODS,
        targets={"scope": "all", "metrics": True},
        evaluate={**ci["evaluate"], "overlays": False},
        copick={
            "voxel_spacing": 10.0,
            "tomo_type": "wbp",
            "segmentation": {"write": True},
        },
        output_format="ome-zarr",
    )
    (wd / "config" / "runs_copick.tsv").write_text(
        HEADER + f"cp-TS_1\tcopick\t\tTS_1\t\t{project}\t\tcopick\ttest\n"
    )
    run_snakemake(wd, "--cores", "2", "--resources", "gpu=1", timeout=600)
    return wd, project, phantom


def test_every_stage_ran_and_the_tables_score_the_copick_run(copick_run):
    wd, *_ = copick_run
    per_tomogram = {m: (wd / "results" / "tables" / "per_tomogram" / f"{m}.csv").read_text() for m in METHODS}
    for method, table in per_tomogram.items():
        assert "cp-TS_1" in table, method
        assert read_json(wd / "results" / "metrics" / method / "cp-TS_1.json")["tomo"] == "cp-TS_1"
    assert (wd / "results" / "figures" / "figure1b.png").stat().st_size > 0


def test_tomogram_and_truth_come_from_the_project(copick_run):
    wd, project, phantom = copick_run
    data = wd / "results" / "data" / "cp-TS_1"
    tomogram, voxel = read_volume(data / "tomogram.mrc")
    np.testing.assert_allclose(tomogram, phantom.tomogram)
    assert voxel == pytest.approx((10.0,) * 3)
    assert read_placement(data / "tomogram.mrc").origin == pytest.approx(ORIGIN)
    truth, _ = read_mask(data / "groundtruth.mrc")
    np.testing.assert_array_equal(truth, phantom.truth)
    assert read_json(data / "groundtruth.source.json")["segmentation"]["user_id"] == "annotator"
    assert read_json(wd / "results" / "metrics" / "etsam" / "cp-TS_1.json")


def test_masks_are_written_back_and_read_through_copick(copick_run):
    wd, project, _ = copick_run
    root = copick.from_file(str(project))
    for method in METHODS:
        mask, _ = read_mask(wd / methods.method(method).path(methods.method(method).mask, "cp-TS_1"))
        user = "tomoseg-" + method.replace("_", "-")
        written = root.get_run("TS_1").get_segmentations(user_id=user)
        assert [(s.name, s.session_id, s.voxel_size) for s in written] == [("membrane", "0", 10.0)], method
        np.testing.assert_array_equal(written[0].numpy(), mask)
        assert read_placement(written[0].path).origin == pytest.approx(ORIGIN)
    record = read_json(wd / "results" / "copick" / "etsam" / "cp-TS_1.json")
    assert record["parameters"]["user_id"] == "tomoseg-etsam" and record["inputs"]["run"] == "TS_1"


def test_ome_zarr_outputs_match_their_mrc(copick_run):
    wd, *_ = copick_run
    folder = wd / "results" / "etsam" / "cp-TS_1"
    for name, reader in (("mask", read_mask), ("stage2_logits", read_volume)):
        mrc, mrc_voxel = reader(folder / f"{name}.mrc")
        image, image_voxel = reader(folder / f"{name}.zarr")
        np.testing.assert_array_equal(image, mrc)
        assert image_voxel == pytest.approx(mrc_voxel)
        assert read_placement(folder / f"{name}.zarr").origin == pytest.approx(ORIGIN)
