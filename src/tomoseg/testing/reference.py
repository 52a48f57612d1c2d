"""The reference path: the unmodified upstream SAM2VideoPredictor, driven like the published ETSAM code.

Only frame loading is replaced (upstream init_state reads JPEG folders): it receives ready frames.
Used by the parity tests and the benchmark; not by the pipeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import sam2.sam2_video_predictor as svp
import torch


@contextlib.contextmanager
def frames_as_video(frames: Sequence[torch.Tensor] | torch.Tensor, height: int, width: int) -> Iterator[None]:
    """Make upstream init_state take `frames` (N, 3, S, S) as the loaded video of size height x width."""
    original = svp.load_video_frames
    svp.load_video_frames = lambda **kwargs: (frames, height, width)
    try:
        yield
    finally:
        svp.load_video_frames = original


def upstream_logits(
    predictor: svp.SAM2VideoPredictor,
    frames: Sequence[torch.Tensor] | torch.Tensor,
    shape: tuple[int, int, int],
    prompts: dict[int, np.ndarray],
    autocast_dtype: torch.dtype | None = None,
    offload: bool = True,
    reverse: bool = False,
) -> np.ndarray:
    """Per-slice logits from upstream init_state / add_new_mask / propagate_in_video, copied per frame.

    reverse: `propagate_in_video(state, start_frame_idx=N - 1, reverse=True)` on the fresh state instead
    of the forward pass (what tomoseg's backward pass of bidirectional propagation mirrors).
    """
    n, h, w = shape
    out = np.empty(shape, dtype=np.float32)
    device = predictor.device
    ctx = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    with torch.inference_mode(), ctx, frames_as_video(frames, h, w):
        state = predictor.init_state("frames", offload_video_to_cpu=offload, offload_state_to_cpu=offload)
        for f in sorted(prompts):
            predictor.add_new_mask(state, frame_idx=f, obj_id=1, mask=prompts[f])
        start = {"start_frame_idx": n - 1, "reverse": True} if reverse else {}
        for idx, _, masks in predictor.propagate_in_video(state, **start):
            out[idx] = masks[0, 0].float().cpu().numpy()
    return out
