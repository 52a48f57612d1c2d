"""Membrain-Seg and TARDIS run for real (their own venvs, tiny random checkpoints of their real architectures).

The tools' environments come from `make setup` (venvs/membrain, venvs/tardis). Without them these tests
skip on a developer machine, but fail in CI (CI=1/true or TOMOSEG_REQUIRE_BASELINES=1).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tomoseg.baselines.checkpoints import checkpoint_marker, make_baseline_checkpoints
from tomoseg.baselines.driver import TOOL_PACKAGES, BaselineError, GpuMemorySampler
from tomoseg.baselines.membrain import run_membrain
from tomoseg.baselines.tardis import run_tardis
from tomoseg.core.io import (
    InputError,
    Placement,
    read_json,
    read_placement,
    read_volume,
    sha256sum,
    write_volume,
)

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = (
    os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    or os.environ.get("TOMOSEG_REQUIRE_BASELINES") == "1"
)
SHAPE = (32, 48, 56)  # Z, Y, X: all different, so a swapped axis changes the shape
VOXEL = (13.48, 13.48, 13.48)
# A tomogram that does not sit at 0: every output must carry its origin (x, y, z) = (100, 200, 300) A.
PLACED = Placement(origin=(300.0, 200.0, 100.0), start=(9, 8, 7))


def _python(tool: str) -> Path:
    override = os.environ.get(f"TOMOSEG_{tool.upper()}_PYTHON")
    path = Path(override) if override else ROOT / "venvs" / tool / "bin" / "python"
    if not path.exists():
        message = f"{path}: {tool} environment missing (create it with `make baselines`)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def membrain_python() -> Path:
    return _python("membrain")


@pytest.fixture(scope="module")
def tardis_python() -> Path:
    return _python("tardis")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, membrain_python, tardis_python) -> dict[str, Path]:
    return make_baseline_checkpoints(tmp_path_factory.mktemp("ckpt"), membrain_python, tardis_python)


@pytest.fixture(scope="module")
def tomogram(tmp_path_factory) -> Path:
    """A small phantom-like volume: dark curved sheets (membranes) in noise, values around 0."""
    rng = np.random.default_rng(7)
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in SHAPE), indexing="ij")
    r = np.sqrt((z - 16) ** 2 + (y - 24) ** 2 + (x - 28) ** 2)
    sheets = np.exp(-((r - 14) ** 2) / 2.0) + np.exp(-((x - 8 - 0.2 * y) ** 2) / 2.0)
    volume = (-sheets + 0.5 * rng.normal(size=SHAPE)).astype(np.float32)
    path = tmp_path_factory.mktemp("data") / "tomogram.mrc"
    write_volume(path, volume, VOXEL, placement=PLACED)
    return path


@pytest.fixture(scope="module")
def membrain_run(tmp_path_factory, tomogram, checkpoints, membrain_python):
    out = tmp_path_factory.mktemp("membrain") / "phantom"
    gpu = out.parent / "gpu.json"
    record = run_membrain(
        tomogram, out, checkpoints["membrain"], membrain_python,
        sliding_window_size=64, test_time_augmentation=False, settings="test: 64 window, no TTA",
        gpu_json=gpu, keep_tool_outputs=True,
    )  # fmt: skip
    return out, record, gpu


@pytest.fixture(scope="module")
def tardis_run(tmp_path_factory, tomogram, checkpoints, tardis_python):
    out = tmp_path_factory.mktemp("tardis") / "phantom"
    gpu = out.parent / "gpu.json"
    record = run_tardis(
        tomogram, out, checkpoints["tardis"], tardis_python,
        patch_size=64, rotate=False, settings="test: 64 patches, no rotation",
        gpu_json=gpu, tool_mask=True, keep_tool_outputs=True,
    )  # fmt: skip
    return out, record, gpu


def test_missing_checkpoint_says_where_weights_are_published(tmp_path, tomogram):
    with pytest.raises(InputError, match=r"drive\.google\.com") as err:
        run_membrain(tomogram, tmp_path / "m", tmp_path / "nope.ckpt", python=None)
    assert str(tmp_path / "nope.ckpt") in str(err.value)
    with pytest.raises(InputError, match=r"tardis-weigths.*membrane_3d") as err:
        run_tardis(tomogram, tmp_path / "t", tmp_path / "nope.pth", python=None)
    assert "~/.tardis_em/fnet_attn_32/membrane_3d" in str(err.value)
    assert not (tmp_path / "m").exists() and not (tmp_path / "t").exists()


def test_tiny_checkpoints_are_marked_untrained(checkpoints):
    for tool, ckpt in checkpoints.items():
        marker = checkpoint_marker(ckpt)
        assert marker["untrained"] is True
        assert marker["tool"] == TOOL_PACKAGES[tool]
        assert marker["sha256"] == sha256sum(ckpt)
        assert marker["parameters"] > 1000


@pytest.mark.slow
def test_membrain_outputs(membrain_run, tomogram):
    out, record, gpu = membrain_run
    scores, vs_scores = read_volume(out / "scores.mrc")
    mask, vs_mask = read_volume(out / "mask.mrc")
    _, vs_in = read_volume(tomogram)
    assert scores.shape == mask.shape == SHAPE
    assert scores.dtype == np.float32 and np.issubdtype(mask.dtype, np.integer)
    assert vs_scores == vs_mask == vs_in
    assert np.array_equal(mask, scores > 0.0)
    assert 0 < mask.sum() < mask.size  # random weights still give a mixed map on this input
    # Our mask equals the tool's own segmented file.
    (tool_file,) = (out / "tool").glob("*_segmented.mrc")
    tool_mask, vs_tool = read_volume(tool_file)
    assert np.array_equal(mask, tool_mask != 0)
    assert record["tool_mask_voxels_differing"] == 0
    assert vs_tool == vs_in
    assert read_placement(out / "scores.mrc") == read_placement(out / "mask.mrc") == PLACED


@pytest.mark.slow
def test_membrain_provenance(membrain_run, checkpoints):
    out, record, gpu = membrain_run
    prov = read_json(out / "provenance.json")
    assert prov["method"] == "membrain"
    assert prov["untrained"] is True
    assert prov["tool"]["name"] == "membrain-seg" and prov["tool"]["version"] == "0.0.10"
    assert prov["checkpoint"]["sha256"] == sha256sum(checkpoints["membrain"])
    assert (
        prov["checkpoint_check"]["ok"]
        and prov["checkpoint_check"]["model_keys"] == prov["checkpoint_check"]["checkpoint_keys"]
    )
    assert (
        prov["parameters"]["sliding_window_size"] == 64
        and prov["parameters"]["test_time_augmentation"] is False
    )
    assert "--no-test-time-augmentation" in prov["command"] and "--sliding-window-size" in prov["command"]
    assert prov["command"][1] == "segment" and prov["settings"].startswith("test")
    # The tiny checkpoint holds only tensors and plain data: read as data, and the tool forced weights-only.
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in json.dumps(prov)
    assert prov["checkpoint"]["trust"] == "read as data"
    assert prov["checkpoint_loading"].startswith("weights-only")
    assert read_json(gpu)["device"] == "cpu" and read_json(gpu)["peak_gpu_memory_mb"] is None
    assert not list(out.parent.glob(".*work-*"))  # the job's working directory is gone


def test_membrain_refuses_checkpoint_with_missing_keys(tmp_path, tomogram, checkpoints, membrain_python):
    torch = pytest.importorskip("torch")
    ckpt = torch.load(checkpoints["membrain"], map_location="cpu", weights_only=False)
    dropped = sorted(ckpt["state_dict"])[3]
    del ckpt["state_dict"][dropped]
    bad = tmp_path / "membrain_bad.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(BaselineError, match="not every checkpoint key loads") as err:
        run_membrain(
            tomogram,
            tmp_path / "out",
            bad,
            membrain_python,
            sliding_window_size=64,
            test_time_augmentation=False,
        )
    assert dropped in str(err.value)
    assert not (tmp_path / "out").exists()


def _border(n: int) -> int:
    """TARDIS 0.3.36 zeroes max(1, min(5, round(1% of the size))) voxels at each Y and X edge."""
    return max(1, min(5, int(round(n * 0.01))))


@pytest.mark.slow
def test_tardis_outputs(tardis_run, tomogram):
    out, record, gpu = tardis_run
    probabilities, vs_p = read_volume(out / "probabilities.mrc")
    mask, vs_m = read_volume(out / "mask.mrc")
    _, vs_in = read_volume(tomogram)
    assert probabilities.shape == mask.shape == SHAPE
    assert probabilities.dtype == np.float32 and np.issubdtype(mask.dtype, np.integer)
    assert vs_p == vs_m == vs_in
    assert 0.0 <= probabilities.min() and probabilities.max() <= 1.0
    assert np.array_equal(mask, probabilities >= 0.25)
    assert 0 < mask.sum() < mask.size
    assert read_placement(out / "probabilities.mrc") == read_placement(out / "mask.mrc") == PLACED


@pytest.mark.slow
def test_tardis_mask_equals_tools_own_inside_border(tardis_run):
    out, record, gpu = tardis_run
    mask, _ = read_volume(out / "mask.mrc")
    assert record["tool_mask"]["written"], "the tool wrote no mask of its own (empty prediction?)"
    tool_mask, _ = read_volume(out / "tool_mask.mrc")
    assert read_placement(out / "tool_mask.mrc") == PLACED
    by, bx = _border(SHAPE[1]), _border(SHAPE[2])
    inside = (slice(None), slice(by, -by), slice(bx, -bx))
    assert np.array_equal(mask[inside], tool_mask[inside])
    # The tool's own mask is zero on its border; ours is not altered there.
    border = np.ones(SHAPE, bool)
    border[inside] = False
    assert not tool_mask[border].any()
    probabilities, _ = read_volume(out / "probabilities.mrc")
    assert np.array_equal(mask[border], probabilities[border] >= 0.25)


def test_tardis_provenance(tardis_run, checkpoints):
    out, record, gpu = tardis_run
    prov = read_json(out / "provenance.json")
    assert prov["method"] == "tardis" and prov["untrained"] is True
    assert prov["tool"]["name"] == "tardis-em" and prov["tool"]["version"] == "0.3.36"
    assert prov["checkpoint"]["trust"] == "read as data"
    assert prov["checkpoint_loading"].startswith("weights-only")
    assert prov["checkpoint"]["sha256"] == sha256sum(checkpoints["tardis"])
    assert prov["command"][0].endswith("tardis_mem")
    flags = dict(zip(prov["command"][1::2], prov["command"][2::2], strict=False))
    assert (
        flags["-ct"] == "0"
        and flags["-ps"] == "64"
        and flags["-rt"] == "False"
        and flags["-out"] == "mrc_None"
    )
    assert float(flags["-px"]) == pytest.approx(VOXEL[2], abs=1e-3)
    assert read_json(gpu)["peak_gpu_memory_mb"] is None and read_json(gpu)["device"] == "cpu"
    assert not list(out.parent.glob(".*work-*"))


def test_tardis_rejection_with_exit_0_is_a_failure(tmp_path, tomogram, checkpoints, tardis_python):
    # TARDIS skips input files whose name ends in "mask.mrc", reports "does not contain any
    # recognizable file" and exits 0 without output; that must fail the call with the tool's words.
    renamed = tmp_path / "cell_mask.mrc"
    shutil.copyfile(tomogram, renamed)
    with pytest.raises(BaselineError, match="does not contain any recognizable file") as err:
        run_tardis(
            renamed, tmp_path / "out", checkpoints["tardis"], tardis_python, patch_size=64, rotate=False
        )
    assert "exited 0" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_gpu_sampler_takes_the_peak_of_the_tool_process_tree(tmp_path, monkeypatch):
    # A stand-in `nvidia-smi` answering like NVML's per-process query: our child (1234 then 2345 MiB)
    # and a foreign process (9000 MiB) that must not count.
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])
    counter = tmp_path / "n"
    script = tmp_path / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}\n"
        f'if [ "$n" -eq 0 ]; then echo "{child.pid}, 1234"; else echo "{child.pid}, 2345"; fi\n'
        "echo '999999, 9000'\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with GpuMemorySampler(child.pid, interval_s=0.1) as sampler:
        child.wait()
    assert sampler.available and sampler.samples >= 2
    assert sampler.peak_mb == 2345.0
