"""`tomoseg segment`: both ETSAM stages on one tomogram -> mask.mrc (+ logits, provenance.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoseg.cli.engine_args import add_engine_options, add_normalization_options, options_from, settings_from
from tomoseg.core.io import volumes_in
from tomoseg.core.omezarr import zarr_target_voxel_size
from tomoseg.core.outformat import OUT_FORMAT_HELP, OUT_FORMATS, convert_outputs


def _run(a: argparse.Namespace) -> int:
    # torch and sam2: loaded only when segmenting
    from tomoseg.etsam.many import segment_many
    from tomoseg.etsam.pipeline import STALE_LOGITS, run_segment

    tomograms = volumes_in(a.tomogram)
    common = dict(
        normalized=a.normalized,
        normalization=settings_from(a)["normalization"],
        store_logits=a.store_logits,
        preset=a.preset,
    )
    if len(a.tomogram) == 1 and tomograms == a.tomogram:  # one file: its outputs go into --out itself
        target = zarr_target_voxel_size(tomograms[0], a.voxel_size, a.level)
        run_segment(tomograms[0], a.out, options_from(a), **common, target_voxel_size=target)
        folders = [a.out]
    else:
        folders = segment_many(
            tomograms, a.out, options_from(a), **common, voxel_size=a.voxel_size, level=a.level
        )
    for folder in folders:
        volumes = {folder / "mask.mrc": True} | {folder / name: False for name in STALE_LOGITS}
        convert_outputs(volumes, a.out_format)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `segment` sub-command."""
    p = sub.add_parser(
        "segment",
        help="segment membranes in tomograms with two-stage ETSAM",
        description="One tomogram: its outputs go into --out. Several tomograms or a folder of them: each "
        "into --out/<name>/, with the models built and the checkpoints read once; tomograms already "
        "segmented there with the same settings are skipped, so a killed run redoes only the rest.",
    )
    p.add_argument(
        "tomogram",
        type=Path,
        nargs="+",
        help="input tomograms (MRC or OME-Zarr), or folders of them",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (mask.mrc, provenance.json, logits; one subfolder per tomogram for several)",
    )
    p.add_argument(
        "--store-logits", action="store_true", help="also write stage1_logits.mrc and stage2_logits.mrc"
    )
    p.add_argument("--out-format", choices=OUT_FORMATS, default="mrc", help=OUT_FORMAT_HELP)
    resolution = p.add_mutually_exclusive_group()
    resolution.add_argument(
        "--level",
        type=int,
        default=None,
        metavar="N",
        help="OME-Zarr input: segment resolution level N of its multiscales (0 = full resolution, the default)",
    )
    resolution.add_argument(
        "--voxel-size",
        type=float,
        default=None,
        metavar="A",
        help="OME-Zarr input: segment the resolution level whose voxel size is nearest A Angstrom "
        "(the paper's tomograms are about 13-14 A); MRC inputs have one level",
    )
    add_normalization_options(p)
    add_engine_options(p)
    p.set_defaults(func=_run)
