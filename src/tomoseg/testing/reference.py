"""Reference implementations for tests: the unmodified upstream SAM2VideoPredictor, driven like the published
ETSAM code, and brute-force plane-wise and theta-wise metrics.

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


# ---------------------------------------------------------------- plane-wise and theta-wise metrics, brute force


def plane_wise_reference(
    pred: np.ndarray, truth: np.ndarray, empty: str = "zero"
) -> dict[str, dict[str, float]]:
    """Plane-wise metrics slice by slice in plain Python (the oracle of tomoseg.evaluation.planewise)."""
    out = {}
    for name, axis in (("xy", 0), ("xz", 1), ("yz", 2)):
        per_slice: dict[str, list[float]] = {m: [] for m in ("dice", "iou", "precision", "recall")}
        for i in range(pred.shape[axis]):
            p = np.take(pred, i, axis=axis).astype(bool)
            t = np.take(truth, i, axis=axis).astype(bool)
            tp = int((p & t).sum())
            fp = int((p & ~t).sum())
            fn = int((~p & t).sum())
            if not p.any() and not t.any():
                if empty == "skip":
                    continue
                if empty == "one":
                    for m in per_slice:
                        per_slice[m].append(1.0)
                    continue
            per_slice["dice"].append(2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0)
            per_slice["iou"].append(tp / (tp + fp + fn) if tp + fp + fn else 0.0)
            per_slice["precision"].append(tp / (tp + fp) if tp + fp else 0.0)
            per_slice["recall"].append(tp / (tp + fn) if tp + fn else 0.0)
        out[name] = {m: float(np.mean(v)) if v else float("nan") for m, v in per_slice.items()}
    return out


def theta_reference(mask: np.ndarray, k: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Membrane voxels (Z, Y, X, C order) and θ of each by brute force: all distances, k nearest plus ties, PCA."""
    points = np.argwhere(mask).astype(np.float64)
    theta = np.empty(len(points))
    kk = min(k, len(points))
    for i, p in enumerate(points):
        d = np.sqrt(((points - p) ** 2).sum(axis=1))
        radius = np.sort(d)[kk - 1]
        nb = points[d <= radius + 1e-9]
        if len(nb) < 3:
            theta[i] = np.nan
            continue
        cov = (nb - nb.mean(axis=0)).T @ (nb - nb.mean(axis=0))
        _, vectors = np.linalg.eigh(cov)
        theta[i] = np.degrees(np.arccos(min(1.0, abs(vectors[0, 0]))))
    return points.astype(np.int64), theta


def theta_wise_reference(
    pred: np.ndarray, truth: np.ndarray, bins: tuple[float, ...] = (0.0, 30.0, 60.0, 90.0), k: int = 30
) -> list[dict[str, float]]:
    """Recall (truth normals) and precision (prediction normals) per θ bin by brute force (θ binned as rounded
    to 1e-6 degrees and stored as float32, the θ maps' precision)."""
    rows = []
    t_pts, t_theta = theta_reference(truth.astype(bool), k)
    p_pts, p_theta = theta_reference(pred.astype(bool), k)
    for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:], strict=True)):
        last = i == len(bins) - 2

        def inside(theta: float, lo: float = lo, hi: float = hi, last: bool = last) -> bool:
            return lo <= theta < hi or (last and theta == hi)

        t_in = [tuple(p) for p, th in zip(t_pts, t_theta, strict=True) if inside(_binned(th))]
        p_in = [tuple(p) for p, th in zip(p_pts, p_theta, strict=True) if inside(_binned(th))]
        t_hit = sum(bool(pred[p]) for p in t_in)
        p_hit = sum(bool(truth[p]) for p in p_in)
        rows.append(
            {
                "bin": [lo, hi],
                "recall": t_hit / len(t_in) if t_in else float("nan"),
                "precision": p_hit / len(p_in) if p_in else float("nan"),
                "truth_voxels": len(t_in),
                "pred_voxels": len(p_in),
            }
        )
    return rows


def _binned(theta: float) -> float:
    """θ as binned: rounded to 1e-6 degrees, then float32 (NaN stays NaN)."""
    return float(np.float32(np.round(theta, 6)))
