"""Post-processing: thin-noise removal against an independent breadth-first flood fill; rung cutting on
drawn membranes whose skeletons are known pixel by pixel."""

from collections import deque

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.core.io import read_mask, write_volume
from tomoseg.evaluation.postprocess import (
    cut_rungs,
    cut_rungs_slice,
    filter_components,
    postprocess_mask,
    skeleton_parts,
)
from tomoseg.testing.synthetic import filter_components_reference, membrane_mask

OFFSETS = [
    (dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) != (0, 0, 0)
]


def bfs_filter(mask: np.ndarray, min_slices: int) -> np.ndarray:
    """Plain BFS flood fill over the 26 neighbours; keep components with (zmax - zmin + 1) >= N."""
    nz, ny, nx = mask.shape
    seen = np.zeros(mask.shape, dtype=bool)
    out = np.zeros(mask.shape, dtype=np.uint8)
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        queue, members = deque([start]), []
        while queue:
            z, y, x = queue.popleft()
            members.append((z, y, x))
            for dz, dy, dx in OFFSETS:
                n = (z + dz, y + dy, x + dx)
                if 0 <= n[0] < nz and 0 <= n[1] < ny and 0 <= n[2] < nx and mask[n] and not seen[n]:
                    seen[n] = True
                    queue.append(n)
        zs = [m[0] for m in members]
        if max(zs) - min(zs) + 1 >= min_slices:
            for m in members:
                out[m] = 1
    return out


def diagonal_chain(n: int) -> np.ndarray:
    """Voxels touching only through corners: (i, i, i) - one component spanning n slices."""
    mask = np.zeros((n, n, n), dtype=np.uint8)
    for i in range(n):
        mask[i, i, i] = 1
    return mask


def test_corner_contacts_connect_components():
    mask = diagonal_chain(12)
    assert filter_components(mask, 12).sum() == 12  # one component of span 12
    assert filter_components(mask, 13).sum() == 0


def test_span_is_stop_minus_start():
    mask = np.zeros((20, 4, 4), dtype=np.uint8)
    mask[3:13, 1, 1] = 1  # slices 3..12: span 10
    mask[0:9, 3, 3] = 1  # slices 0..8: span 9 (not touching the first)
    out = filter_components(mask, 10)
    assert out[3:13, 1, 1].all() and out[:, 3, 3].sum() == 0


@pytest.mark.parametrize("seed", range(6))
def test_matches_bfs_on_random_diagonal_masks(seed):
    rng = np.random.default_rng(seed)
    # sparse random voxels: most contacts between them are edge/corner (diagonal) contacts
    mask = (rng.random((14, 12, 12)) < 0.12).astype(np.uint8)
    # plus diagonal-only chains across Z
    for _ in range(3):
        y, x = rng.integers(0, 12, 2)
        for z in range(rng.integers(4, 14)):
            mask[z, (y + z) % 12, (x - z) % 12] = 1
    for n in (1, 3, 5, 10):
        expected = bfs_filter(mask, n)
        np.testing.assert_array_equal(filter_components(mask, n), expected)
        np.testing.assert_array_equal(filter_components_reference(mask, n), expected)


def test_membrane_mask_matches_reference():
    mask = membrane_mask((24, 64, 64), seed=1, n_shells=4, n_specks=50)
    np.testing.assert_array_equal(filter_components(mask, 10), filter_components_reference(mask, 10))


def test_min_slices_validated():
    with pytest.raises(ValueError):
        filter_components(np.zeros((2, 2, 2), np.uint8), 0)


def test_cli_roundtrip(tmp_path, cli_main):
    main = cli_main
    mask = np.zeros((12, 5, 5), np.uint8)
    mask[0:10, 2, 2] = 1
    mask[0:3, 0, 0] = 1
    write_volume(tmp_path / "m.mrc", mask, 10.0)
    assert (
        main(["postprocess", str(tmp_path / "m.mrc"), "--min-slices", "10", "--out", str(tmp_path / "o.mrc")])
        == 0
    )
    out, vs = read_mask(tmp_path / "o.mrc")
    assert out.dtype.kind == "u" and out.sum() == 10 and vs == (10.0, 10.0, 10.0)
    assert main(["postprocess", str(tmp_path / "missing.mrc"), "--out", str(tmp_path / "x.mrc")]) == 2
    assert not (tmp_path / "x.mrc").exists()


# ---------------------------------------------------------------- rung cutting (upstream 58e8df8)


def two_membranes_with_a_rung() -> tuple[np.ndarray, np.ndarray]:
    """Two parallel 3-px membranes (rows 10-12 and 18-20, columns 5-54) and a 3-px rung (rows 13-17)."""
    m = np.zeros((32, 60), bool)
    m[10:13, 5:55] = True
    m[18:21, 5:55] = True
    rung = np.zeros_like(m)
    rung[13:18, 29:32] = True
    return m | rung, rung


def components(mask: np.ndarray) -> int:
    return ndimage.label(mask, structure=np.ones((3, 3)))[1]


def test_skeleton_parts_of_a_one_pixel_h():
    """An H drawn 1 px wide: junction clusters {(4..6, 2), (5, 3)} and {(4..6, 8), (5, 7)}; the bar
    (5, 4..6) is 3 px between two clusters; the four legs are 4 px, one cluster each, with an end."""
    h = np.zeros((11, 11), bool)
    h[:, 2] = h[:, 8] = True
    h[5, 3:8] = True
    segments, lengths, touched, has_end = skeleton_parts(h)
    bar = segments[5, 5]
    assert set(segments[5, 4:7].tolist()) == {bar} and segments[5, 3] == segments[5, 7] == 0
    assert segments[4, 2] == segments[5, 2] == segments[6, 2] == 0
    assert lengths[bar] == 3 and touched[bar] == 2 and not has_end[bar]
    legs = [segments[0, 2], segments[10, 2], segments[0, 8], segments[10, 8]]
    assert len(set(legs)) == 4
    assert all(lengths[s] == 4 and touched[s] == 1 and has_end[s] for s in legs)
    assert len(lengths) - 1 == 5


def test_rung_between_parallel_membranes_is_cut_and_the_membranes_stay():
    mask, rung = two_membranes_with_a_rung()
    # the rung's skeleton: rows 13-17 of column 30 (5 px) between junction clusters at rows 11-12 and 18-19
    out = cut_rungs_slice(mask, max_bridge_len=5)
    np.testing.assert_array_equal(mask & ~out, rung)  # exactly the rung's 15 pixels are removed
    assert components(mask) == 1 and components(out) == 2
    assert out[10:13, 5:55].all() and out[18:21, 5:55].all()
    # a bridge longer than max_bridge_len stays
    np.testing.assert_array_equal(cut_rungs_slice(mask, max_bridge_len=4), mask)


def test_spur_is_pruned_only_when_asked():
    m = np.zeros((32, 60), bool)
    m[10:13, 5:55] = True
    spur = np.zeros_like(m)
    spur[13:17, 29:32] = True
    mask = m | spur
    np.testing.assert_array_equal(cut_rungs_slice(mask, 5, max_spur_len=0), mask)
    out = cut_rungs_slice(mask, 5, max_spur_len=4)
    np.testing.assert_array_equal(mask & ~out, spur)  # the membrane (legs of 22 and 24 px) stays
    assert out[10:13, 5:55].all()


def test_cut_rungs_works_slice_by_slice_and_keeps_empty_slices():
    mask, rung = two_membranes_with_a_rung()
    vol = np.stack([mask, np.zeros_like(mask), mask & ~rung]).astype(np.uint8)
    out = cut_rungs(vol, max_bridge_len=5)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], mask & ~rung)
    assert out[1].sum() == 0
    np.testing.assert_array_equal(out[2], mask & ~rung)


def test_steps_run_in_upstreams_order():
    """thin_noise first, then rungs; the paper's default is thin_noise alone (unchanged output)."""
    mask, rung = two_membranes_with_a_rung()
    vol = np.repeat(mask[None], 12, axis=0).astype(np.uint8)
    vol[0:3, 0:3, 0:3] = 1  # a blob spanning 3 slices: thin noise
    np.testing.assert_array_equal(postprocess_mask(vol), filter_components(vol, 10))
    both = postprocess_mask(vol, ["rungs", "thin_noise"], min_slices=10, max_bridge_len=5)
    assert both[:, 0:3, 0:3].sum() == 0
    np.testing.assert_array_equal(both, np.repeat((mask & ~rung)[None], 12, axis=0))
    with pytest.raises(ValueError, match="no post-processing step"):
        postprocess_mask(vol, [])


def test_cli_steps_and_preset(tmp_path, cli_main):
    mask, rung = two_membranes_with_a_rung()
    vol = np.repeat(mask[None], 12, axis=0).astype(np.uint8)
    write_volume(tmp_path / "m.mrc", vol, 10.0)
    paper = ["postprocess", str(tmp_path / "m.mrc"), "--out", str(tmp_path / "p.mrc")]
    assert cli_main(paper) == 0
    np.testing.assert_array_equal(read_mask(tmp_path / "p.mrc")[0], vol)
    assert (
        cli_main(
            ["postprocess", str(tmp_path / "m.mrc"), "--out", str(tmp_path / "u.mrc"), "--preset", "upstream"]
        )
        == 0
    )
    np.testing.assert_array_equal(read_mask(tmp_path / "u.mrc")[0][0], mask & ~rung)
    args = ["postprocess", str(tmp_path / "m.mrc"), "--out", str(tmp_path / "r.mrc"), "--steps", "rungs"]
    assert cli_main([*args, "--max-bridge-len", "4"]) == 0
    np.testing.assert_array_equal(read_mask(tmp_path / "r.mrc")[0], vol)
