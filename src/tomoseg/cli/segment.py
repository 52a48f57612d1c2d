"""`tomoseg segment`: both ETSAM stages on one tomogram -> mask.mrc (+ logits, provenance.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.etsam.fusion import STAGE1_THRESHOLD, STAGE2_THRESHOLD
from tomoseg.etsam.options import DTYPE_NAMES, STAGE1_MODES, STAGE2_MODES, EtsamOptions
from tomoseg.preprocess import NORMALIZATION_MODES


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the ETSAM engine (defaults = the paper)."""
    d = EtsamOptions()
    p.add_argument(
        "--stage1-checkpoint", default=d.stage1_checkpoint, help="Stage 1 checkpoint (default %(default)s)"
    )
    p.add_argument(
        "--stage2-checkpoint", default=d.stage2_checkpoint, help="Stage 2 checkpoint (default %(default)s)"
    )
    p.add_argument(
        "--model-config",
        default=None,
        help="sam2 config name, e.g. sam2.1_hiera_b+ (default: the checkpoint's sidecar JSON, else B+)",
    )
    p.add_argument(
        "--model-override",
        action="append",
        default=[],
        metavar="HYDRA_OVERRIDE",
        help="extra Hydra override for --model-config (repeatable)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda when available, else cpu), cpu, cuda or cuda:N (default auto)",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default="float32",
        help="float32, or bfloat16 autocast (the published code uses bf16 on GPU)",
    )
    p.add_argument("--prompt-stage1", choices=STAGE1_MODES, default=d.prompt_stage1)
    p.add_argument("--prompt-stage2", choices=STAGE2_MODES, default=d.prompt_stage2)
    p.add_argument("--every-n", type=int, default=d.every_n, help="slice interval of the *_every_n modes")
    p.add_argument("--grid-spacing", type=int, default=d.grid_spacing, help="px between grid dots")
    p.add_argument("--stage1-threshold", type=float, default=STAGE1_THRESHOLD)
    p.add_argument(
        "--threshold", type=float, default=STAGE2_THRESHOLD, help="Stage 2 logit threshold of mask.mrc"
    )
    p.add_argument(
        "--encoder-batch", type=int, default=d.encoder_batch, help="frames per image-encoder batch"
    )
    p.add_argument(
        "--keep-aspect",
        action="store_true",
        help="pad slices to a square instead of stretching them (off = the paper)",
    )
    p.add_argument(
        "--bin",
        type=int,
        default=1,
        help="block-average slices N x N before SAM2 and upsample the logits back (default 1 = the paper); "
        "helps when grid dots vanish in SAM2's mask resize of large slices",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="also propagate backward from the last slice (prompted like slice 0 is, counted from the end) "
        "and average the two passes' logits per slice (off = the paper: forward from slice 0 only)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _resolve_device(device: str) -> str:
    """'auto' means the GPU when torch sees one, else the CPU; anything else is taken as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def options_from(a: argparse.Namespace) -> EtsamOptions:
    """EtsamOptions from parsed arguments."""
    return EtsamOptions(
        stage1_checkpoint=a.stage1_checkpoint,
        stage2_checkpoint=a.stage2_checkpoint,
        model_config=a.model_config,
        model_overrides=a.model_override,
        device=_resolve_device(a.device),
        dtype=a.dtype,
        prompt_stage1=a.prompt_stage1,
        prompt_stage2=a.prompt_stage2,
        every_n=a.every_n,
        grid_spacing=a.grid_spacing,
        stage1_threshold=a.stage1_threshold,
        threshold=a.threshold,
        encoder_batch=a.encoder_batch,
        keep_aspect=a.keep_aspect,
        bin=a.bin,
        bidirectional=a.bidirectional,
        progress=not a.no_progress,
    )


def _run(a: argparse.Namespace) -> int:
    from tomoseg.etsam.pipeline import run_segment  # torch and sam2: loaded only when segmenting

    run_segment(
        a.tomogram,
        a.out,
        options_from(a),
        normalized=a.normalized,
        normalization=a.normalization,
        store_logits=a.store_logits,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `segment` sub-command."""
    p = sub.add_parser("segment", help="segment membranes in one tomogram with two-stage ETSAM")
    p.add_argument("tomogram", type=Path)
    p.add_argument(
        "--out", type=Path, required=True, help="output folder (mask.mrc, provenance.json, logits)"
    )
    p.add_argument(
        "--store-logits", action="store_true", help="also write stage1_logits.mrc and stage2_logits.mrc"
    )
    p.add_argument("--normalized", action="store_true", help="the input is already normalized to [0, 1]")
    p.add_argument("--normalization", choices=NORMALIZATION_MODES, default="max_positive")
    add_engine_options(p)
    p.set_defaults(func=_run)
