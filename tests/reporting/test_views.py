"""The headless 3-D views (Figures 2, 3, 5): geometry oracles of the renderer, the pooled reader, the plan."""

import math

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.core.io import write_json, write_volume
from tomoseg.core.planning import view_figure_files, view_figure_rows, view_figure_tomograms
from tomoseg.reporting.views import (
    binned_mask,
    build_views_figure,
    coloured_view,
    score_change,
    surface_view,
)

SHAPE = (40, 64, 64)


def sphere_shell(radius: float, shape=SHAPE) -> np.ndarray:
    z, y, x = np.indices(shape)
    centre = [(n - 1) / 2 for n in shape]
    r = np.sqrt((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2)
    return np.abs(r - radius) < 1.0


def test_a_sphere_seen_from_any_side_covers_its_disc():
    shell = sphere_shell(15)
    for elevation, azimuth in ((0, 0), (35, 30), (90, 0), (60, 120)):
        _, seen = surface_view(shell, elevation, azimuth)
        assert seen.sum() == pytest.approx(math.pi * 16**2, rel=0.08), (elevation, azimuth)


def test_a_plane_facing_the_viewer_is_evenly_lit_and_tilting_it_foreshortens_it():
    plane = np.zeros(SHAPE, bool)
    plane[20] = True  # z = 20: faces the beam axis, the view axis at elevation 0
    shade, seen = surface_view(plane, 0, 0)
    assert seen.sum() == 64 * 64
    assert np.ptp(shade[seen]) < 1e-9  # one normal, one depth: one brightness
    _, tilted = surface_view(plane, 60, 0)
    rows = np.nonzero(tilted.any(axis=1))[0]
    assert np.ptp(rows) + 1 == pytest.approx(64 * math.cos(math.radians(60)), abs=2)
    # seen edge-on, a plane is a line
    _, edge = surface_view(plane, 90, 0)
    assert np.ptp(np.nonzero(edge.any(axis=1))[0]) + 1 <= 2


def test_nearer_and_lit_surfaces_are_brighter():
    two = np.zeros(SHAPE, bool)
    two[5, 5:30, 5:30] = True  # near the viewer (small depth)
    two[35, 34:60, 34:60] = True  # far
    shade, seen = surface_view(two, 0, 0)
    labels, count = ndimage.label(seen)
    assert count == 2
    near, far = sorted((np.sum(labels == k), shade[labels == k].mean()) for k in (1, 2))  # 625 < 676 px
    assert near[1] > far[1]


def test_an_empty_mask_renders_blank():
    image = coloured_view(np.zeros(SHAPE, bool), "#0072b2")
    assert image.shape[-1] == 3 and np.all(image == 1.0)


def test_binning_keeps_a_one_voxel_membrane(tmp_path):
    mask = np.zeros((100, 300, 260), np.uint8)
    mask[:, 151, :] = 1  # one voxel thick
    write_volume(tmp_path / "m.mrc", mask, 10.0)
    binned = binned_mask(tmp_path / "m.mrc", max_size=128)
    assert binned.shape == (34, 100, 87)  # factor 3 (ceil), partial blocks kept
    assert binned[:, 50, :].all() and binned.sum() == 34 * 87


def test_score_change_names_what_changed():
    before = {"dice": 0.61, "precision": 0.5, "recall": 0.8}
    after = {"dice": 0.66, "precision": 0.6, "recall": 0.8}
    assert score_change(before, after) == "Dice 0.610 → 0.660\nprecision 0.500 → 0.600"
    assert score_change(before, before) == "no score changed"


def test_views_plan_prefers_the_configured_tomograms_and_falls_back():
    views = {"figure2": ["a", "x"], "figure3": ["r"], "figure5": ["b"]}
    selected = ["a", "b", "c", "d", "e", "u"]
    truth = {"a", "b", "c", "d", "e"}
    methods = ["etsam", "etsam_postprocessed", "membrain"]
    plan = view_figure_tomograms(views, selected, truth, methods)
    assert plan == {"figure2": ["a"], "figure3": ["u"], "figure5": ["b"]}
    plan = view_figure_tomograms({}, selected, truth, methods)
    assert plan == {"figure2": ["a", "b", "c"], "figure3": ["u"], "figure5": ["a"]}
    # no run without truth: no Figure 3; no post-processing: no Figure 5
    assert view_figure_tomograms(views, selected[:5], truth, ["etsam"]) == {"figure2": ["a"]}


def test_figure5_writes_png_and_pdf_with_the_changed_scores(tmp_path):
    tomogram = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    write_volume(tmp_path / "tomogram.mrc", tomogram, 10.0)
    shell = sphere_shell(15)
    noisy = shell.copy()
    noisy[2:4, 2:4, 2:4] = True
    for name, mask in (("truth", shell), ("before", noisy), ("after", shell)):
        write_volume(tmp_path / f"{name}.mrc", mask.astype(np.uint8), 10.0)
    write_json(tmp_path / "before.json", {"dice": 0.9, "precision": 0.8, "recall": 1.0})
    write_json(tmp_path / "after.json", {"dice": 1.0, "precision": 1.0, "recall": 1.0})
    rows = {
        "t1": {
            "tomogram": str(tmp_path / "tomogram.mrc"),
            "masks": {
                "ground truth": str(tmp_path / "truth.mrc"),
                "etsam": str(tmp_path / "before.mrc"),
                "etsam_postprocessed": str(tmp_path / "after.mrc"),
            },
            "metrics": {
                "etsam": str(tmp_path / "before.json"),
                "etsam_postprocessed": str(tmp_path / "after.json"),
            },
        }
    }
    files = build_views_figure("figure5", rows, tmp_path / "figure5", ["etsam", "etsam_postprocessed"], {})
    assert sorted(p.suffix for p in files) == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in files)


def test_views_rows_put_truth_first_and_give_figure5_its_metrics():
    masks = {
        "a": {"etsam": "results/etsam/a/mask.mrc", "etsam_postprocessed": "results/etsam/a/mask_postprocessed.mrc",
              "membrain": "results/membrain/a/mask.mrc"},
        "u": {"etsam": "results/etsam/u/mask.mrc"},
    }  # fmt: skip
    rows = view_figure_rows("figure2", ["a", "u"], masks, {"a"})
    assert list(rows["a"]["masks"]) == ["ground truth", "etsam", "etsam_postprocessed", "membrain"]
    assert rows["a"]["masks"]["ground truth"] == "results/data/a/groundtruth.mrc"
    assert list(rows["u"]["masks"]) == ["etsam"] and rows["u"]["metrics"] == {}
    five = view_figure_rows("figure5", ["a"], masks, {"a"})["a"]
    assert list(five["masks"]) == ["ground truth", "etsam", "etsam_postprocessed"]
    assert five["metrics"] == {m: f"results/metrics/{m}/a.json" for m in ("etsam", "etsam_postprocessed")}
    assert view_figure_files({"a": five})[0] == "results/data/a/tomogram.mrc"
    assert len(view_figure_files({"a": five})) == 1 + 3 + 2
