"""`tomoseg postprocess`: thin-noise removal (the paper's) and, optionally, rung cutting (current upstream)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.core.outformat import OUT_FORMAT_HELP, OUT_FORMATS, convert_outputs
from tomoseg.core.presets import POSTPROCESS_STEPS, PRESET_NAMES, canonical_steps, resolve


def settings_from(a: argparse.Namespace) -> dict:
    """The post-processing settings of the preset with the options given on the command line over them."""
    given = {
        "steps": canonical_steps(a.steps) if a.steps is not None else None,
        "min_slices": a.min_slices,
        "max_bridge_len": a.max_bridge_len,
        "max_spur_len": a.max_spur_len,
    }
    return resolve(a.preset, {"postprocess": given})["postprocess"]


def _run(a: argparse.Namespace) -> int:

    # scipy and scikit-image: loaded only when it runs
    from tomoseg.evaluation.postprocess import run_postprocess

    s = settings_from(a)
    run_postprocess(a.mask, a.out, s["min_slices"], None, s["steps"], s["max_bridge_len"], s["max_spur_len"])
    convert_outputs({a.out: True}, a.out_format)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `postprocess` sub-command."""
    p = sub.add_parser(
        "postprocess",
        help="remove thin noise (26-connected components spanning < --min-slices Z slices) and, with "
        "--steps rungs or --preset upstream, cut short skeleton bridges between parallel membranes",
    )
    p.add_argument("mask", type=Path, help="binary mask MRC (non-zero = foreground)")
    p.add_argument("--out-format", choices=OUT_FORMATS, default="mrc", help=OUT_FORMAT_HELP)
    p.add_argument("--out", type=Path, required=True, help="output mask MRC (uint8 0/1)")
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="paper",
        help="paper: thin_noise only; upstream: thin_noise then rungs (upstream ETSAM's --post-process)",
    )
    p.add_argument(
        "--steps",
        default=None,
        metavar="STEP[,STEP]",
        help=f"steps to run, comma-separated, from {', '.join(POSTPROCESS_STEPS)} (always run in that order; "
        "default: the preset's)",
    )
    p.add_argument(
        "--min-slices",
        type=int,
        default=None,
        help="thin_noise: minimum Z span in slices (default: the preset's, paper 10)",
    )
    p.add_argument(
        "--max-bridge-len",
        type=int,
        default=None,
        help="rungs: longest skeleton bridge (px) between two junctions that is cut (default: the preset's, 5 as upstream's)",
    )
    p.add_argument(
        "--max-spur-len",
        type=int,
        default=None,
        help="rungs: also prune dead-end spurs up to this length in px when > 0 (default: the preset's, 0 = off as upstream's)",
    )
    p.set_defaults(func=_run)
