"""Argument groups of the commands that run the ETSAM engine (`segment`, `copick segment`) and their
translation into EtsamOptions: one definition for both."""

from __future__ import annotations

import argparse

from tomoseg.core.presets import ETSAM_PRESET_KEYS, NORMALIZATION_ALIASES, PRESET_NAMES, resolve
from tomoseg.etsam.options import (
    DTYPE_CHOICES,
    STAGE1_MODES,
    STAGE2_MODES,
    UPSTREAM_STAGE1_NAMES,
    UPSTREAM_STAGE2_NAMES,
    EtsamOptions,
    resolve_device,
)
from tomoseg.preprocess import NORMALIZATION_MODES


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the ETSAM engine (defaults = the paper)."""
    d = EtsamOptions()
    _add_model_options(p, d)
    _add_preset_options(p)
    _add_run_options(p, d)


def _add_model_options(p: argparse.ArgumentParser, d: EtsamOptions) -> None:
    """Checkpoints, the sam2 model, device, dtype and the preset."""
    p.add_argument("--stage1-checkpoint", default=d.stage1_checkpoint, help="Stage 1 checkpoint")
    p.add_argument("--stage2-checkpoint", default=d.stage2_checkpoint, help="Stage 2 checkpoint")
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
        help="auto (cuda when available, else cpu), cpu, cuda or cuda:N",
    )
    p.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        default="auto",
        help="auto (default: bfloat16 autocast on a GPU, as the paper runs; float32 on the CPU), float32, "
        "or bfloat16",
    )
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="paper",
        help="paper: the paper's published code; upstream: current upstream ETSAM's defaults "
        "(docs/etsam.md). Options given explicitly win over the preset",
    )


def _add_preset_options(p: argparse.ArgumentParser) -> None:
    """The options a preset decides (tomoseg.core.presets.ETSAM_PRESET_KEYS; None = the preset's value)."""
    p.add_argument(
        "--prompt-stage1",
        choices=STAGE1_MODES + UPSTREAM_STAGE1_NAMES,
        default=None,
        help="Stage 1 prompt; upstream's names grid_zero, grid, zero accepted (default: the preset's, paper grid_first)",
    )
    p.add_argument(
        "--prompt-stage2",
        choices=STAGE2_MODES + UPSTREAM_STAGE2_NAMES,
        default=None,
        help="Stage 2 prompt; upstream's etsam_stage1_partial = stage1_mask_every_n (default: the preset's, "
        "paper empty)",
    )
    p.add_argument(
        "--every-n",
        type=int,
        default=None,
        help="slice interval of the *_every_n modes (default: the preset's, paper 50)",
    )
    p.add_argument(
        "--grid-spacing",
        type=int,
        default=None,
        help="px between grid dots (default: the preset's, paper 50)",
    )
    p.add_argument(
        "--stage1-threshold",
        type=float,
        default=None,
        help="Stage 1 logit threshold (default: the preset's, paper 0.0, upstream -0.25)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="Stage 2 logit threshold of mask.mrc (default: the preset's, paper -0.25)",
    )
    p.add_argument(
        "--split",
        type=int,
        default=None,
        metavar="N",
        help="split processing: N XY tiles (4 = upstream's quadrants), each through both stages, "
        "merged back (default: the preset's, paper 1 = no split)",
    )
    p.add_argument(
        "--split-processing",
        dest="split",
        action="store_const",
        const=4,
        help="upstream's name for --split 4",
    )
    p.add_argument(
        "--split-grid-spacing",
        type=int,
        default=None,
        help="px between grid dots in split tiles (default: the preset's, 10 as upstream's)",
    )
    p.add_argument(
        "--split-every-n",
        type=int,
        default=None,
        help="slice interval of the *_every_n modes in split tiles (default: the preset's, 10 as upstream's)",
    )


def _add_run_options(p: argparse.ArgumentParser, d: EtsamOptions) -> None:
    """How the engine runs: encoder batch, aspect, binning, both directions, progress bar."""
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
        help="block-average slices N x N before SAM2 and upsample the logits back (1 = the paper); helps "
        "when grid dots vanish in SAM2's mask resize of large slices",
    )
    p.add_argument(
        "--bidirectional",
        action="store_true",
        help="also propagate backward from the last slice (prompted like slice 0 is, counted from the end) "
        "and average the two passes' logits per slice (off = the paper: forward from slice 0 only)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's choice, every core); set it when jobs share a machine",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from(a: argparse.Namespace) -> dict:
    """The preset's settings with the options given on the command line over them (tomoseg.core.presets)."""
    given = {k: getattr(a, k) for k in ETSAM_PRESET_KEYS}
    return resolve(a.preset, {"normalization": getattr(a, "normalization", None), "etsam": given})


def options_from(a: argparse.Namespace) -> EtsamOptions:
    """EtsamOptions from parsed arguments."""
    e = settings_from(a)["etsam"]
    return EtsamOptions(
        stage1_checkpoint=a.stage1_checkpoint,
        stage2_checkpoint=a.stage2_checkpoint,
        model_config=a.model_config,
        model_overrides=a.model_override,
        device=resolve_device(a.device),
        dtype=a.dtype,
        encoder_batch=a.encoder_batch,
        keep_aspect=a.keep_aspect,
        bin=a.bin,
        bidirectional=a.bidirectional,
        progress=not a.no_progress,
        threads=a.threads,
        **{k: e[k] for k in ETSAM_PRESET_KEYS},
    )


def add_normalization_options(p: argparse.ArgumentParser) -> None:
    """--normalized and --normalization: how a raw tomogram becomes the engine's [0, 1] input."""
    p.add_argument("--normalized", action="store_true", help="the input is already normalized to [0, 1]")
    p.add_argument(
        "--normalization",
        choices=NORMALIZATION_MODES + tuple(NORMALIZATION_ALIASES),
        default=None,
        help="max_positive (the paper's code), minmax (the paper's text), softplus_minmax (an upstream "
        "option); upstream's min_max_positive_values = max_positive (default: the preset's, paper max_positive)",
    )
