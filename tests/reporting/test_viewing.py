"""`tomoseg view` without a display: the layers it builds, and what it hands to a (stand-in) napari."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.core.io import InputError, Placement, write_volume
from tomoseg.reporting.viewing import contrast_limits, view_layers, world_position

VOXEL = (10.0, 11.0, 12.0)
PLACED = Placement(origin=(300.0, 200.0, 100.0))


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    tomogram = rng.normal(size=(4, 20, 24)).astype(np.float32)
    mask = (tomogram > 1).astype(np.uint8)
    logits = np.where(mask > 0, 3.0, -3.0).astype(np.float32)
    paths = {"tomogram": tmp_path / "tomogram.mrc", "mask": tmp_path / "etsam" / "mask.mrc"}
    paths["logits"] = tmp_path / "etsam" / "stage2_logits.mrc"
    for key, data in (("tomogram", tomogram), ("mask", mask), ("logits", logits)):
        write_volume(paths[key], data, VOXEL, placement=PLACED)
    return paths


def test_layers_are_scaled_and_placed_by_their_headers(files):
    layers = view_layers(files["tomogram"], [files["mask"]], [files["logits"]])
    assert [(layer.name, layer.kind) for layer in layers] == [
        ("tomogram", "image"),
        ("etsam/stage2_logits", "image"),
        ("etsam/mask", "labels"),
    ]
    for layer in layers:
        assert layer.options["scale"] == VOXEL and layer.options["translate"] == PLACED.origin
        assert layer.data.shape == (4, 20, 24)
    tomo, logits, mask = layers
    assert tomo.options["colormap"] == "gray"
    low, high = tomo.options["contrast_limits"]
    assert np.mean((tomo.data >= low) & (tomo.data <= high)) == pytest.approx(0.99, abs=0.01)
    assert logits.options["visible"] is False and logits.options["blending"] == "additive"
    assert mask.data.dtype == np.uint8 and set(np.unique(mask.data)) <= {0, 1}


def test_world_position_falls_back_to_the_grid_start():
    assert world_position(VOXEL, Placement(start=(1, 2, 3))) == {
        "scale": VOXEL,
        "translate": (10.0, 22.0, 36.0),
    }
    assert contrast_limits(np.zeros((2, 2, 2), np.float32)) == (0.0, 1.0)  # a flat volume still shows


def test_mismatched_mask_is_refused(files, tmp_path):
    write_volume(tmp_path / "small.mrc", np.zeros((4, 20, 20), np.uint8), VOXEL)
    with pytest.raises(InputError, match="differs from the tomogram"):
        view_layers(files["tomogram"], [tmp_path / "small.mrc"])


class _Viewer:
    def __init__(self, title):
        self.title, self.added, self.dims = title, [], types.SimpleNamespace(ndisplay=3)

    def add_image(self, data, **options):
        self.added.append(("image", options["name"], options))

    def add_labels(self, data, **options):
        self.added.append(("labels", options["name"], options))


def test_view_command_hands_the_layers_to_napari(files, monkeypatch):
    viewers = []
    napari = types.ModuleType("napari")
    napari.Viewer = lambda title: viewers.append(_Viewer(title)) or viewers[-1]
    napari.run = lambda: None
    monkeypatch.setitem(sys.modules, "napari", napari)
    argv = ["view", str(files["tomogram"]), "--mask", str(files["mask"]), "--logits", str(files["logits"])]
    assert main(argv) == 0
    (viewer,) = viewers
    assert [(kind, name) for kind, name, _ in viewer.added] == [
        ("image", "tomogram"),
        ("image", "etsam/stage2_logits"),
        ("labels", "etsam/mask"),
    ]
    assert viewer.added[2][2]["translate"] == PLACED.origin and viewer.dims.ndisplay == 2


def test_view_without_napari_says_which_extra(files, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari -> ModuleNotFoundError
    assert main(["view", str(files["tomogram"])]) == 1
    assert "tomoseg[view]" in capsys.readouterr().err
