"""The two-stage ETSAM engine on SAM2: frames, prompts, propagation, fusion, and the whole pipeline."""

from tomoseg.etsam.fusion import NO_OBJECT_SCORE, STAGE1_THRESHOLD, STAGE2_THRESHOLD, fuse, threshold
from tomoseg.etsam.model import ModelSpec, build_model, load_checkpoint, load_model, tiny_spec
from tomoseg.etsam.prompts import PROMPT_MODES, build_prompts, grid_mask, resize_mask_prompt

__all__ = [
    "NO_OBJECT_SCORE",
    "STAGE1_THRESHOLD",
    "STAGE2_THRESHOLD",
    "fuse",
    "threshold",
    "ModelSpec",
    "build_model",
    "load_checkpoint",
    "load_model",
    "tiny_spec",
    "PROMPT_MODES",
    "build_prompts",
    "grid_mask",
    "resize_mask_prompt",
]
