"""`tomoseg copick segment`: ETSAM on the runs of a real local copick project (made with copick's API), the
masks written back as copick segmentations and equal to `tomoseg segment` on the same tomograms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

copick = pytest.importorskip("copick")
pytest.importorskip("sam2")

from copick_helpers import new_project  # noqa: E402

from tomoseg.core.io import read_mask  # noqa: E402
from tomoseg.etsam.model import make_test_checkpoints  # noqa: E402


@pytest.fixture
def project(tmp_path):
    """Two runs, each with a 10 A 'wbp' tomogram with a bright band."""
    path = new_project(tmp_path, "cli project")
    root = copick.from_file(str(path))
    for i, name in enumerate(["TS_001", "TS_002"]):
        volume = np.random.default_rng(i).normal(size=(4, 36, 40)).astype(np.float32)
        volume[:, 12 + i : 16 + i] += 3.0
        root.new_run(name).new_voxel_spacing(10.0).new_tomogram("wbp").from_numpy(volume)
    return path


def test_copick_segment_writes_segmentations_back(project, tmp_path, cli_main):
    torch.set_num_threads(2)
    s1, s2 = make_test_checkpoints(tmp_path / "ck", 64)[:2]
    models = ["--stage1-checkpoint", str(s1), "--stage2-checkpoint", str(s2), "--no-progress"]
    argv = ["copick", "segment", str(project), "--voxel-spacing", "10", "--out", str(tmp_path / "out")]
    assert cli_main([*argv, "--run", "TS_002", *models]) == 0
    root = copick.from_file(str(project))
    assert root.get_run("TS_001").get_segmentations() == []  # only the run asked for
    (segmentation,) = root.get_run("TS_002").get_segmentations(name="membrane", user_id="tomoseg")
    assert (segmentation.session_id, segmentation.voxel_size) == ("0", 10.0)
    mask, _ = read_mask(tmp_path / "out" / "TS_002" / "mask.mrc")
    np.testing.assert_array_equal(segmentation.numpy(), mask)
    # the same as `tomoseg segment` on that tomogram
    tomogram = tmp_path / "out" / "TS_002" / "tomogram.mrc"
    assert cli_main(["segment", str(tomogram), "--out", str(tmp_path / "alone"), *models]) == 0
    np.testing.assert_array_equal(read_mask(tmp_path / "alone" / "mask.mrc")[0], mask)


def test_copick_segment_refuses_a_bad_run_name_in_one_line(project, tmp_path, cli_main, capsys):
    argv = ["copick", "segment", str(project), "--voxel-spacing", "10", "--out", str(tmp_path / "o")]
    assert cli_main([*argv, "--run", "../escape"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run name" in err and not (tmp_path / "o").exists()
