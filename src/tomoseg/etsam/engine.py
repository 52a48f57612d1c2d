"""The propagation engine: batched image encoding ahead of SAM2's sequential memory loop, bounded state.

It calls the `sam2` model's own modules (forward_image, _prepare_backbone_features, track_step,
_encode_new_memory) in the order the upstream SAM2VideoPredictor does for one object propagated forward,
but keeps only what memory attention reads and streams logits into a preallocated array.

Several volumes with the same number of slices (the XY tiles of split processing) can run as one batch:
SAM2 batches objects along the batch dimension of every module (image features, memories, object
pointers, decoder), so each tile is one batch entry with its own image features; nothing couples the
entries (`non_overlap_masks_for_mem_enc` is off in the SAM2.1 configs).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tomoseg.etsam.frames import make_frames
from tomoseg.etsam.fusion import NO_OBJECT_SCORE
from tomoseg.etsam.prompts import resize_mask_prompt

log = logging.getLogger(__name__)

DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def has_object(slice_logits: np.ndarray) -> bool:
    """False for SAM2's no-object frames (-1024 everywhere, up to the upsampling's float rounding)."""
    return bool(float(slice_logits.max()) > NO_OBJECT_SCORE / 2)


@dataclass
class PropagationStats:
    """What one propagation did: frames, wall time, encoder batch used, frames with an object."""

    frames: int = 0
    seconds: float = 0.0
    encoder_batch: int = 0
    frames_with_object: int = 0
    conditioning_frames: list[int] = field(default_factory=list)
    max_stored_frames: int = 0  # non-conditioning frames held at once (object pointers)
    max_stored_memories: int = 0  # non-conditioning frames whose memory features were held at once
    tiles: int = 1  # volumes propagated together as one batch (split processing)

    @property
    def frames_per_second(self) -> float:
        """Propagation throughput for the runtime tables; NaN when no time was measured."""
        return self.frames / self.seconds if self.seconds > 0 else float("nan")


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {tuple(DTYPES)}")
    if DTYPES[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


class _Sink:
    """Copies per-chunk logits (B, H, W) from the device into `out`; on CUDA through pinned memory, async."""

    def __init__(self, out: np.ndarray, device: torch.device):
        self.out, self.device, self.pending = out, device, None

    def put(self, start: int, logits: torch.Tensor) -> None:
        if self.device.type != "cuda":
            self.out[start : start + len(logits)] = logits.float().numpy()
            return
        host = torch.empty(logits.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(logits.float(), non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.flush()
        self.pending = (start, host, event)

    def flush(self) -> None:
        if self.pending is not None:
            start, host, event = self.pending
            event.synchronize()
            self.out[start : start + len(host)] = host.numpy()
            self.pending = None


class Propagator:
    """One forward propagation of one object through a volume with the given mask prompts."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
        encoder_batch: int = 8,
        progress: bool = True,
        desc: str = "propagate",
        keep_aspect: bool = False,
    ):
        self.model, self.device = model, torch.device(device)
        self.keep_aspect = keep_aspect
        self.dtype, self.encoder_batch, self.progress, self.desc = (
            dtype,
            max(1, encoder_batch),
            progress,
            desc,
        )
        self.maskmem_pos_enc = None

    def _pad(self, slices: np.ndarray, fill: float | bool | None = None) -> np.ndarray:
        """keep_aspect: pad (B, H, W) at the bottom/right to a square (slice mean, or `fill`), else unchanged."""
        if not self.keep_aspect:
            return slices
        b, h, w = slices.shape
        side = max(h, w)
        if h == w:
            return slices
        out = np.empty((b, side, side), dtype=slices.dtype)
        for i in range(b):
            out[i] = slices[i].mean() if fill is None else fill
        out[:, :h, :w] = slices
        return out

    # -- image encoder -------------------------------------------------------------------------------
    def _backbone(self, tiles: Sequence[np.ndarray]) -> list[list[dict]]:
        """Encode the slices of every tile (same count each) in batches of at most `encoder_batch` frames.

        Returns per tile, per slice, the backbone outputs with batch 1. The batch shrinks on CUDA
        out-of-memory. Tiles of different sizes are resized separately and encoded together.
        """
        items = [(k, j) for k in range(len(tiles)) for j in range(len(tiles[0]))]
        out: list[list[dict]] = [[] for _ in tiles]
        i = 0
        while i < len(items):
            batch = items[i : i + self.encoder_batch]
            try:
                groups = []
                for k in dict.fromkeys(k for k, _ in batch):
                    js = [j for kk, j in batch if kk == k]
                    groups.append(self._pad(tiles[k][js[0] : js[-1] + 1]))
                frames = [make_frames(g, self.model.image_size, self.device) for g in groups]
                backbone = self.model.forward_image(frames[0] if len(frames) == 1 else torch.cat(frames))
            except OUT_OF_MEMORY:
                if self.encoder_batch == 1:
                    raise
                self.encoder_batch = max(1, self.encoder_batch // 2)
                torch.cuda.empty_cache()
                log.warning(
                    "CUDA out of memory in the image encoder: encoder batch size now %d", self.encoder_batch
                )
                continue
            for b, (k, _) in enumerate(batch):
                out[k].append(
                    {
                        "backbone_fpn": [x[b : b + 1] for x in backbone["backbone_fpn"]],
                        "vision_pos_enc": [x[b : b + 1] for x in backbone["vision_pos_enc"]],
                    }
                )
            i += len(batch)
        return out

    def _encode(self, tiles: Sequence[np.ndarray]) -> list[tuple]:
        """Per slice, SAM2's prepared features of all tiles as one batch (batch entry k = tile k)."""
        per_tile = self._backbone(tiles)
        feats = []
        for j in range(len(per_tile[0])):
            if len(per_tile) == 1:
                one = per_tile[0][j]
            else:
                one = {
                    key: [torch.cat(level) for level in zip(*(t[j][key] for t in per_tile), strict=True)]
                    for key in ("backbone_fpn", "vision_pos_enc")
                }
            _, vision_feats, vision_pos, feat_sizes = self.model._prepare_backbone_features(one)
            feats.append((vision_feats, vision_pos, feat_sizes))
        return feats

    def _compact(self, out: dict, maskmem_features: torch.Tensor | None, maskmem_pos_enc) -> dict:
        """The part of a frame's output later frames read (memory stored in bf16, as upstream stores it)."""
        if maskmem_pos_enc is not None and self.maskmem_pos_enc is None:
            # the same for every batch entry (it depends on the feature size only), as upstream caches it
            self.maskmem_pos_enc = [x[0:1].clone().expand(len(x), -1, -1, -1) for x in maskmem_pos_enc]
        return {
            "maskmem_features": None if maskmem_features is None else maskmem_features.to(torch.bfloat16),
            "maskmem_pos_enc": self.maskmem_pos_enc,
            "pred_masks": out["pred_masks"],
            "obj_ptr": out["obj_ptr"],
            "object_score_logits": out["object_score_logits"],
        }

    # -- conditioning frames ---------------------------------------------------------------------------
    def _condition(
        self, volumes: Sequence[np.ndarray], prompts: Sequence[dict[int, np.ndarray]], state: dict
    ) -> None:
        """Run every prompted frame as an initial conditioning frame (mask as output) and encode its memory."""
        m, s = self.model, self.model.image_size
        idx = sorted(prompts[0])
        feats = self._encode([v[idx] for v in volumes])
        for f, (vf, vp, fs) in zip(idx, feats, strict=True):
            masks = [resize_mask_prompt(self._pad(p[f][None], fill=False)[0], s) for p in prompts]
            mask = (masks[0] if len(masks) == 1 else torch.cat(masks)).to(self.device)
            out = m.track_step(
                frame_idx=f,
                is_init_cond_frame=True,
                current_vision_feats=vf,
                current_vision_pos_embeds=vp,
                feat_sizes=fs,
                point_inputs=None,
                mask_inputs=mask,
                output_dict=state,
                num_frames=len(volumes[0]),
                track_in_reverse=False,
                run_mem_encoder=False,
            )
            high = F.interpolate(out["pred_masks"], size=(s, s), mode="bilinear", align_corners=False)
            mem, pos = m._encode_new_memory(
                current_vision_feats=vf,
                feat_sizes=fs,
                pred_masks_high_res=high,
                object_score_logits=out["object_score_logits"],
                is_mask_from_pts=True,
            )
            state["cond_frame_outputs"][f] = self._compact(out, mem, pos)

    # -- the sequential loop -----------------------------------------------------------------------------
    # no_grad, not inference_mode: inside inference_mode autocast keeps no weight-cast cache (torch >= 2.10),
    # so every Linear/Conv re-casts its fp32 weight and bias on every slice; logits are bit-identical.
    @torch.no_grad()
    def run_tiles(
        self,
        volumes: Sequence[np.ndarray],
        prompts: Sequence[dict[int, np.ndarray]],
        outs: Sequence[np.ndarray],
        reverse: bool = False,
    ) -> PropagationStats:
        """Fill each of `outs` (N, H, W) with its volume's per-slice logits at slice resolution, propagating
        from frame 0 forward; several volumes of N slices each (sizes may differ) run as one SAM2 batch.

        Every volume needs prompts on the same frames. Each chunk of slices encodes at most
        `encoder_batch` frames at once over all volumes. reverse: propagate from the last frame (N - 1)
        backward, as upstream `propagate_in_video(state, start_frame_idx=N - 1, reverse=True)` does on a
        fresh state holding the same prompts: SAM2's `track_in_reverse`, memories and object pointers of
        the frames after the current one.
        """
        m = self.model
        tiles = len(volumes)
        if not (tiles == len(prompts) == len(outs)) or tiles == 0:
            raise ValueError("one prompt dict and one output array per volume")
        n = len(volumes[0])
        for volume, out in zip(volumes, outs, strict=True):
            if out.shape != volume.shape:
                raise ValueError(f"output shape {out.shape} differs from the volume's {volume.shape}")
            if len(volume) != n:
                raise ValueError(
                    f"volumes propagated together need the same slice count ({len(volume)} != {n})"
                )
        if any(set(p) != set(prompts[0]) for p in prompts):
            raise ValueError("volumes propagated together need prompts on the same frames")
        first = n - 1 if reverse else 0
        if not prompts[0] or first not in prompts[0] or not all(0 <= f < n for f in prompts[0]):
            raise ValueError(
                f"the engine propagates {'backward' if reverse else 'forward'} from frame {first}: "
                f"frame {first} needs a prompt (and every prompt frame must lie in 0..{n - 1})"
            )
        step = -1 if reverse else 1
        order = range(n - 1, -1, -1) if reverse else range(n)
        per_chunk = self.encoder_batch if tiles == 1 else max(1, self.encoder_batch // tiles)
        t0 = time.perf_counter()
        stats = PropagationStats(conditioning_frames=sorted(prompts[0]), tiles=tiles)
        state: dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        non_cond = state["non_cond_frame_outputs"]
        # what memory attention reads: the last (num_maskmem - 1) frames' memories (with the eval stride) and
        # the object pointers of the last (max_obj_ptrs_in_encoder - 1) frames
        keep_mem = (m.num_maskmem - 1) * max(1, m.memory_temporal_stride_for_eval) + 1
        keep_ptr = max(m.max_obj_ptrs_in_encoder, keep_mem)
        sinks = [_Sink(out, self.device) for out in outs]
        bar = tqdm(total=n, desc=self.desc, unit="slice", disable=not self.progress)
        with _autocast(self.device, self.dtype):
            self._condition(volumes, prompts, state)
            for c in range(0, n, per_chunk):
                chunk = order[c : c + per_chunk]
                todo = [t for t in chunk if t not in state["cond_frame_outputs"]]
                feats = dict(zip(todo, self._encode([v[todo] for v in volumes]), strict=True)) if todo else {}
                low = []
                for t in chunk:
                    if t in state["cond_frame_outputs"]:
                        low.append(state["cond_frame_outputs"][t]["pred_masks"])
                    else:
                        vf, vp, fs = feats.pop(t)
                        o = m.track_step(
                            frame_idx=t,
                            is_init_cond_frame=False,
                            current_vision_feats=vf,
                            current_vision_pos_embeds=vp,
                            feat_sizes=fs,
                            point_inputs=None,
                            mask_inputs=None,
                            output_dict=state,
                            num_frames=n,
                            track_in_reverse=reverse,
                            run_mem_encoder=True,
                        )
                        non_cond[t] = self._compact(o, o["maskmem_features"], o["maskmem_pos_enc"])
                        low.append(o["pred_masks"])
                        old = non_cond.get(t - step * (keep_mem - 1))
                        if old is not None:
                            old["maskmem_features"] = None
                            old["pred_masks"] = None
                        non_cond.pop(t - step * (keep_ptr - 1), None)
                        stats.max_stored_frames = max(stats.max_stored_frames, len(non_cond))
                        stats.max_stored_memories = max(
                            stats.max_stored_memories,
                            sum(v["maskmem_features"] is not None for v in non_cond.values()),
                        )
                    bar.update(1)
                for k, (volume, sink) in enumerate(zip(volumes, sinks, strict=True)):
                    _, h, w = volume.shape
                    side = max(h, w) if self.keep_aspect else None
                    low_k = torch.cat(low) if tiles == 1 else torch.cat([x[k : k + 1] for x in low])
                    logits = F.interpolate(
                        low_k.float(), size=(side or h, side or w), mode="bilinear", align_corners=False
                    )
                    if reverse:  # chunk runs N-1 -> 0: store it in slice order
                        sink.put(chunk[-1], logits[:, 0, :h, :w].flip(0))
                    else:
                        sink.put(chunk[0], logits[:, 0, :h, :w])
        for sink in sinks:
            sink.flush()
        bar.close()
        stats.frames = n
        stats.seconds = time.perf_counter() - t0
        stats.encoder_batch = self.encoder_batch
        stats.frames_with_object = int(sum(any(has_object(out[i]) for out in outs) for i in range(n)))
        log.info(
            "%s: %d slices%s in %.1f s (%.2f slices/s), encoder batch %d, %d slices with an object",
            self.desc,
            n,
            f" x {tiles} tiles" if tiles > 1 else "",
            stats.seconds,
            stats.frames_per_second,
            stats.encoder_batch,
            stats.frames_with_object,
        )
        return stats


def propagate(
    model: torch.nn.Module,
    volume: np.ndarray,
    prompts: dict[int, np.ndarray],
    out: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    encoder_batch: int = 8,
    progress: bool = True,
    desc: str = "propagate",
    keep_aspect: bool = False,
    reverse: bool = False,
) -> tuple[np.ndarray, PropagationStats]:
    """Per-slice logits (N, H, W float32) of `volume` propagated forward from the mask prompts.

    keep_aspect (off by default; the published code stretches): pad slices to a square before resizing.
    reverse (off by default): propagate backward from the last frame, which then needs a prompt.
    """
    outs, stats = propagate_tiles(
        model, [volume], [prompts], None if out is None else [out],
        device, dtype, encoder_batch, progress, desc, keep_aspect, reverse,
    )  # fmt: skip
    return outs[0], stats


def propagate_tiles(
    model: torch.nn.Module,
    volumes: Sequence[np.ndarray],
    prompts: Sequence[dict[int, np.ndarray]],
    outs: Sequence[np.ndarray] | None = None,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    encoder_batch: int = 8,
    progress: bool = True,
    desc: str = "propagate",
    keep_aspect: bool = False,
    reverse: bool = False,
) -> tuple[list[np.ndarray], PropagationStats]:
    """`propagate` for several volumes with the same slice count as one SAM2 batch (split processing).

    Each volume gets its own logits (written into `outs` when given, e.g. views of one merged array); the
    result equals propagating each volume alone up to float rounding of the batched kernels.
    """
    if outs is None:
        outs = [np.empty(v.shape, dtype=np.float32) for v in volumes]
    stats = Propagator(model, device, dtype, encoder_batch, progress, desc, keep_aspect).run_tiles(
        volumes, prompts, outs, reverse=reverse
    )
    return list(outs), stats


def fuse_passes(
    forward: np.ndarray,
    backward: np.ndarray,
    forward_prompted: Iterable[int] = (),
    backward_prompted: Iterable[int] = (),
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Bidirectional fusion per slice: the mean of the passes' predictions that see the object, else -1024.

    A pass's output on its own prompted slice is the prompt echoed back (for grid and empty prompts ~-10
    everywhere), not a prediction: it is used only where both passes have that slice prompted. SAM2's
    -1024 marks "no object on this slice" (a sentinel, not a logit) and is never averaged. `out` may be
    `forward` (fused in place).
    """
    if forward.shape != backward.shape:
        raise ValueError(f"pass shapes differ: {forward.shape} vs {backward.shape}")
    if out is None:
        out = np.empty(forward.shape, dtype=np.float32)
    fp, bp = set(forward_prompted), set(backward_prompted)
    for z in range(len(forward)):
        passes = [forward[z], backward[z]]
        if (z in fp) != (z in bp):
            passes = [backward[z]] if z in fp else [forward[z]]
        seen = [p for p in passes if has_object(p)]
        if not seen:
            out[z] = NO_OBJECT_SCORE
        elif len(seen) == 1:
            out[z] = seen[0]
        else:
            out[z] = (seen[0].astype(np.float32) + seen[1].astype(np.float32)) * np.float32(0.5)
    return out
