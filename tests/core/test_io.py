"""MRC reading/writing: validation errors name the file and the problem; writes are atomic."""

import os

import mrcfile
import numpy as np
import pytest

from tomoseg.core.io import (
    InputError,
    Placement,
    atomic_path,
    create_volume,
    read_header,
    read_json,
    read_mask,
    read_placement,
    read_volume,
    write_json,
    write_volume,
)


def test_roundtrip_keeps_data_dtype_and_anisotropic_voxel_size(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
    path = tmp_path / "v.mrc"
    write_volume(path, data, (10.0, 11.0, 12.0))
    back, voxel_size = read_volume(path)
    np.testing.assert_array_equal(back, data)
    assert back.dtype == np.float32
    assert voxel_size == pytest.approx((10.0, 11.0, 12.0))
    assert read_header(path) == ((4, 5, 6), np.dtype(np.float32), pytest.approx((10.0, 11.0, 12.0)))


def test_masks_are_stored_in_one_byte_per_voxel(tmp_path):
    mask = np.zeros((2, 30, 30), bool)
    mask[1, 3:5] = True
    write_volume(tmp_path / "m.mrc", mask, 5.0)
    assert (tmp_path / "m.mrc").stat().st_size == 1024 + mask.size
    back, _ = read_mask(tmp_path / "m.mrc")
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, mask)
    with mrcfile.open(tmp_path / "m.mrc") as mrc:
        assert int(mrc.header.mode) == 0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"<!DOCTYPE html><html><body>404 Not Found</body></html>" + b" " * 2000, "HTML"),
        (b"x" * 100, "shorter than an MRC header"),
        (b"\x00" * 4000, "empty volume"),
    ],
)
def test_garbage_files_are_rejected_with_their_name(tmp_path, content, message):
    path = tmp_path / "bad.mrc"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        read_volume(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("width", [60, 316, 828])
def test_a_width_whose_first_header_byte_is_a_less_than_sign_is_an_mrc(tmp_path, width):
    """NX = 60 + k * 256 starts the header with 0x3C ('<'): the MRC stamp says it is no HTML page."""
    vol = np.arange(2 * 3 * width, dtype=np.float32).reshape(2, 3, width)
    write_volume(tmp_path / "w.mrc", vol, 1.0)
    assert (tmp_path / "w.mrc").read_bytes()[:1] == b"<"
    np.testing.assert_array_equal(read_volume(tmp_path / "w.mrc")[0], vol)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_volume(tmp_path / "nope.mrc")


def test_truncated_file_is_rejected(tmp_path):
    path = tmp_path / "t.mrc"
    write_volume(path, np.zeros((8, 32, 32), np.float32), 1.0)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 1000)
    with pytest.raises(InputError, match="truncated") as err:
        read_volume(path)
    assert str(path) in str(err.value)


def test_two_dimensional_image_is_rejected(tmp_path):
    path = tmp_path / "image.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.zeros((16, 16), np.float32))
    with pytest.raises(InputError, match="expected a 3-D volume"):
        read_volume(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_rejected(tmp_path, bad):
    data = np.zeros((20, 4, 4), np.float32)
    data[17, 1, 2] = bad
    write_volume(tmp_path / "n.mrc", data, 1.0)
    with pytest.raises(InputError, match=r"non-finite values .* slices 16\.\.19"):
        read_volume(tmp_path / "n.mrc")


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.mrc"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_failed_streaming_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "stream.mrc"
    with pytest.raises(RuntimeError):
        with create_volume(target, (3, 4, 4), np.float32, (1.0, 1.0, 1.0)) as out:
            out[0] = 1
            raise RuntimeError("killed mid-way")
    assert os.listdir(tmp_path) == []


def test_streaming_write_produces_a_valid_volume(tmp_path):
    target = tmp_path / "stream.mrc"
    with create_volume(target, (3, 4, 5), np.uint8, (2.0, 3.0, 4.0)) as out:
        for z in range(3):
            out[z] = z
    back, voxel_size = read_mask(target)
    assert back.shape == (3, 4, 5) and back.dtype == np.uint8
    back = read_volume(target, dtype=np.uint8)[0]
    assert back[2].min() == 2 and voxel_size == pytest.approx((2.0, 3.0, 4.0))


def test_existing_output_survives_a_failed_overwrite(tmp_path):
    target = tmp_path / "keep.mrc"
    write_volume(target, np.ones((2, 2, 2), np.float32), 1.0)
    with pytest.raises(ValueError):
        write_volume(target, np.ones((2, 2), np.float32), 1.0)
    assert read_volume(target)[0].sum() == 8


def test_json_roundtrip_and_errors(tmp_path):
    write_json(tmp_path / "r.json", {"a": np.float32(1.5), "b": np.arange(3), "nan": float("nan")})
    record = read_json(tmp_path / "r.json")
    assert record["a"] == 1.5 and record["b"] == [0, 1, 2] and np.isnan(record["nan"])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        read_json(tmp_path / "bad.json")


def test_outputs_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_volume(tmp_path / "p.mrc", np.zeros((1, 2, 2), np.float32), 1.0)
    finally:
        os.umask(old)
    assert (tmp_path / "p.mrc").stat().st_mode & 0o777 == 0o644


def _without_labels(data: bytes) -> bytes:
    """An MRC file's bytes without its ten 80-byte text labels (mrcfile stamps the time in one)."""
    return data[:224] + data[1024:]


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_origin_zero_input_writes_the_same_bytes_as_without_placement(tmp_path, dtype):
    source = tmp_path / "input.mrc"
    with mrcfile.new(source) as mrc:  # a plain header: origin 0, start 0, axes 1 2 3
        mrc.set_data(np.zeros((3, 4, 5), np.float32))
        mrc.voxel_size = 13.48
    data = (np.random.default_rng(0).random((3, 4, 5)) > 0.5).astype(dtype)
    write_volume(tmp_path / "before.mrc", data, 13.48)
    write_volume(tmp_path / "after.mrc", data, 13.48, placement=read_placement(source))
    before, after = (tmp_path / "before.mrc").read_bytes(), (tmp_path / "after.mrc").read_bytes()
    assert _without_labels(before) == _without_labels(after)


def test_placement_roundtrip_and_invalid_axis_order(tmp_path):
    placed = Placement(origin=(3.5, -2.0, 100.0), start=(1, 2, 3), axes=(3, 1, 2))
    write_volume(tmp_path / "a.mrc", np.zeros((2, 3, 4), np.float32), 1.0, placement=placed)
    assert read_placement(tmp_path / "a.mrc") == placed
    with create_volume(tmp_path / "b.mrc", (2, 3, 4), np.uint8, (1.0, 1.0, 1.0), placement=placed) as out:
        out[:] = 1
    assert read_placement(tmp_path / "b.mrc") == placed
    with mrcfile.open(tmp_path / "a.mrc", "r+") as mrc:  # old writers leave the axis order at zero
        mrc.header.mapc = mrc.header.mapr = mrc.header.maps = 0
    assert read_placement(tmp_path / "a.mrc").axes == (1, 2, 3)
