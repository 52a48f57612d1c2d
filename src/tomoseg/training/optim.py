"""AdamW with the paper's parameter groups: two learning rates (image encoder, the rest), layer-wise decay
over the encoder trunk, no weight decay on biases and norms; cosine decay to a fraction of each lr."""

from __future__ import annotations

import math
import re

import torch

_BLOCK = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")


def layer_scale(name: str, num_blocks: int, decay: float) -> float:
    """The lr factor of an image-encoder parameter: decay^(depth below the top); the neck gets 1."""
    if name.startswith("image_encoder.trunk."):
        match = _BLOCK.match(name)
        layer = int(match.group(1)) + 1 if match else 0  # patch and position embeddings: layer 0
        return decay ** (num_blocks + 1 - layer)
    return 1.0


def param_groups(model: torch.nn.Module, settings) -> list[dict]:
    """Parameter groups of AdamW: per (lr, weight decay) pair, with `base_lr` kept for the schedule."""
    blocks = len(getattr(model.image_encoder.trunk, "blocks", []))
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("image_encoder."):
            lr = settings.lr_encoder * layer_scale(name, blocks, settings.layer_decay)
        else:
            lr = settings.lr
        no_decay = param.ndim <= 1 or name.endswith(".bias") or "norm" in name.lower()
        wd = 0.0 if no_decay else settings.weight_decay
        groups.setdefault((lr, wd), []).append(param)
    return [
        {"params": p, "lr": lr, "base_lr": lr, "weight_decay": wd}
        for (lr, wd), p in sorted(groups.items(), key=lambda kv: kv[0])
    ]


def lr_factor(step: int, total: int, warmup: int, final_ratio: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine from 1 to `final_ratio` at step `total`."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(
    model: torch.nn.Module, settings, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over `param_groups` and its cosine schedule over `total_steps` optimizer steps."""
    optimizer = torch.optim.AdamW(param_groups(model, settings), betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, settings.warmup_steps, settings.lr_final_ratio)
    )
    return optimizer, scheduler
