"""`tomoseg copick segment`: ETSAM on runs of a copick project, the masks written back as copick segmentations."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tomoseg.cli.engine_args import add_engine_options, add_normalization_options, options_from, settings_from

log = logging.getLogger(__name__)


def _segment(a: argparse.Namespace) -> int:
    # copick, torch and sam2: loaded only when it runs
    from tomoseg.acquisition.copick import check_run_name, export_mask, import_copick, project_runs
    from tomoseg.etsam.pipeline import ModelCache, run_segment

    runs = [check_run_name(a.config, r) for r in a.run] if a.run else project_runs(a.config)
    opts = options_from(a)
    models = ModelCache(opts)  # built and read once for every run
    normalization = settings_from(a)["normalization"]
    for i, run in enumerate(runs, 1):
        folder = a.out / run
        log.info("run %d of %d: %s -> %s", i, len(runs), run, folder)
        tomogram = folder / "tomogram.mrc"
        import_copick(a.config, run, a.voxel_spacing, a.tomo_type, tomogram)
        run_segment(tomogram, folder, opts, a.normalized, normalization, a.store_logits, a.preset, models)
        export_mask(
            a.config, run, folder / "mask.mrc", a.name, a.user_id, a.session_id, folder / "copick_export.json"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `copick` command group (`copick segment`)."""
    group = sub.add_parser("copick", help="work on a copick project (copick segment)").add_subparsers(
        dest="copick_command", required=True, metavar="COMMAND"
    )
    p = group.add_parser(
        "segment",
        help="segment runs of a copick project and write the masks back as copick segmentations",
        description="For each run (--run, repeatable; default every run of the project): read its tomogram "
        "at --voxel-spacing and --tomo-type, segment it with ETSAM as `tomoseg segment` does (models loaded "
        "once), and write mask.mrc back into the run as the segmentation --name of --user-id/--session-id "
        "(replacing an older one of the same three). Files of each run go into OUT/<run>/ (the tomogram as "
        "MRC, mask, provenance, copick_export.json). See docs/formats.md.",
    )
    p.add_argument("config", type=Path, help="the copick project's config file (JSON)")
    p.add_argument("--run", action="append", default=[], help="a run's name (repeatable; default: all runs)")
    p.add_argument("--voxel-spacing", type=float, required=True, help="voxel spacing (A) of the tomogram")
    p.add_argument("--tomo-type", default="wbp", help="tomogram type of the run (default wbp)")
    p.add_argument("--out", type=Path, required=True, help="folder of the per-run files (OUT/<run>/)")
    p.add_argument(
        "--name", default="membrane", help="segmentation name (a pickable object; default membrane)"
    )
    p.add_argument("--user-id", default="tomoseg", help="segmentation user id (default tomoseg)")
    p.add_argument("--session-id", default="0", help="segmentation session id (default 0)")
    p.add_argument(
        "--store-logits", action="store_true", help="also write stage1_logits.mrc and stage2_logits.mrc"
    )
    add_normalization_options(p)
    add_engine_options(p)
    p.set_defaults(func=_segment)
