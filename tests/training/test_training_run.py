"""`tomoseg train` end to end on small phantoms: the checkpoints load in `segment`, Stage 2's inputs are the
inference fusion bit for bit, a trained checkpoint keeps upstream parity, the record says what was trained,
a SIGKILLed run resumes onto the uninterrupted loss curve, and bad inputs stop before any step with rc 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from etsam_helpers import volume

from tomoseg.acquisition.phantoms import write_phantom
from tomoseg.core.io import read_volume, sha256sum, write_volume
from tomoseg.etsam.engine import has_object, propagate
from tomoseg.etsam.frames import make_frames
from tomoseg.etsam.fusion import FusedVolume
from tomoseg.etsam.model import load_model, random_model
from tomoseg.etsam.pipeline import segment_tomogram
from tomoseg.etsam.prompts import build_prompts
from tomoseg.testing.reference import upstream_logits
from tomoseg.training.run import TrainJob, engine_options, model_spec, train
from tomoseg.training.settings import preset

REPO = Path(__file__).resolve().parents[2]
HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit"
SHAPE = (8, 64, 64)
# Hiera-tiny at 64 px, 4-slice samples, one epoch a stage: two optimizer steps per stage
SETTINGS = dict(image_size=64, frames=4, epochs_stage1=1, epochs_stage2=1, repeats=1, checkpoint_every=1)


def phantom_sheet(root: Path, rows: list[tuple[int, str]], shape=SHAPE) -> Path:
    """Phantoms under root/data/phantom-NNN and a runs sheet of them (seed, split)."""
    lines = [HEADER]
    for seed, split in rows:
        tomo = f"phantom-{seed:03d}"
        if not (root / "data" / tomo / "tomogram.mrc").is_file():
            write_phantom(root / "data" / tomo, seed, shape, 13.48, 0.5)
        lines.append(f"{tomo}\tphantom\t\t{seed}\t\t\t\tphantom\t{split}")
    sheet = root / "runs.tsv"
    sheet.write_text("\n".join(lines) + "\n")
    return sheet


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both stages trained on two phantoms and validated on a third (seeds differ)."""
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("train")
    sheet = phantom_sheet(root, [(11, "train"), (12, "train"), (13, "val"), (14, "test")])
    job = TrainJob(sheet, root / "out", preset("demo", **SETTINGS), data_dir=root / "data", progress=False)
    record = train(job)
    return job, record


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_segment_loads_the_trained_checkpoints(trained, tmp_path, cli_main):
    job, _ = trained
    tomogram = job.data_dir / "phantom-013" / "tomogram.mrc"
    code = cli_main(
        ["segment", str(tomogram), "--out", str(tmp_path), "--no-progress", "--grid-spacing", "10",
         "--stage1-checkpoint", str(job.checkpoint(1)), "--stage2-checkpoint", str(job.checkpoint(2))]
    )  # fmt: skip
    assert code == 0
    record = json.loads((tmp_path / "provenance.json").read_text())
    assert record["untrained"] is False
    assert record["checkpoints"]["stage2"]["sha256"] == sha256sum(job.checkpoint(2))
    side = json.loads(job.checkpoint(1).with_suffix(".json").read_text())
    assert side == {
        "model_config": "configs/sam2.1/sam2.1_hiera_t.yaml",
        "overrides": list(model_spec(job.settings).overrides),
        "untrained": False,
    }


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_training_record(trained):
    job, record = trained
    on_disk = json.loads((job.out / "training.json").read_text())
    assert on_disk["stages"] == record["stages"]
    assert record["trained_on"] == "synthetic phantoms" and record["untrained"] is False
    assert record["init"] is None and record["parameters"]["frames"] == 4
    assert record["packages"]["torch"] and record["packages"]["sam2"]
    rows = {r["tomo"]: r for r in record["rows"]}
    assert sorted(rows) == ["phantom-011", "phantom-012", "phantom-013"]  # the test row is not read
    assert rows["phantom-013"]["split"] == "val"
    assert rows["phantom-011"]["truth_sha256"] == sha256sum(job.data_dir / "phantom-011" / "groundtruth.mrc")
    for stage in ("stage1", "stage2"):
        s = record["stages"][stage]
        assert s["finished"] and s["steps"] == 2 and len(s["losses"]) == 2
        assert s["sha256"] == sha256sum(job.out / f"etsam_{stage}.pt")
        assert [v["epoch"] for v in s["val_dice"]] == [1]
        assert 0.0 <= s["val_dice"][0]["phantom-013"] <= 1.0
        assert np.isfinite(s["final_loss"]["total"])
    assert not list(job.out.glob(".validate*"))


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_training_curves_figure_from_the_record(trained, tmp_path):
    """The report's training figure is drawn from training.json; a record without steps says so instead."""
    from tomoseg.reporting.training_figure import training_curves

    job, record = trained
    written = training_curves(job.out / "training.json", tmp_path / "curves")
    assert [p.suffix for p in written] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in written)
    (tmp_path / "empty.json").write_text(json.dumps({**record, "stages": {}}))
    assert training_curves(tmp_path / "empty.json", tmp_path / "none")[0].is_file()


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_stage2_starts_from_the_trained_stage1_only_when_asked(trained):
    """stage2_from_stage1 (demo): Stage 2's starting weights are the trained Stage 1's; off (paper): random."""
    from dataclasses import replace

    from tomoseg.etsam.model import read_checkpoint
    from tomoseg.training.run import new_model

    job, _ = trained
    stage1 = read_checkpoint(new_model(job, 1), job.checkpoint(1))
    for flag in (True, False):
        start = new_model(
            replace(job, settings=replace(job.settings, stage2_from_stage1=flag)), 2
        ).state_dict()
        same = all(torch.equal(start[k], v) for k, v in stage1.items())
        assert same is flag


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_stage2_inputs_are_the_inference_fusion_bit_for_bit(trained):
    """What Stage 2 trained on = the trained Stage 1 run by the inference pipeline, fused as inference fuses."""
    job, _ = trained
    for tomo in ("phantom-011", "phantom-012", "phantom-013"):
        normalized, _ = read_volume(job.out / "data" / tomo / "normalized.mrc", dtype=np.float32)
        folder = job.out / "stage2_data" / tomo
        fused, _ = read_volume(folder / "fused.mrc")
        s1, _ = read_volume(folder / "stage1_logits.mrc")
        again = segment_tomogram(
            normalized, engine_options(job, job.checkpoint(1)), ("stage1",)
        ).stage1_logits
        assert np.array_equal(s1, again)
        inference = FusedVolume(normalized, s1)[:]  # what segment_tomogram feeds Stage 2
        assert fused.dtype == inference.dtype and np.array_equal(fused, inference)


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_trained_checkpoint_keeps_upstream_parity(trained):
    """The trained Stage 1 through our engine and through upstream SAM2VideoPredictor: the same logits."""
    job, _ = trained
    net, spec, untrained = load_model(job.checkpoint(1))
    assert not untrained
    init = random_model(spec, 0)
    changed = sum(
        not torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), init.state_dict().values(), strict=True)
    )
    assert changed > 100  # trained weights, not an init
    vol = volume()[:8]
    prompts = build_prompts("grid_first", vol.shape, net.image_size, grid_spacing=10)
    ours, _ = propagate(net, vol, prompts, progress=False)
    ref = upstream_logits(net, make_frames(vol, net.image_size), vol.shape, prompts)
    assert sum(has_object(x) for x in ref) == sum(has_object(x) for x in ours)
    assert float(np.abs(ours - ref).max()) <= 1e-3


RUNNER = """
import sys, torch
from pathlib import Path
torch.set_num_threads(1)
from tomoseg.training.run import TrainJob, train
from tomoseg.training.settings import preset
sheet, out, data = map(Path, sys.argv[1:4])
settings = preset("demo", image_size=64, frames=3, epochs_stage1=3, repeats=2, checkpoint_every=1)
train(TrainJob(sheet, out, settings, data_dir=data, stages=(1,), progress=False))
"""


def _train_process(sheet: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(sheet), str(out), str(sheet.parent / "data")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.slow  # trains SAM2 (tiny); ~1 min on an idle 2-core machine
def test_resume_after_sigkill_reproduces_the_loss_curve(tmp_path):
    sheet = phantom_sheet(tmp_path, [(21, "train")], shape=(8, 64, 64))
    killed = _train_process(sheet, tmp_path / "killed")
    state = tmp_path / "killed" / ".stage1.state.pt"
    deadline = time.monotonic() + 600
    while not state.is_file() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stderr.read() if killed.stderr else ""
    at_kill = torch.load(state, weights_only=False)["step"]
    assert 1 <= at_kill < 6 and not (tmp_path / "killed" / "etsam_stage1.pt").exists()
    for out in ("killed", "whole"):  # resume the killed run; the same run uninterrupted
        proc = _train_process(sheet, tmp_path / out)
        assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    curves = [
        json.loads((tmp_path / o / "training.json").read_text())["stages"]["stage1"]["losses"]
        for o in ("killed", "whole")
    ]
    assert len(curves[0]) == 6 and curves[0] == curves[1]
    weights = [
        torch.load(tmp_path / o / "etsam_stage1.pt", weights_only=True)["model"] for o in ("killed", "whole")
    ]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _pair(folder: Path, image: np.ndarray, truth: np.ndarray, voxel: float = 10.0, truth_voxel: float = 10.0):
    folder.mkdir(parents=True, exist_ok=True)
    write_volume(folder / "tomogram.mrc", image, voxel)
    write_volume(folder / "groundtruth.mrc", truth, truth_voxel)


def _bad_case(root: Path, case: str) -> tuple[list[str], str]:
    """A runs sheet (and files) with one problem; returns the extra CLI arguments and the file to be named."""
    rng = np.random.default_rng(0)
    image = rng.random((8, 32, 32), dtype=np.float32)
    truth = np.zeros((8, 32, 32), np.uint8)
    truth[:, 10:14, :] = 1
    folder = root / "data" / "t1"
    split, extra, named = "train", [], str(folder / "groundtruth.mrc")
    if case == "shape":
        truth = truth[:, :, :30]
    if case == "empty":
        truth[:] = 0
    if case == "all_membrane":
        truth[:] = 1
    if case == "few_slices":
        image, truth, named = image[:2], truth[:2], str(folder / "tomogram.mrc")  # < 3 frames
    if case == "no_train":
        split, named = "val", str(root / "runs.tsv")
    _pair(folder, image, truth, truth_voxel=12.0 if case == "voxel" else 10.0)
    if case == "init_not_sam2":
        named = str(root / "other.pt")
        torch.save({"model": {"layer.weight": torch.zeros(3)}}, named)
        extra = ["--init", named]
    if case == "init_not_checkpoint":
        named = str(root / "notes.pt")
        Path(named).write_text("not a checkpoint\n")
        extra = ["--init", named]
    (root / "runs.tsv").write_text(f"{HEADER}\nt1\tlocal\t\t\t\t\t\tlocal\t{split}\n")
    return extra, named


@pytest.mark.parametrize(
    "case",
    [
        "shape",
        "voxel",
        "empty",
        "all_membrane",
        "few_slices",
        "no_train",
        "init_not_sam2",
        "init_not_checkpoint",
    ],
)
def test_bad_input_is_one_line_rc2_before_any_step(tmp_path, cli_main, capsys, case):
    extra, named = _bad_case(tmp_path, case)
    out = tmp_path / "out"
    argv = [
        "train",
        "--runs",
        str(tmp_path / "runs.tsv"),
        "--out",
        str(out),
        "--data",
        str(tmp_path / "data"),
    ]
    code = cli_main([*argv, "--preset", "demo", "--device", "cpu", "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and named in err, err
    assert not out.exists() or not any(out.iterdir())
