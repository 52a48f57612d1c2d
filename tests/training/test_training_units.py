"""Training's parts: prompts from the truth, the augmentation, the loss, the optimizer groups and schedule,
the sample order, and the loss falling when the tiny SAM2 overfits one sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from etsam_helpers import model

from tomoseg.etsam.frames import IMAGENET_MEAN, IMAGENET_STD
from tomoseg.etsam.model import random_model, tiny_spec
from tomoseg.training.augment import Transform, apply_transform, draw_transform
from tomoseg.training.loop import forward_sample, plan_prompts
from tomoseg.training.loss import frame_loss
from tomoseg.training.optim import build_optimizer, layer_scale, lr_factor, param_groups
from tomoseg.training.prompts import (
    BOX_BOTTOM_RIGHT,
    BOX_TOP_LEFT,
    NEGATIVE,
    POSITIVE,
    box_prompt,
    correction_click,
    mask_prompt,
    point_prompt,
    sample_prompt,
)
from tomoseg.training.settings import preset

SETTINGS = preset("demo", image_size=128)


def _truths(count: int = 30) -> list[np.ndarray]:
    """Random blob-and-band masks of 64 x 80 px, each with some membrane."""
    rng = np.random.default_rng(5)
    out = []
    for _ in range(count):
        m = np.zeros((64, 80), bool)
        y, x = rng.integers(0, 60), rng.integers(0, 70)
        m[y : y + rng.integers(1, 8), x : x + rng.integers(1, 12)] = True
        m[rng.integers(0, 64), :] |= rng.random() < 0.5
        out.append(m)
    return out


def test_points_lie_inside_the_truth():
    rng = np.random.default_rng(0)
    for truth in _truths():
        p = point_prompt(truth, rng)
        (x, y), label = p.points[0], p.labels[0]
        assert label == POSITIVE and truth[int(y), int(x)]
    empty = point_prompt(np.zeros((8, 8), bool), rng)
    assert empty.labels.tolist() == [NEGATIVE]


def test_box_encloses_the_truth():
    rng = np.random.default_rng(1)
    for truth in _truths():
        p = box_prompt(truth, rng)
        assert p.labels.tolist() == [BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]
        (x0, y0), (x1, y1) = p.points
        ys, xs = np.nonzero(truth)
        assert x0 <= xs.min() and y0 <= ys.min() and x1 >= xs.max() and y1 >= ys.max()
        assert 0 <= x0 and 0 <= y0 and x1 <= truth.shape[1] - 1 and y1 <= truth.shape[0] - 1


def test_mask_prompt_equals_the_truth():
    for truth in _truths(5):
        p = mask_prompt(truth)
        assert p.points is None and np.array_equal(p.mask, truth)
        assert torch.equal(p.mask_inputs("cpu")[0, 0], torch.from_numpy(truth).float())


def test_prompt_mix_is_the_papers():
    """Points 0.5, box 0.5 x 0.5 = 0.25, mask 0.25 (notes/etsam-training.md)."""
    rng = np.random.default_rng(2)
    truth = _truths(1)[0]
    kinds = [sample_prompt(truth, rng, 0.5, 0.5).kind for _ in range(4000)]
    share = {k: kinds.count(k) / len(kinds) for k in ("points", "box", "mask")}
    assert share["points"] == pytest.approx(0.5, abs=0.03)
    assert share["box"] == pytest.approx(0.25, abs=0.03)
    assert share["mask"] == pytest.approx(0.25, abs=0.03)


def test_correction_clicks_fall_on_errors():
    rng = np.random.default_rng(3)
    truth = np.zeros((20, 20), bool)
    truth[5:10, 5:10] = True
    pred = np.zeros((20, 20), bool)
    pred[5:10, 8:15] = True
    for _ in range(50):
        x, y, label = correction_click(pred, truth, rng, prob_from_truth=0.0)
        missed, false = (
            truth[int(y), int(x)] and not pred[int(y), int(x)],
            pred[int(y), int(x)] and not truth[int(y), int(x)],
        )
        assert (label == POSITIVE and missed) or (label == NEGATIVE and false)


def _grey(frames: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalization of channel 0."""
    return frames[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]


def test_augmentation_is_the_same_on_every_frame():
    rng = np.random.default_rng(4)
    base = torch.from_numpy(np.random.default_rng(0).random((64, 80), dtype=np.float32))
    label = (base > 0.7).to(torch.uint8)
    t = draw_transform(rng, SETTINGS)
    assert t != Transform()
    frames, labels = apply_transform(base.expand(5, -1, -1), label.expand(5, -1, -1), t, 128)
    assert frames.shape == (5, 3, 128, 128) and labels.shape == (5, 128, 128)
    for i in range(1, 5):
        assert torch.equal(frames[i], frames[0]) and torch.equal(labels[i], labels[0])
    plain, _ = apply_transform(base[None], label[None], Transform(), 128)
    assert not torch.allclose(plain[0], frames[0], atol=1e-3)  # a transform was applied


def test_augmentation_moves_image_and_label_together():
    """A bright L-shape as image and label: after the transform the label still covers the bright pixels."""
    img = np.full((96, 96), 0.1, np.float32)
    img[20:70, 30:40] = 0.9
    img[60:70, 30:80] = 0.9
    lab = (img > 0.5).astype(np.uint8)
    t = Transform(flip=True, rotation_deg=20.0, shear_deg=-15.0)
    frames, labels = apply_transform(torch.from_numpy(img)[None], torch.from_numpy(lab)[None], t, 96)
    bright = _grey(frames)[0] > 0.5
    agree = float((bright == (labels[0] > 0.5)).float().mean())
    assert agree > 0.98
    other, _ = apply_transform(
        torch.from_numpy(img)[None], torch.from_numpy(lab)[None], Transform(rotation_deg=-20.0), 96
    )
    assert float(((_grey(other)[0] > 0.5) == (labels[0] > 0.5)).float().mean()) < agree - 0.03


def test_loss_terms_and_weights():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:8, 4:8] = 1
    good = (target * 20 - 10).expand(1, 3, -1, -1)
    bad = -good
    ious = torch.ones(1, 3)
    obj = torch.full((1, 1), 10.0)
    g, b = frame_loss(good, ious, obj, target, SETTINGS), frame_loss(bad, ious, obj, target, SETTINGS)
    assert float(g["total"]) < 0.05 < float(b["total"])
    weights = {k: getattr(SETTINGS, f"weight_{k}") for k in ("focal", "dice", "iou", "object")}
    assert float(b["total"]) == pytest.approx(sum(w * float(b[k]) for k, w in weights.items()), rel=1e-6)
    # no mask loss on a frame without membrane; the object score is what is learned there
    empty = frame_loss(bad, ious, obj, torch.zeros_like(target), SETTINGS)
    assert float(empty["focal"]) == float(empty["dice"]) == 0.0 and float(empty["object"]) > 5


def test_demo_supervises_every_candidate_mask_the_paper_only_the_best():
    target = torch.zeros(1, 1, 16, 16)
    target[..., 4:8, 4:8] = 1
    good = target * 20 - 10
    masks = torch.cat([good, -good, -good], 1).requires_grad_(True)  # one fitting candidate, two wrong
    ious, obj = torch.ones(1, 3), torch.full((1, 1), 10.0)
    paper = frame_loss(masks, ious, obj, target, preset("paper"))
    assert float(paper["focal"]) < 1e-3 and float(paper["dice"]) < 0.05
    (grad,) = torch.autograd.grad(paper["total"], masks)
    assert float(grad[0, 1:].abs().sum()) == 0.0  # the wrong candidates get no mask gradient
    demo = frame_loss(masks, ious, obj, target, SETTINGS)
    assert float(demo["dice"]) > 0.5  # two of three candidates are wrong
    (grad,) = torch.autograd.grad(demo["total"], masks)
    assert all(float(grad[0, m].abs().sum()) > 0 for m in range(3))


def test_layer_decay_and_no_decay_groups():
    net = model(0)
    settings = preset("paper")
    blocks = len(net.image_encoder.trunk.blocks)
    assert layer_scale("image_encoder.trunk.blocks.0.attn.qkv.weight", blocks, 0.9) == pytest.approx(
        0.9**blocks
    )
    assert layer_scale(f"image_encoder.trunk.blocks.{blocks - 1}.mlp.weight", blocks, 0.9) == pytest.approx(
        0.9
    )
    assert layer_scale("image_encoder.neck.convs.0.conv.weight", blocks, 0.9) == 1.0
    groups = param_groups(net, settings)
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(net.named_parameters())
    assert lr_of[id(named["sam_mask_decoder.iou_prediction_head.layers.0.weight"])] == (5e-6, 0.1)
    assert lr_of[id(named["sam_mask_decoder.iou_prediction_head.layers.0.bias"])] == (5e-6, 0.0)
    assert lr_of[id(named["image_encoder.trunk.blocks.0.attn.qkv.weight"])][0] == pytest.approx(
        3e-6 * 0.9**blocks
    )
    assert sum(len(g["params"]) for g in groups) == len([p for p in net.parameters() if p.requires_grad])


def test_cosine_schedule_decays_to_a_tenth():
    assert lr_factor(0, 100, 0, 0.1) == pytest.approx(1.0)
    assert lr_factor(50, 100, 0, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 100, 0, 0.1) == pytest.approx(0.1)
    assert lr_factor(0, 100, 10, 0.1) == pytest.approx(0.1)  # warm-up


def test_loss_decreases_when_overfitting_one_sample():
    """A few AdamW steps on one 3-frame sample (Hiera-tiny at 64 px) at least halve its loss."""
    net = random_model(tiny_spec(64), seed=0).train()
    settings = preset("demo", image_size=64, correction_clicks=0, lr=1e-3, lr_encoder=1e-3, warmup_steps=0)
    rng = np.random.default_rng(0)
    img = rng.random((3, 64, 64), dtype=np.float32) * 0.4 + 0.4
    lab = np.zeros((3, 64, 64), np.uint8)
    for z in range(3):
        img[z, 20 + 2 * z : 26 + 2 * z, 8:56] = 0.05
        lab[z, 20 + 2 * z : 26 + 2 * z, 8:56] = 1
    frames, truth = apply_transform(torch.from_numpy(img), torch.from_numpy(lab), Transform(), 64)
    prompts, corrected = plan_prompts(truth.numpy() > 0.5, np.random.default_rng(1), settings)
    optimizer, _ = build_optimizer(net, settings, 20)
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        terms = forward_sample(net, frames, truth, prompts, corrected, np.random.default_rng(2), settings)
        terms["total"].backward()
        optimizer.step()
        losses.append(float(terms["total"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses
