"""SAM2's training loss for one frame: focal and dice on the best of the multimask outputs (only where the
object is present; on every output with `supervise_all_masks`), L1 on every IoU prediction, and binary
cross-entropy on the object score."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_NAMES = ("focal", "dice", "iou", "object")
LOGIT_CLIP = 20.0


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Sigmoid focal loss per mask (B, M, H, W) -> (B, M), averaged over pixels."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft dice loss per mask (B, M, H, W) -> (B, M)."""
    prob = logits.sigmoid().flatten(2)
    tgt = target.flatten(2)
    return 1 - (2 * (prob * tgt).sum(-1) + eps) / (prob.sum(-1) + tgt.sum(-1) + eps)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the thresholded masks (logits > 0) with the target, per mask (B, M); 1 when both are empty."""
    pred = (logits > 0).flatten(2).float()
    tgt = target.flatten(2)
    inter = (pred * tgt).sum(-1)
    union = pred.sum(-1) + tgt.sum(-1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def frame_loss(
    multimasks: torch.Tensor,
    ious: torch.Tensor,
    object_logits: torch.Tensor,
    target: torch.Tensor,
    settings,
) -> dict[str, torch.Tensor]:
    """The loss terms of one frame: multimasks (B, M, S, S) logits, ious (B, M), object_logits (B, 1),
    target (B, 1, S, S) 0/1. Returns {"focal", "dice", "iou", "object", "total"} (weighted total)."""
    target = target.to(multimasks.dtype)
    # SAM2 writes -1024 into the masks of frames it predicts empty (no gradient flows there); clipped so
    # that constant does not swamp the loss curve. Saturated logits have no focal/dice gradient anyway.
    multimasks = multimasks.float().clamp(-LOGIT_CLIP, LOGIT_CLIP)
    focal = focal_loss(multimasks, target.expand_as(multimasks), settings.focal_alpha, settings.focal_gamma)
    dice = dice_loss(multimasks, target.expand_as(multimasks))
    actual = mask_iou(multimasks, target.expand_as(multimasks))
    iou = (ious.float() - actual).abs()
    present = (target.flatten(1).amax(-1) > 0).float()  # (B,)
    combined = settings.weight_focal * focal + settings.weight_dice * dice
    best = combined.argmin(dim=-1)  # the multimask output that fits best is the one supervised
    rows = torch.arange(len(best), device=best.device)
    if settings.supervise_all_masks:  # a demo deviation: every candidate mask trained, not just the best
        focal_m, dice_m = focal.mean(-1), dice.mean(-1)
    else:
        focal_m, dice_m = focal[rows, best], dice[rows, best]
    terms = {
        "focal": (focal_m * present).mean(),
        "dice": (dice_m * present).mean(),
        "iou": (iou.mean(-1) * present).mean(),  # every IoU head supervised
        "object": F.binary_cross_entropy_with_logits(object_logits.float()[:, 0], present),
    }
    terms["total"] = (
        settings.weight_focal * terms["focal"]
        + settings.weight_dice * terms["dice"]
        + settings.weight_iou * terms["iou"]
        + settings.weight_object * terms["object"]
    )
    return terms
