"""The two-stage ETSAM engine on SAM2: frames, prompts, propagation, fusion, and the whole pipeline.

The submodules that run models import torch and sam2 (the `etsam` extra); `tomoseg.etsam.options` and
`tomoseg.etsam.fusion` do not. The names below are loaded from their submodule on first use, so that
importing `tomoseg.etsam.options` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "NO_OBJECT_SCORE": "fusion",
    "STAGE1_THRESHOLD": "fusion",
    "STAGE2_THRESHOLD": "fusion",
    "fuse": "fusion",
    "threshold": "fusion",
    "ModelSpec": "model",
    "build_model": "model",
    "load_checkpoint": "model",
    "load_model": "model",
    "tiny_spec": "model",
    "PROMPT_MODES": "options",
    "EtsamOptions": "options",
    "build_prompts": "prompts",
    "grid_mask": "prompts",
    "resize_mask_prompt": "prompts",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Load a public name from its submodule on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
