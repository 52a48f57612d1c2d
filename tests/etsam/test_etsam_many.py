"""`tomoseg segment A B ... --out DIR` and `tomoseg segment FOLDER`: many tomograms in one process, the models
built and the checkpoints read once, each tomogram's outputs equal to a run of its own; a rerun redoes only
the tomograms that are not finished."""

import json
import os

import numpy as np
import pytest
import torch

import tomoseg.cli as cli
import tomoseg.etsam.pipeline as pipeline
from tomoseg.core.io import read_volume, write_volume
from tomoseg.etsam.model import make_test_checkpoints


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    torch.set_num_threads(2)
    return make_test_checkpoints(tmp_path_factory.mktemp("ckpt"), 64)[:2]


@pytest.fixture
def tomograms(tmp_path):
    folder = tmp_path / "tomos"
    folder.mkdir()
    paths = []
    for seed, name in enumerate(("a.mrc", "b.rec")):
        v = np.random.default_rng(seed).normal(size=(4, 36, 44)).astype(np.float32)
        v[:, 14 + seed : 18 + seed] += 3.0
        write_volume(folder / name, v, (10.0, 10.0, 10.0))
        paths.append(folder / name)
    (folder / "notes.txt").write_text("not a tomogram")
    return paths


def segment(out, s1, s2, *inputs):
    args = ["segment", *inputs, "--out", out, "--stage1-checkpoint", s1, "--stage2-checkpoint", s2]
    return cli.main([str(a) for a in [*args, "--no-progress", "--store-logits"]])


def test_many_tomograms_equal_runs_of_their_own(tmp_path, tomograms, checkpoints, monkeypatch):
    """One process, one build per model config and one read per checkpoint; outputs bit-identical to
    segmenting each tomogram alone."""
    s1, s2 = checkpoints
    builds, loads = [], []
    real_build, real_load = pipeline.build_model, pipeline.load_checkpoint
    monkeypatch.setattr(pipeline, "build_model", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    monkeypatch.setattr(pipeline, "load_checkpoint", lambda m, c: loads.append(c) or real_load(m, c))
    assert segment(tmp_path / "many", s1, s2, *tomograms) == 0
    assert len(builds) == 1 and sorted(loads) == sorted([str(s1), str(s2)])
    monkeypatch.undo()
    for tomo, name in zip(tomograms, ("a", "b"), strict=True):
        assert segment(tmp_path / f"alone-{name}", s1, s2, tomo) == 0
        for out in ("mask.mrc", "stage1_logits.mrc", "stage2_logits.mrc"):
            many, _ = read_volume(tmp_path / "many" / name / out)
            alone, _ = read_volume(tmp_path / f"alone-{name}" / out)
            np.testing.assert_array_equal(many, alone)
        record = json.loads((tmp_path / "many" / name / "provenance.json").read_text())
        assert record["inputs"] == {"tomogram": str(tomo)}


def test_a_folder_is_its_tomograms_and_a_rerun_redoes_only_what_is_unfinished(
    tmp_path, tomograms, checkpoints
):
    s1, s2 = checkpoints
    out = tmp_path / "out"
    assert segment(out, s1, s2, tomograms[0].parent) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.mrc")}
    os.remove(out / "b" / "mask.mrc")  # as a run killed while writing b leaves it
    assert segment(out, s1, s2, tomograms[0].parent) == 0
    assert (out / "b" / "mask.mrc").is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.parent.name == "a")
    assert (out / "b" / "stage1_logits.mrc").stat().st_mtime_ns != stamps[out / "b" / "stage1_logits.mrc"]
    # other settings are another run: everything is redone
    before = (out / "a" / "mask.mrc").stat().st_mtime_ns
    assert segment(out, s1, s2, tomograms[0].parent, "--threshold", "0.5") == 0
    assert (out / "a" / "mask.mrc").stat().st_mtime_ns != before


def test_clashing_names_and_empty_folders_are_refused_before_any_work(
    tmp_path, tomograms, checkpoints, capsys
):
    s1, s2 = checkpoints
    other = tmp_path / "other"
    other.mkdir()
    write_volume(other / "a.mrc", np.zeros((4, 36, 44), np.float32), (10.0, 10.0, 10.0))
    assert segment(tmp_path / "out", s1, s2, tomograms[0], other / "a.mrc") == 2
    assert "rename one of them" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert segment(tmp_path / "out", s1, s2, empty) == 2
    assert "no tomograms in it" in capsys.readouterr().err


def test_out_format_writes_ome_zarr_beside_or_instead(tmp_path, tomograms, checkpoints):
    """--out-format both: each output MRC and its OME-Zarr copy (same values, voxel size); ome-zarr: the copy
    alone; `threshold` and `postprocess` take it too."""
    from tomoseg.core.io import read_mask

    s1, s2 = checkpoints
    assert segment(tmp_path / "both", s1, s2, tomograms[0], "--out-format", "both") == 0
    for name in ("mask", "stage1_logits", "stage2_logits"):
        mrc, mrc_voxel = read_volume(tmp_path / "both" / f"{name}.mrc")
        zarr, zarr_voxel = read_volume(tmp_path / "both" / f"{name}.zarr")
        np.testing.assert_array_equal(zarr, mrc)
        assert zarr_voxel == pytest.approx(mrc_voxel)
    assert segment(tmp_path / "zarr", s1, s2, *tomograms, "--out-format", "ome-zarr") == 0
    for name in ("a", "b"):
        folder = tmp_path / "zarr" / name
        assert not list(folder.glob("*.mrc")) and (folder / "mask.zarr").is_dir()
        assert (folder / "provenance.json").is_file()
    logits = tmp_path / "both" / "stage2_logits.mrc"
    for argv in (
        ["threshold", logits, "--threshold", "0.5", "--out", tmp_path / "t.mrc", "--out-format", "ome-zarr"],
        ["postprocess", tmp_path / "both" / "mask.mrc", "--out", tmp_path / "p.mrc", "--out-format", "both"],
    ):
        assert cli.main([str(a) for a in argv]) == 0
    assert not (tmp_path / "t.mrc").exists()
    mask, _ = read_mask(tmp_path / "t.zarr")
    raw, _ = read_volume(logits)
    np.testing.assert_array_equal(mask, (raw > 0.5).astype(mask.dtype))
    np.testing.assert_array_equal(read_mask(tmp_path / "p.zarr")[0], read_mask(tmp_path / "p.mrc")[0])


def test_an_ome_zarr_input_is_segmented_at_the_level_asked_for(tmp_path, checkpoints):
    """--level N and --voxel-size A pick the resolution of an OME-Zarr input: the outputs have that level's
    shape and voxel size and equal a run on that level written as MRC; a level it lacks is rc 2."""
    from tomoseg.core.omezarr import open_zarr_volume, write_ome_zarr

    s1, s2 = checkpoints
    v = np.random.default_rng(3).normal(size=(8, 64, 72)).astype(np.float32)
    v[:, 30:34] += 3.0
    write_ome_zarr(tmp_path / "t.zarr", v, 10.0, levels=2)
    level1 = open_zarr_volume(tmp_path / "t.zarr", 20.0)
    write_volume(tmp_path / "level1.mrc", np.asarray(level1.data[...]), level1.level.voxel_size)
    assert segment(tmp_path / "mrc", s1, s2, tmp_path / "level1.mrc") == 0
    expected, _ = read_volume(tmp_path / "mrc" / "mask.mrc")
    for flags in (["--level", "1"], ["--voxel-size", "19"]):
        out = tmp_path / f"out{flags[0]}"
        assert segment(out, s1, s2, tmp_path / "t.zarr", *flags) == 0
        mask, voxel = read_volume(out / "mask.mrc")
        assert mask.shape == (4, 32, 36) and voxel == (20.0, 20.0, 20.0)
        np.testing.assert_array_equal(mask, expected)
        record = json.loads((out / "provenance.json").read_text())
        assert record["parameters"]["ome_zarr_target_voxel_size"] == (20.0 if flags[0] == "--level" else 19.0)
    assert segment(tmp_path / "bad", s1, s2, tmp_path / "t.zarr", "--level", "5") == 2
    assert not (tmp_path / "bad" / "mask.mrc").exists()
