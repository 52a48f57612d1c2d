"""Every volume tomoseg writes keeps its input's voxel size, origin, grid start and axis order.

The input is written with mrcfile directly (not through tomoseg's writer) with a header origin of
(x, y, z) = (100, 200, 300) Angstrom, a grid start, an anisotropic voxel size and a non-standard axis
order; each writer's output must carry all four, so that a viewer overlays it on the input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest
from cdp_standin import add_run, mrc_bytes

from tomoseg.acquisition import portal as cdp
from tomoseg.acquisition.dataverse import download_dataverse_groundtruth
from tomoseg.acquisition.local import import_local
from tomoseg.baselines.runner import ToolOutput, run_baseline
from tomoseg.core.io import Placement, read_header, read_placement
from tomoseg.etsam import pipeline
from tomoseg.evaluation.postprocess import postprocess_file
from tomoseg.preprocess import normalize_file

SHAPE = (4, 40, 48)
VOXEL_XYZ = (12.0, 11.0, 10.0)
PLACED = Placement(origin=(300.0, 200.0, 100.0), start=(9, 8, 7), axes=(2, 1, 3))


def _write_input(path: Path, array: np.ndarray) -> Path:
    with mrcfile.new(path) as mrc:
        mrc.set_data(array)
        mrc.voxel_size = VOXEL_XYZ
        mrc.header.origin = (100.0, 200.0, 300.0)  # x, y, z
        mrc.header.nxstart, mrc.header.nystart, mrc.header.nzstart = 7, 8, 9
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 2, 1, 3
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("placed")
    rng = np.random.default_rng(1)
    volume = rng.random(SHAPE, dtype=np.float32)
    volume[:, 18:22] = 0.05  # a dark band, like a membrane
    mask = np.zeros(SHAPE, np.int8)
    mask[:, 18:22] = 1
    return {
        "tomogram": _write_input(folder / "tomogram.mrc", volume),
        "mask": _write_input(folder / "mask.mrc", mask),
    }


def assert_placed_like_input(*outputs: Path) -> None:
    for path in outputs:
        assert read_placement(path) == PLACED, path
        _shape, _dtype, voxel = read_header(path)
        assert voxel == pytest.approx(VOXEL_XYZ[::-1]), path


def test_placement_reads_the_header(inputs):
    assert read_placement(inputs["tomogram"]) == PLACED


def test_normalize(inputs, tmp_path):
    normalize_file(inputs["tomogram"], tmp_path / "normalized.mrc", "max_positive")
    assert_placed_like_input(tmp_path / "normalized.mrc")


def test_postprocess(inputs, tmp_path):
    postprocess_file(inputs["mask"], tmp_path / "post.mrc", min_slices=2)
    assert_placed_like_input(tmp_path / "post.mrc")


def test_local_import(inputs, tmp_path):
    import_local(inputs["tomogram"], tmp_path / "tomogram.mrc")
    import_local(inputs["mask"], tmp_path / "groundtruth.mrc", binarize=True)
    assert_placed_like_input(tmp_path / "tomogram.mrc", tmp_path / "groundtruth.mrc")


def test_etsam_stages_and_segment(inputs, tmp_path, monkeypatch):
    """The three ETSAM entry points' writers (the engine itself is stubbed: tests/etsam/ test it)."""

    def segment(volume, opts, stages=("stage1", "stage2"), stage1_logits=None, name="", models=None):
        logits = np.where(volume < 0.1, 5.0, -5.0).astype(np.float32)
        return pipeline.EtsamResult(stage1_logits=logits, stage2_logits=logits)

    monkeypatch.setattr(pipeline, "segment_tomogram", segment)
    # run_segment checks both checkpoints before it runs: tiny untrained ones
    from tomoseg.etsam.model import make_test_checkpoints

    stage1, stage2 = make_test_checkpoints(tmp_path / "checkpoints", 128)
    opts = pipeline.EtsamOptions(stage1_checkpoint=str(stage1), stage2_checkpoint=str(stage2), progress=False)
    out = tmp_path / "etsam"
    pipeline.run_stage1(inputs["tomogram"], out / "stage1_logits.mrc", out / "stage1_mask.mrc", opts)
    pipeline.run_stage2(
        inputs["tomogram"],
        out / "stage1_logits.mrc",
        out / "stage2_logits.mrc",
        out / "mask.mrc",
        out / "provenance.json",
        opts,
    )
    pipeline.run_segment(inputs["tomogram"], tmp_path / "segment", opts, normalized=True, store_logits=True)
    assert_placed_like_input(
        *(out / f for f in ("stage1_logits.mrc", "stage1_mask.mrc", "stage2_logits.mrc", "mask.mrc")),
        *(tmp_path / "segment" / f for f in ("mask.mrc", "stage1_logits.mrc", "stage2_logits.mrc")),
    )


def test_baseline_runner(inputs, tmp_path):
    """The runner that stores Membrain-Seg's and TARDIS's outputs (their real runs: tests/baselines/)."""
    checkpoint = tmp_path / "tool.ckpt"
    checkpoint.write_bytes(b"weights")

    def step(job, work):
        log = work / "tool.log"
        log.write_text("ran\n")
        scores = np.zeros(job.shape, np.float32)
        result = {"log": str(log), "outputs": {}, "driver_command": ["fake"], "runtime_s": 0.0}
        return ToolOutput(scores, (scores > 0).astype(np.uint8), result)

    out = tmp_path / "membrain"
    run_baseline(
        "membrain",
        inputs["tomogram"],
        out,
        checkpoint,
        sys.executable,
        parameters=lambda tomogram, voxel: {},
        step=step,
        scores_name="scores",
        allow_unverified_checkpoint=True,  # the tool is stubbed: the checkpoint is never loaded
    )
    assert_placed_like_input(out / "scores.mrc", out / "mask.mrc")


def test_dataverse_groundtruth_takes_the_tomograms_placement(inputs, tmp_path, portal, fast):
    mask = np.zeros(SHAPE, np.float32)
    mask[:, 18:22] = 1.0
    portal.add_dataverse_file("10000/TS_026/target_mask", "TS_026_mask.mrc", mrc_bytes(mask, 11.0))
    out = tmp_path / "groundtruth.mrc"
    download_dataverse_groundtruth(
        "10000",
        ["TS_026"],
        inputs["tomogram"],
        out,
        tmp_path / "groundtruth.source.json",
        base_url=portal.url,
        doi="doi:10.7910/DVN/K4JKCW",
        options=fast,
    )
    assert_placed_like_input(out)


def test_portal_groundtruth_keeps_the_annotations_placement(tmp_path, portal, fast):
    add_run(portal, 10000, 245, "TS_1", membrane=[("GO:0016020", "membrane")], origin_xyz=(100, 200, 300))
    tomogram, src = tmp_path / "tomogram.mrc", tmp_path / "tomogram.source.json"
    cdp.download_tomogram(10000, 245, tomogram, src, portal_url=portal.graphql_url, options=fast)
    gt = tmp_path / "groundtruth.mrc"
    cdp.download_portal_groundtruth(src, gt, tmp_path / "groundtruth.source.json", options=fast)
    assert read_placement(gt) == read_placement(tomogram)
    assert read_placement(gt).origin == (300.0, 200.0, 100.0)
