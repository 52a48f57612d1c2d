"""`tomoseg segment` / `make-test-checkpoints` end to end on the tiny untrained model; bad inputs."""

import json
import shutil

import numpy as np
import pytest
import torch

import tomoseg.cli as cli
from tomoseg.core.io import read_mask, read_volume, write_volume
from tomoseg.etsam.model import make_test_checkpoints

VOXEL = (10.0, 11.0, 12.0)


def run_cli(monkeypatch, *args):
    """The real `tomoseg` command line, in process."""
    return cli.main([str(a) for a in args])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    torch.set_num_threads(2)
    return make_test_checkpoints(out, 128)


@pytest.fixture
def tomogram(tmp_path):
    rng = np.random.default_rng(4)
    v = rng.normal(size=(6, 40, 56)).astype(np.float32)
    v[:, 18:22] += 3.0
    path = tmp_path / "tomo.mrc"
    write_volume(path, v, VOXEL)
    return path


def segment_args(tomo, out, s1, s2, *extra):
    return [
        "segment",
        tomo,
        "--out",
        out,
        "--stage1-checkpoint",
        s1,
        "--stage2-checkpoint",
        s2,
        "--no-progress",
        *extra,
    ]


def test_make_test_checkpoints_cli(monkeypatch, tmp_path):
    assert run_cli(monkeypatch, "make-test-checkpoints", "--out", tmp_path, "--image-size", "64") == 0
    blob = torch.load(tmp_path / "etsam_stage1_test.pt", weights_only=True)
    assert list(blob) == ["model"] and isinstance(blob["model"], dict)
    meta = json.loads((tmp_path / "etsam_stage1_test.json").read_text())
    assert meta["untrained"] is True and meta["model_config"].endswith("sam2.1_hiera_t.yaml")
    assert "++model.image_size=64" in meta["overrides"]


def test_segment_writes_outputs(monkeypatch, tmp_path, tomogram, checkpoints):
    s1, s2 = checkpoints
    out = tmp_path / "out"
    assert (
        run_cli(monkeypatch, *segment_args(tomogram, out, s1, s2, "--store-logits", "--threshold", "-0.25"))
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "mask.mrc",
        "provenance.json",
        "stage1_logits.mrc",
        "stage2_logits.mrc",
    ]
    mask, voxel = read_mask(out / "mask.mrc")
    logits2, voxel2 = read_volume(out / "stage2_logits.mrc")
    logits1, _ = read_volume(out / "stage1_logits.mrc")
    assert mask.dtype == np.uint8 and mask.shape == (6, 40, 56)
    assert voxel == pytest.approx(VOXEL) and voxel2 == pytest.approx(VOXEL)
    np.testing.assert_array_equal(mask, (logits2 > -0.25).astype(np.uint8))
    assert logits1.dtype == np.float32 and logits1[0].max() < 0  # the prompt frame is the (averaged) mask
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["method"] == "etsam" and prov["untrained"] is True
    assert (
        set(prov["checkpoints"]) == {"stage1", "stage2"}
        and len(prov["checkpoints"]["stage1"]["sha256"]) == 64
    )
    assert prov["parameters"]["threshold"] == -0.25 and prov["parameters"]["prompt_stage1"] == "grid_first"


def _fails(monkeypatch, capsys, args, *needles):
    assert run_cli(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    for n in needles:
        assert n in err, err
    return err


def test_bad_volumes(monkeypatch, capsys, tmp_path, checkpoints):
    s1, s2 = checkpoints
    nan = np.zeros((4, 40, 40), np.float32)
    nan[1, 2, 3] = np.nan
    write_volume(tmp_path / "nan.mrc", nan, VOXEL)
    write_volume(tmp_path / "tiny.mrc", np.random.default_rng(0).random((4, 8, 40), dtype=np.float32), VOXEL)
    import mrcfile

    with mrcfile.new(tmp_path / "flat.mrc") as m:
        m.set_data(np.ones((40, 40), np.float32))
    for name, needle in [("nan.mrc", "non-finite"), ("tiny.mrc", "too small"), ("flat.mrc", "3-D")]:
        out = tmp_path / f"out-{name}"
        _fails(monkeypatch, capsys, segment_args(tmp_path / name, out, s1, s2), name, needle)
        assert not out.exists() or not any(out.iterdir())


def partial_checkpoint(source, dest):
    """A copy of `source` (and its sidecar) with one key missing and one unexpected key."""
    blob = torch.load(source, weights_only=True)
    blob["model"].pop("no_mem_embed")
    blob["model"]["extra.weight"] = torch.zeros(1)
    torch.save(blob, dest)
    shutil.copy(source.with_suffix(".json"), dest.with_suffix(".json"))
    return dest


def test_missing_and_mismatched_checkpoints(monkeypatch, capsys, tmp_path, tomogram, checkpoints):
    s1, s2 = checkpoints
    out = tmp_path / "out"
    _fails(
        monkeypatch,
        capsys,
        segment_args(tomogram, out, tmp_path / "nope.pt", s2),
        "nope.pt: checkpoint not found",
        "zenodo.org/records/17571925",
    )
    partial_checkpoint(s1, tmp_path / "partial.pt")
    _fails(
        monkeypatch,
        capsys,
        segment_args(tomogram, out, tmp_path / "partial.pt", s2),
        "partial.pt: checkpoint does not match",
        "1 missing keys: no_mem_embed",
        "1 unexpected keys: extra.weight",
    )
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    _fails(
        monkeypatch,
        capsys,
        segment_args(tomogram, out, tmp_path / "garbage.pt", s2),
        "garbage.pt: not a readable PyTorch checkpoint",
    )
    assert not out.exists() or not any(out.iterdir())


def test_failure_in_stage2_leaves_no_outputs(monkeypatch, capsys, tmp_path, tomogram, checkpoints):
    """Stage 1 runs, Stage 2's checkpoint does not fit: nothing (not even Stage 1 logits) is written."""
    s1, _ = checkpoints
    out = tmp_path / "out"
    out.mkdir()
    bad = partial_checkpoint(s1, tmp_path / "partial2.pt")
    _fails(
        monkeypatch,
        capsys,
        segment_args(tomogram, out, s1, bad, "--store-logits"),
        "partial2.pt: checkpoint does not match",
    )
    assert list(out.iterdir()) == []


def test_cuda_without_gpu_is_a_clear_error(monkeypatch, capsys, tmp_path, tomogram, checkpoints):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    s1, s2 = checkpoints
    _fails(
        monkeypatch,
        capsys,
        segment_args(tomogram, tmp_path / "o", s1, s2, "--device", "cuda"),
        "no CUDA device",
    )


@pytest.mark.slow
def test_bin_option(monkeypatch, tmp_path, tomogram, checkpoints):
    """--bin 2 (off by default): SAM2 sees 2x2 block means; logits come back at full slice size."""
    from tomoseg.etsam.pipeline import bin_slices, unbin_slices

    v = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    np.testing.assert_allclose(bin_slices(v, 2)[0], [[3.5, 5.5, 7.5], [15.5, 17.5, 19.5]])
    assert unbin_slices(np.full((2, 2, 3), -1024.0, np.float32), (2, 4, 6)).shape == (2, 4, 6)
    s1, s2 = checkpoints
    out = tmp_path / "binned"
    assert run_cli(monkeypatch, *segment_args(tomogram, out, s1, s2, "--bin", "2", "--store-logits")) == 0
    logits, _ = read_volume(out / "stage2_logits.mrc")
    assert logits.shape == (6, 40, 56)
    assert json.loads((out / "provenance.json").read_text())["parameters"]["bin"] == 2


def test_preset_and_explicit_options_resolve(tmp_path):
    """--preset gives the defaults; options given explicitly (upstream's names too) win."""
    from tomoseg.cli.engine_args import options_from, settings_from

    parse = cli.build_parser().parse_args
    paper = parse(["segment", "t.mrc", "--out", str(tmp_path)])
    o = options_from(paper)
    assert (o.prompt_stage1, o.prompt_stage2, o.stage1_threshold, o.threshold, o.split) == (
        "grid_first",
        "empty",
        0.0,
        -0.25,
        1,
    )
    assert settings_from(paper)["normalization"] == "max_positive"
    up = parse(["segment", "t.mrc", "--out", str(tmp_path), "--preset", "upstream", "--split-processing"])
    o = options_from(up)
    assert (o.stage1_threshold, o.split, o.split_grid_spacing, o.split_every_n) == (-0.25, 4, 10, 10)
    mixed = parse(
        ["segment", "t.mrc", "--out", str(tmp_path), "--preset", "upstream", "--stage1-threshold", "0.5"]
        + ["--prompt-stage1", "grid", "--prompt-stage2", "etsam_stage1_partial"]
        + ["--normalization", "min_max_positive_values"]
    )
    o = options_from(mixed)
    assert (o.stage1_threshold, o.prompt_stage1, o.prompt_stage2) == (
        0.5,
        "grid_every_n",
        "stage1_mask_every_n",
    )
    assert settings_from(mixed)["normalization"] == "max_positive"


@pytest.mark.slow
def test_segment_upstream_options_end_to_end(monkeypatch, tmp_path, tomogram, checkpoints):
    """--preset upstream with split processing, softplus normalization and the Stage 1 mask prompt."""
    s1, s2 = checkpoints
    out = tmp_path / "out"
    extra = ["--preset", "upstream", "--split", "4", "--normalization", "softplus_minmax"]
    extra += ["--prompt-stage2", "etsam_stage1_partial", "--split-every-n", "4", "--store-logits"]
    assert run_cli(monkeypatch, *segment_args(tomogram, out, s1, s2, *extra)) == 0
    prov = json.loads((out / "provenance.json").read_text())
    p = prov["parameters"]
    assert (p["preset"], p["normalization"], p["split"], p["prompt_stage2"]) == (
        "upstream",
        "softplus_minmax",
        4,
        "stage1_mask_every_n",
    )
    assert p["stage1_threshold"] == -0.25 and p["split_grid_spacing"] == 10
    assert prov["timing"]["stage1"]["tiles"] == 4 and prov["timing"]["stage2"]["tiles"] == 4
    mask, _ = read_mask(out / "mask.mrc")
    logits2, _ = read_volume(out / "stage2_logits.mrc")
    assert mask.shape == (6, 40, 56)
    np.testing.assert_array_equal(mask, (logits2 > -0.25).astype(np.uint8))
