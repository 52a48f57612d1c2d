"""Bidirectional propagation (off by default): backward pass vs upstream reverse=True, fusion rule, wiring."""

import json
import logging

import numpy as np
import pytest
import yaml
from etsam_helpers import GRID_SPACING, IMAGE_SIZE, SHAPE, model, volume
from snakemake_helpers import REPO, make_workdir, run_snakemake

from tomoseg.core.io import write_volume
from tomoseg.etsam.engine import fuse_passes, has_object, propagate
from tomoseg.etsam.frames import make_frames
from tomoseg.etsam.fusion import NO_OBJECT_SCORE
from tomoseg.etsam.model import load_model, make_test_checkpoints
from tomoseg.etsam.pipeline import EtsamOptions, segment_tomogram
from tomoseg.etsam.prompts import build_prompts, prompt_frames
from tomoseg.testing.reference import upstream_logits

TOL = 1e-3
log = logging.getLogger("bidirectional")


def test_backward_prompt_frames_count_from_the_end():
    assert prompt_frames("grid_first", 26) == [0]
    assert prompt_frames("grid_first", 26, reverse=True) == [25]
    assert prompt_frames("empty", 26, reverse=True) == [25]
    assert prompt_frames("grid_every_n", 26, 7, reverse=True) == [25, 18, 11, 4]
    s1 = np.zeros((5, 20, 20), np.float32)
    s1[3, 2:5, 2:5] = 1.0
    prompts = build_prompts("stage1_mask_every_n", s1.shape, 128, every_n=2, stage1_logits=s1, reverse=True)
    assert sorted(prompts) == [0, 2, 4] and prompts[2].sum() == 0
    prompts = build_prompts("stage1_mask_every_n", s1.shape, 128, every_n=1, stage1_logits=s1, reverse=True)
    assert prompts[3].sum() == 9  # the Stage 1 mask of the slice itself, not of its mirror image


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["grid_first", "grid_every_n"])
def test_backward_pass_matches_upstream_reverse(mode):
    """Our backward pass = upstream propagate_in_video(start_frame_idx=N-1, reverse=True) on a fresh state with
    the same prompts. 26 frames (> 16 object pointers, > 7 memories: the bounded state is evicted in reverse);
    with every_n = 7 the conditioning frames (25, 18, 11, 4) lie on both sides of most frames."""
    prompts = build_prompts(mode, SHAPE, IMAGE_SIZE, every_n=7, grid_spacing=GRID_SPACING, reverse=True)
    ours, stats = propagate(model(0), volume(), prompts, progress=False, reverse=True)
    ref = upstream_logits(model(0), make_frames(volume(), IMAGE_SIZE), SHAPE, prompts, reverse=True)
    with_object = sum(has_object(x) for x in ours)
    assert with_object >= SHAPE[0] // 2, "the test needs frames with an object"
    assert with_object == sum(has_object(x) for x in ref)
    assert stats.max_stored_frames < SHAPE[0] - len(prompts)  # state bounded in reverse too
    diff = float(np.abs(ours - ref).max())
    log.info(f"backward {mode}: max |ours - upstream reverse| = {diff:.3g}")
    assert diff <= TOL


@pytest.mark.slow
def test_backward_pass_is_the_forward_pass_of_the_reversed_volume():
    """Why the backward prompts count from the end: reverse tracking is the mode run on the Z-flipped volume."""
    n = 10
    vol = volume()[:n]
    prompts = build_prompts(
        "grid_first", (n, *SHAPE[1:]), IMAGE_SIZE, grid_spacing=GRID_SPACING, reverse=True
    )
    backward, _ = propagate(model(0), vol, prompts, progress=False, reverse=True)
    flipped = {n - 1 - f: m for f, m in prompts.items()}
    forward_of_flipped, _ = propagate(model(0), np.ascontiguousarray(vol[::-1]), flipped, progress=False)
    assert float(np.abs(backward - forward_of_flipped[::-1]).max()) <= 1e-5


def test_fusion_rule_by_construction():
    """Mean where both passes predict the object; the one that does where only one does; -1024 where neither;
    a pass's own prompted slice (its prompt echoed back) only where both passes are prompted there."""
    rng = np.random.default_rng(1)
    fwd = rng.normal(size=(7, 6, 7)).astype(np.float32)
    bwd = rng.normal(size=(7, 6, 7)).astype(np.float32)
    fwd[1] = NO_OBJECT_SCORE  # only the backward pass sees the object
    bwd[2] = NO_OBJECT_SCORE + 1e-4  # only the forward pass (-1024 up to upsampling rounding)
    fwd[3] = bwd[3] = NO_OBJECT_SCORE  # neither
    bwd[6] = NO_OBJECT_SCORE  # slice 6: prompted in the forward pass only, the backward pass sees nothing
    fused = fuse_passes(fwd, bwd, forward_prompted=[0, 4, 5, 6], backward_prompted=[0, 5])
    np.testing.assert_array_equal(fused[0], (fwd[0] + bwd[0]) / 2)  # prompted in both
    np.testing.assert_array_equal(fused[1], bwd[1])
    np.testing.assert_array_equal(fused[2], fwd[2])
    assert (fused[3] == NO_OBJECT_SCORE).all()
    np.testing.assert_array_equal(fused[4], bwd[4])  # forward prompted: the backward prediction
    np.testing.assert_array_equal(fused[5], (fwd[5] + bwd[5]) / 2)
    assert (fused[6] == NO_OBJECT_SCORE).all()  # the forward echo is not a prediction
    plain = fuse_passes(fwd, bwd)  # no prompted slices: the object rule alone
    np.testing.assert_array_equal(plain[4], (fwd[4] + bwd[4]) / 2)
    np.testing.assert_array_equal(plain[1], bwd[1])
    fwd_copy = fwd.copy()
    assert fuse_passes(fwd, bwd, [0, 4, 5, 6], [0, 5], out=fwd) is fwd  # in place, same values
    np.testing.assert_array_equal(fwd, fused)
    with pytest.raises(ValueError, match="shapes differ"):
        fuse_passes(fwd_copy, bwd[:3])


def test_backward_needs_a_prompt_on_the_last_frame():
    vol = volume()[:4]
    with pytest.raises(ValueError, match="frame 3 needs a prompt"):
        propagate(model(0), vol, {0: np.zeros(SHAPE[1:], bool)}, progress=False, reverse=True)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return make_test_checkpoints(tmp_path_factory.mktemp("ckpt"), IMAGE_SIZE)


@pytest.mark.slow
def test_pipeline_off_is_the_forward_engine_and_on_fuses_both_passes(checkpoints):
    """Default off: both stages' logits are exactly the plain forward propagation. On: exactly
    fuse_passes(forward, backward) per stage, Stage 2 fed the fused Stage 1 logits, both passes timed."""
    s1, s2 = (str(p) for p in checkpoints)
    vol = np.ascontiguousarray(volume()[:6, :64, :96])
    common = dict(stage1_checkpoint=s1, stage2_checkpoint=s2, grid_spacing=GRID_SPACING, progress=False)
    assert EtsamOptions().bidirectional is False
    off = segment_tomogram(vol, EtsamOptions(**common), stages=("stage1",))
    on = segment_tomogram(
        vol, EtsamOptions(**common, prompt_stage2="stage1_mask_every_n", every_n=3, bidirectional=True)
    )
    net = load_model(s1)[0]
    p1 = build_prompts("grid_first", vol.shape, IMAGE_SIZE, grid_spacing=GRID_SPACING)
    fwd1, _ = propagate(net, vol, p1, progress=False)
    np.testing.assert_array_equal(off.stage1_logits, fwd1)
    assert set(off.stats) == {"stage1"}
    p1b = build_prompts("grid_first", vol.shape, IMAGE_SIZE, grid_spacing=GRID_SPACING, reverse=True)
    bwd1, _ = propagate(net, vol, p1b, progress=False, reverse=True)
    assert float(np.abs(bwd1 - fwd1).max()) > TOL  # control: the two passes differ, so fusion is not trivial
    fused1 = fuse_passes(fwd1, bwd1, p1, p1b)
    np.testing.assert_array_equal(on.stage1_logits, fused1)
    np.testing.assert_array_equal(fused1[0], bwd1[0])  # slice 0: the backward prediction, not the grid echo
    assert not np.array_equal(on.stage1_logits, fwd1)
    assert set(on.stats) == {"stage1", "stage1_backward", "stage2", "stage2_backward"}
    assert on.stats["stage2"].conditioning_frames == [0, 3]
    assert on.stats["stage2_backward"].conditioning_frames == [2, 5]


@pytest.mark.slow
def test_cli_flag_reaches_the_engine(cli_main, tmp_path, checkpoints):
    """`tomoseg segment --bidirectional` runs both passes of both stages and records it in provenance.json."""
    s1, s2 = checkpoints
    tomo = tmp_path / "tomo.mrc"
    write_volume(tomo, np.ascontiguousarray(volume()[:4, :48, :64]), (10.0, 10.0, 10.0))
    args = ["segment", str(tomo), "--stage1-checkpoint", str(s1), "--stage2-checkpoint", str(s2)]
    assert (
        cli_main(
            [*args, "--out", str(tmp_path / "on"), "--device", "cpu", "--no-progress", "--bidirectional"]
        )
        == 0
    )
    prov = json.loads((tmp_path / "on" / "provenance.json").read_text())
    assert prov["parameters"]["bidirectional"] is True
    assert set(prov["timing"]) == {"stage1", "stage1_backward", "stage2", "stage2_backward"}
    assert (tmp_path / "on" / "mask.mrc").is_file()


@pytest.mark.workflow
def test_workflow_config_key_reaches_the_engine(tmp_path):
    """config etsam.bidirectional: true -> the etsam_stage1 rule runs both passes (stage1_provenance.json)."""
    tomogram = np.random.default_rng(7).normal(size=(6, 48, 64)).astype(np.float32)
    write_volume(tmp_path / "mine.mrc", tomogram, (9.0, 9.0, 9.0))
    etsam = yaml.safe_load((REPO / "config" / "demo" / "ci.yaml").read_text())["etsam"]
    workdir = make_workdir(tmp_path, methods=["etsam_stage1"], etsam={**etsam, "bidirectional": True})
    header = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
    (workdir / "config" / "runs_local.tsv").write_text(
        header + f"mine\tlocal\t\t\t\t{tmp_path / 'mine.mrc'}\t\tnone\ttest\n"
    )
    run_snakemake(workdir, "--cores", "2", "--resources", "gpu=1", "--config", "runs=config/runs_local.tsv")
    prov = json.loads((workdir / "results" / "etsam" / "mine" / "stage1_provenance.json").read_text())
    assert prov["parameters"]["bidirectional"] is True
    assert set(prov["timing"]) == {"stage1", "stage1_backward"}
