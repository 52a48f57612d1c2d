"""Frames, prompts, fusion, thresholds and the no-object value of the ETSAM engine."""

import logging

import numpy as np
import pytest
import torch
from etsam_helpers import GRID_SPACING, IMAGE_SIZE, model, volume
from PIL import Image
from scipy import ndimage

from tomoseg.etsam.engine import propagate
from tomoseg.etsam.frames import IMAGENET_MEAN, IMAGENET_STD, make_frames, pil_frames
from tomoseg.etsam.fusion import NO_OBJECT_SCORE, FusedVolume, fuse, threshold
from tomoseg.etsam.prompts import build_prompts, grid_mask, prompt_frames, resize_mask_prompt

# Dot survival through SAM2's mask-prompt resize at image size 1024, counted as
# connected blobs (928 x 960 keeps 295 dots = 296 px: one dot straddles two pixels).
DOTS_AT_1024 = [
    ((1000, 1000), 240, 400),
    ((928, 960), 295, 380),
    ((500, 500), 100, 100),
    ((1024, 1024), 441, 441),
    ((2048, 2048), 0, 1681),
]


@pytest.mark.parametrize("size,kept,total", DOTS_AT_1024)
def test_grid_dot_survival_matches_sam2_resize(size, kept, total):
    grid = grid_mask(*size, 50)
    assert int(grid.sum()) == total
    _, dots = ndimage.label(resize_mask_prompt(grid, 1024)[0, 0].numpy())  # upsampled dots are blobs
    assert dots == kept


def test_vanishing_dots_warn(caplog):
    with caplog.at_level(logging.WARNING):
        prompts = build_prompts("grid_first", (3, 300, 300), 128)
    assert "0 of 36 dots survive" in caplog.text and "the prompt is empty" in caplog.text
    assert list(prompts) == [0]


def test_prompt_modes():
    assert prompt_frames("grid_first", 120) == [0]
    assert prompt_frames("empty", 120) == [0]
    assert prompt_frames("grid_every_n", 120) == [0, 50, 100]
    assert prompt_frames("stage1_mask_every_n", 12, every_n=5) == [0, 5, 10]
    empty = build_prompts("empty", (4, 20, 30), 128)
    assert list(empty) == [0] and not empty[0].any() and empty[0].shape == (20, 30)
    s1 = np.full((12, 20, 30), -1.0, np.float32)
    s1[5, 3, 4] = 0.5
    s1[10, :, :] = 0.0  # threshold is strict: 0.0 is background
    p = build_prompts("stage1_mask_every_n", s1.shape, 128, every_n=5, stage1_logits=s1)
    assert list(p) == [0, 5, 10] and [int(m.sum()) for m in p.values()] == [0, 1, 0]
    with pytest.raises(ValueError, match="unknown prompt mode"):
        prompt_frames("points", 10)
    with pytest.raises(ValueError, match="needs the Stage 1 logits"):
        build_prompts("stage1_mask_every_n", (4, 20, 30), 128)


@pytest.mark.parametrize(
    "shape,size", [((3, 100, 150), 128), ((2, 300, 200), 128), ((2, 128, 128), 128), ((1, 928, 960), 1024)]
)
def test_frames_match_pillow_bicubic(shape, size):
    """Our on-device antialiased bicubic equals the published PIL mode-F BICUBIC path to 2e-5 after the
    ImageNet normalization (measured <= 4.3e-6, i.e. ~1e-6 in grey values of range [0, 2])."""
    rng = np.random.default_rng(1)
    slices = rng.random(shape, dtype=np.float32) * 2  # Stage 2 inputs reach ~2
    ours, pil = make_frames(slices, size), pil_frames(slices, size)
    assert ours.shape == pil.shape == (shape[0], 3, size, size)
    assert float((ours - pil).abs().max()) < 2e-5
    # channels are the same grey image under the three ImageNet normalizations
    grey = ours[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    assert torch.allclose(ours[:, 2] * IMAGENET_STD[2] + IMAGENET_MEAN[2], grey, atol=1e-5)


def test_pillow_reference_is_pillow():
    """pil_frames really is Image.resize(BICUBIC) on mode F (guards the reference itself)."""
    s = np.arange(20 * 30, dtype=np.float32).reshape(1, 20, 30) / 600
    direct = np.asarray(Image.fromarray(s[0], mode="F").resize((64, 64), Image.BICUBIC))
    assert np.allclose(
        pil_frames(s, 64)[0, 1].numpy() * IMAGENET_STD[1] + IMAGENET_MEAN[1], direct, atol=1e-6
    )


def test_fusion_arithmetic():
    norm = np.array([[[0.0, 0.5], [1.0, 0.25]]], np.float32)
    s1 = np.array([[[-20.0, 0.0], [5.0, 2.5]]], np.float32)  # clipped to [-5, 5] -> min -5, max 5
    expected = norm + np.array([[[0.0, 0.5], [1.0, 0.75]]], np.float32)
    np.testing.assert_allclose(fuse(norm, s1), expected, atol=1e-7)
    np.testing.assert_allclose(FusedVolume(norm, s1)[[0]], expected, atol=1e-7)
    # without clipping reaching the bounds the min-max uses the volume's own range; constant logits add 0
    np.testing.assert_allclose(fuse(norm, np.full_like(norm, -1024.0)), norm)
    s1b = np.array([[[1.0, 2.0], [3.0, 2.0]]], np.float32)
    np.testing.assert_allclose(fuse(norm, s1b), norm + np.array([[[0.0, 0.5], [1.0, 0.5]]]), atol=1e-7)


def test_thresholds_are_strict():
    logits = np.array([[[-0.3, -0.25, -0.2, 0.0, 0.1]]], np.float32)
    assert threshold(logits, -0.25).tolist() == [[[0, 0, 1, 1, 1]]]
    assert threshold(logits, 0.0).tolist() == [[[0, 0, 0, 0, 1]]]
    assert threshold(logits, 0.0).dtype == np.uint8


def test_no_object_frames_are_minus_1024():
    """With the object-score head biased to 'absent', every propagated frame is exactly -1024; the empty
    prompt frame is the mask itself (-10 everywhere)."""
    net = model(3, -20.0)
    vol = np.random.default_rng(2).random((4, 40, 56), dtype=np.float32)
    out, stats = propagate(net, vol, build_prompts("empty", vol.shape, 128), progress=False)
    np.testing.assert_allclose(out[0], -10.0, atol=1e-5)
    np.testing.assert_allclose(out[1:], NO_OBJECT_SCORE, atol=1e-3)  # bilinear upsampling rounds to ~1e-4
    assert stats.frames_with_object == 1 and stats.frames == 4


def test_grid_prompt_frame_is_the_mask_at_low_resolution():
    """The prompt frame's output is the mask as +-10 logits, 4x downsampled (antialiased) and upsampled back:
    1-px dots average out to ~ -9.4, so slice 0 of Stage 1 is below 0 everywhere (as in the published code)."""
    net = model(0)
    vol = np.random.default_rng(3).random((2, 128, 128), dtype=np.float32)
    out, _ = propagate(net, vol, build_prompts("grid_first", vol.shape, 128, grid_spacing=16), progress=False)
    assert -10.0 - 1e-4 <= out[0].min() and out[0].max() < 0
    assert out[0][0, 0] > -9.5 and out[0][8, 8] == pytest.approx(-10.0, abs=1e-4)


@pytest.mark.slow
def test_state_is_bounded():
    """Only what memory attention reads is kept: the last 15 frames' object pointers and the last 6 memories."""
    net = model(0)
    vol = np.random.default_rng(4).random((24, 32, 32), dtype=np.float32)
    _, stats = propagate(net, vol, build_prompts("empty", vol.shape, 128), progress=False)
    assert stats.max_stored_frames == net.max_obj_ptrs_in_encoder - 1
    assert stats.max_stored_memories == net.num_maskmem - 1


def test_keep_aspect_option():
    """Off by default; on a square slice it changes nothing; on a non-square one it pads instead of stretching."""
    net = model(0)
    rng = np.random.default_rng(5)
    square = rng.random((3, 64, 64), dtype=np.float32)
    prompts = build_prompts("grid_first", square.shape, 128, grid_spacing=8)
    a, _ = propagate(net, square, prompts, progress=False)
    b, _ = propagate(net, square, prompts, progress=False, keep_aspect=True)
    np.testing.assert_array_equal(a, b)
    wide = rng.random((3, 40, 80), dtype=np.float32)
    prompts = build_prompts("grid_first", wide.shape, 128, grid_spacing=8)
    stretched, _ = propagate(net, wide, prompts, progress=False)
    padded, _ = propagate(net, wide, prompts, progress=False, keep_aspect=True)
    assert padded.shape == stretched.shape == wide.shape
    assert not np.allclose(padded[1:], stretched[1:])


def test_option_names_match_the_engine():
    """The torch-free option names (what the command line offers) are the engine's."""
    from tomoseg.etsam import engine, options

    assert tuple(engine.DTYPES) == options.DTYPE_NAMES


def _to_copy_count(fn) -> int:
    """How many aten::_to_copy (dtype casts and device copies) `fn()` dispatches, by the torch profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::_to_copy")


def test_bf16_propagation_keeps_the_weight_cast_cache():
    """The loop runs under no_grad, where autocast caches each weight's bf16 copy: under inference_mode
    (what the engine used before) every Linear/Conv re-casts its weight and bias on every slice. Same logits."""
    net = model(0)
    vol = volume()[:12]
    prompts = build_prompts("grid_first", vol.shape, IMAGE_SIZE, grid_spacing=GRID_SPACING)

    def run():
        return propagate(net, vol, prompts, dtype="bfloat16", progress=False)[0]

    def run_inference_mode():
        with torch.inference_mode():
            return run()

    ours, theirs = run(), run_inference_mode()
    np.testing.assert_array_equal(ours, theirs)
    cached, uncached = _to_copy_count(run), _to_copy_count(run_inference_mode)
    # the tiny model has ~100 Linear/Conv layers on the per-slice path: each saves >= 1 cast per slice
    assert uncached - cached >= 50 * len(vol), (cached, uncached)


def test_imagenet_constants_are_made_once_per_device():
    """normalize_frames reuses one upload of the ImageNet mean/std (no per-chunk host-to-device copy)."""
    from tomoseg.etsam.frames import imagenet_constants, normalize_frames

    x = torch.rand(2, 1, 8, 8)
    normalize_frames(x)
    a = imagenet_constants(x.device, x.dtype)
    normalize_frames(x)
    assert imagenet_constants(x.device, x.dtype)[0] is a[0]
    with torch.inference_mode():
        y = normalize_frames(x)
    assert not imagenet_constants(x.device, x.dtype)[0].is_inference()
    np.testing.assert_allclose(y[:, 1].numpy(), ((x[:, 0] - 0.456) / 0.224).numpy(), rtol=1e-6)


def test_dtype_auto_is_bf16_on_cuda_and_float32_on_cpu():
    """--dtype auto (the default) resolves when the options are made, so provenance records what ran."""
    from tomoseg.etsam.options import EtsamOptions, resolve_dtype

    assert resolve_dtype("auto", "cuda") == resolve_dtype("auto", "cuda:1") == "bfloat16"
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16"
    assert EtsamOptions().dtype == "float32"
    assert EtsamOptions(device="cpu", dtype="bfloat16").dtype == "bfloat16"


def test_threads_option_sets_torchs_threads(tmp_path):
    """A job's `threads` become torch's intra-op threads; fewer than one is refused before any work."""
    from tomoseg.core.errors import InputError
    from tomoseg.etsam.model import make_test_checkpoints
    from tomoseg.etsam.options import EtsamOptions
    from tomoseg.etsam.pipeline import segment_tomogram

    s1, s2 = make_test_checkpoints(tmp_path, image_size=64)[:2]
    before = torch.get_num_threads()
    try:
        opts = EtsamOptions(stage1_checkpoint=str(s1), stage2_checkpoint=str(s2), threads=1, progress=False)
        segment_tomogram(volume()[:2], opts, stages=("stage1",))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(InputError, match="threads"):
        EtsamOptions(threads=0).validate()
