"""Post-processing against an independent breadth-first flood fill."""

from collections import deque

import numpy as np
import pytest

from tomoseg.core.io import read_mask, write_volume
from tomoseg.evaluation.postprocess import filter_components
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
