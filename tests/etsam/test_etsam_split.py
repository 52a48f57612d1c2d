"""Split processing: tile geometry (upstream's quadrants), exact split + merge, and the batched tiles
against each tile run through the engine alone."""

from dataclasses import replace

import numpy as np
import pytest
from etsam_helpers import volume

from tomoseg.core.io import InputError
from tomoseg.etsam.engine import has_object
from tomoseg.etsam.model import make_test_checkpoints
from tomoseg.etsam.pipeline import EtsamOptions, segment_tomogram
from tomoseg.etsam.tiles import Box, merge_tiles, split_tiles, tile_boxes, tile_grid

TOL = 1e-4
IMAGE_SIZE = 64  # the smallest test model: the split tests run every tile twice


@pytest.mark.parametrize(
    "count, h, w, grid",
    [(1, 10, 10, (1, 1)), (4, 100, 150, (2, 2)), (2, 100, 150, (1, 2)), (2, 150, 100, (2, 1))]
    + [(6, 50, 80, (2, 3)), (6, 80, 50, (3, 2)), (9, 30, 30, (3, 3)), (3, 30, 40, (1, 3))],
)
def test_tile_grid(count, h, w, grid):
    assert tile_grid(count, h, w) == grid


@pytest.mark.parametrize("h, w", [(7, 9), (100, 150), (928, 960), (17, 16), (2, 2)])
def test_four_tiles_are_upstreams_quadrants(h, w):
    # upstream etsam.py split_into_quadrants (58e8df8), written out: halve at H // 2 and W // 2
    ym, xm = h // 2, w // 2
    upstream = [(0, ym, 0, xm), (0, ym, xm, w), (ym, h, 0, xm), (ym, h, xm, w)]
    assert tile_boxes(h, w, 4) == [Box(*b) for b in upstream]


def test_known_boxes_of_an_odd_slice():
    assert tile_boxes(7, 9, 4) == [Box(0, 3, 0, 4), Box(0, 3, 4, 9), Box(3, 7, 0, 4), Box(3, 7, 4, 9)]
    assert tile_boxes(7, 10, 6) == [
        Box(0, 3, 0, 3),
        Box(0, 3, 3, 6),
        Box(0, 3, 6, 10),
        Box(3, 7, 0, 3),
        Box(3, 7, 3, 6),
        Box(3, 7, 6, 10),
    ]


@pytest.mark.parametrize("shape", [(3, 7, 9), (2, 100, 150), (1, 17, 16), (4, 31, 29)])
@pytest.mark.parametrize("count", [1, 2, 4, 6, 9])
def test_split_and_merge_reproduce_the_input_exactly(shape, count):
    rng = np.random.default_rng(count)
    vol = rng.normal(size=shape).astype(np.float32)
    tiles, boxes = split_tiles(vol, count)
    assert len(tiles) == count
    cover = np.zeros(shape[1:], int)
    for tile, box in zip(tiles, boxes, strict=True):
        assert tile.shape == (shape[0], box.y1 - box.y0, box.x1 - box.x0)
        assert np.shares_memory(tile, vol)  # views: no copies, no padding
        cover[box.y0 : box.y1, box.x0 : box.x1] += 1
    assert (cover == 1).all(), "every voxel in exactly one tile: no overlap, no gap"
    merged = merge_tiles([t.copy() for t in tiles], boxes, shape)
    assert merged.dtype == np.float32
    np.testing.assert_array_equal(merged, vol)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return [str(p) for p in make_test_checkpoints(tmp_path_factory.mktemp("ckpt"), IMAGE_SIZE)]


@pytest.mark.slow
@pytest.mark.parametrize(
    "modes",
    [
        dict(),  # the paper's prompt modes: grid dots on slice 0 (every 10 px in the tiles), empty
        dict(prompt_stage1="grid", prompt_stage2="etsam_stage1_partial", split_every_n=3),  # upstream names
    ],
)
def test_split_equals_each_tile_alone(checkpoints, modes):
    """Both stages with split=4 (tiles batched) = each quadrant through both stages alone, merged."""
    s1, s2 = checkpoints
    vol = np.ascontiguousarray(volume()[:6, :44, :62])  # four quadrants of 22x31
    opts = EtsamOptions(stage1_checkpoint=s1, stage2_checkpoint=s2, progress=False, split=4, **modes)
    split = segment_tomogram(vol, opts)
    assert split.stats["stage1"].tiles == 4 and split.stats["stage2"].tiles == 4
    alone = replace(opts, split=1, grid_spacing=opts.split_grid_spacing, every_n=opts.split_every_n)
    tiles, boxes = split_tiles(vol, 4)
    runs = [segment_tomogram(np.ascontiguousarray(t), alone) for t in tiles]
    for key in ("stage1_logits", "stage2_logits"):
        merged = merge_tiles([getattr(r, key) for r in runs], boxes, vol.shape)
        got = getattr(split, key)
        with_object = sum(has_object(b.of(got)[z]) for b in boxes for z in range(len(vol)))
        assert with_object >= 2 * len(vol), "the comparison needs tiles with an object"
        assert float(np.abs(got - merged).max()) <= TOL, key
    if modes:
        assert split.stats["stage2"].conditioning_frames == [0, 3]


def test_split_needs_tiles_of_usable_size(checkpoints):
    s1, s2 = checkpoints
    opts = EtsamOptions(stage1_checkpoint=s1, stage2_checkpoint=s2, progress=False, split=9)
    with pytest.raises(InputError, match="split into 9 tiles give tiles of 13 px"):
        segment_tomogram(np.ones((2, 40, 50), np.float32), opts, stages=("stage1",))
