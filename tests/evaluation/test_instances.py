"""Instances (issue 26 item 8): labelled 26-connected components of hand-built masks, the size filter, the
`tomoseg instances` command (its record, rc 2 on bad input, output == input refused)."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

import tomoseg.cli as cli
from tomoseg.core.io import read_json, read_placement, read_volume, write_volume
from tomoseg.evaluation.postprocess import MAX_INSTANCES, label_instances


def hand_built() -> np.ndarray:
    """Three components of known size: a 4x4x4 cube (64), a diagonal chain of 5 voxels touching only at
    corners (5), a 2x3 plate (6) - and two single voxels (1 each)."""
    mask = np.zeros((10, 12, 12), dtype=np.uint8)
    mask[5:9, 6:10, 6:10] = 1  # 64 voxels, found after the others in z, y, x order
    for i in range(5):
        mask[i, i, i] = 1  # corner contacts only: one component under 26-connectivity
    mask[0, 8:10, 0:3] = 1  # 6 voxels
    mask[9, 0, 11] = 1  # single voxels, apart from everything
    mask[2, 11, 11] = 1
    return mask


def test_labels_by_size_largest_first_with_26_connectivity():
    mask = hand_built()
    labels, sizes = label_instances(mask)
    assert labels.dtype == np.uint16
    assert sizes.tolist() == [64, 6, 5, 1, 1]
    assert (labels[5:9, 6:10, 6:10] == 1).all()
    assert (labels[0, 8:10, 0:3] == 2).all()
    assert [labels[i, i, i] for i in range(5)] == [3] * 5  # the diagonal is one instance
    # equal sizes: the one whose first voxel comes first in z, y, x order gets the lower label
    assert labels[2, 11, 11] == 4 and labels[9, 0, 11] == 5
    assert ((labels > 0) == (mask > 0)).all()


def test_size_filter_drops_small_components():
    mask = hand_built()
    labels, sizes = label_instances(mask, min_voxels=6)
    assert sizes.tolist() == [64, 6]
    assert labels.max() == 2
    assert [labels[i, i, i] for i in range(5)] == [0] * 5  # 5 voxels < 6: dropped
    assert labels[2, 11, 11] == 0 and labels[9, 0, 11] == 0
    assert int((labels > 0).sum()) == 70


def test_empty_mask_and_bad_minimum():
    labels, sizes = label_instances(np.zeros((3, 4, 4), dtype=np.uint8))
    assert labels.max() == 0 and len(sizes) == 0
    for bad in (0, -3, 2.5, True):
        with pytest.raises(cli.InputError, match="min_voxels"):
            label_instances(hand_built(), bad)


def test_more_labels_than_uint16_refused():
    # isolated voxels on a stride-2 lattice: every one its own component
    mask = np.zeros((2 * 42, 2 * 42, 2 * 38), dtype=np.uint8)
    mask[::2, ::2, ::2] = 1
    assert mask.sum() > MAX_INSTANCES
    with pytest.raises(cli.InputError, match="65535"):
        label_instances(mask)
    labels, sizes = label_instances(mask[: 2 * 20])  # fewer: fine
    assert labels.max() == len(sizes) == 20 * 42 * 38


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_cli_writes_labels_and_record(tmp_path, capsys):
    write_volume(tmp_path / "mask.mrc", hand_built(), (10.0, 11.0, 12.0))
    out = tmp_path / "mask_t0.5_instances.mrc"
    code, err = run(capsys, "instances", tmp_path / "mask.mrc", "--out", out, "--min-voxels", "5")
    assert code == 0, err
    with mrcfile.open(out) as mrc:
        assert int(mrc.header.mode) == 6  # uint16
    labels, voxel_size = read_volume(out)
    assert tuple(voxel_size) == (10.0, 11.0, 12.0)
    assert read_placement(out) == read_placement(tmp_path / "mask.mrc")
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    record = read_json(tmp_path / "mask_t0.5_instances.provenance.json")
    assert record["step"] == "instances"
    assert record["instances"] == 3 and record["sizes"] == [64, 6, 5]
    assert record["parameters"]["min_voxels"] == 5


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--min-voxels", "0"], "min_voxels"),
        (["--min-voxels", "2"], "missing.mrc"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, args, expect):
    write_volume(tmp_path / "mask.mrc", hand_built(), 10.0)
    source = tmp_path / ("missing.mrc" if expect == "missing.mrc" else "mask.mrc")
    code, err = run(capsys, "instances", source, "--out", tmp_path / "labels.mrc", *args)
    assert code == 2 and expect in err and "Traceback" not in err
    assert not (tmp_path / "labels.mrc").exists()
    assert not (tmp_path / "labels.provenance.json").exists()


def test_cli_refuses_output_over_input(tmp_path, capsys):
    write_volume(tmp_path / "mask.mrc", hand_built(), 10.0)
    before = (tmp_path / "mask.mrc").read_bytes()
    code, err = run(capsys, "instances", tmp_path / "mask.mrc", "--out", tmp_path / "mask.mrc")
    assert code == 2 and "same file as the input" in err
    assert (tmp_path / "mask.mrc").read_bytes() == before
