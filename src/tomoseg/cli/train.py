"""`tomoseg train`: fine-tune both ETSAM stages on the annotated tomograms (split train/val) of a runs sheet."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from tomoseg.core.errors import InputError
from tomoseg.etsam.options import resolve_device
from tomoseg.training.settings import PRESET_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `train` sub-command."""
    p = sub.add_parser(
        "train",
        help="train ETSAM's two stages on the train/val rows of a runs sheet (docs/training.md)",
        description="Train Stage 1, run it over the training tomograms, fuse its logits with the tomograms as "
        "inference does, train Stage 2; write DIR/etsam_stage1.pt, DIR/etsam_stage2.pt (+ sidecar JSON, "
        "loadable by `tomoseg segment`) and DIR/training.json. Rerunning after a kill resumes from the last "
        "checkpoint. See docs/training.md.",
    )
    p.add_argument(
        "--runs", type=Path, required=True, metavar="SHEET", help="runs sheet (rows with split train/val)"
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    p.add_argument(
        "--data",
        type=Path,
        default=Path("results/data"),
        metavar="DIR",
        help="folder of rows without path/truth_path: DIR/{tomo}/tomogram.mrc and groundtruth.mrc",
    )
    p.add_argument(
        "--device", default="auto", help="auto (cuda when available, else cpu), cpu, cuda or cuda:N"
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="CKPT",
        help="start both stages from this SAM2.1 or ETSAM checkpoint (the paper: sam2.1_hiera_base_plus.pt); "
        "default: random weights",
    )
    p.add_argument(
        "--stage", type=int, choices=(1, 2), default=None, help="train one stage only (default: both)"
    )
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="paper",
        help="paper: the authors' setting (B+ at 1024, 22-slice samples); demo: Hiera-tiny at 128 px for a CPU",
    )
    p.add_argument(
        "--epochs-stage1", type=int, default=None, metavar="N", help="Stage 1 epochs (default: the preset's)"
    )
    p.add_argument(
        "--epochs-stage2", type=int, default=None, metavar="N", help="Stage 2 epochs (default: the preset's)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="samples per optimizer step over all processes (default: the preset's, 1; with --processes W a "
        "multiple of W)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="W",
        help="data-parallel training processes on this machine (DDP; one GPU each on CUDA, gloo on CPU), as "
        "torchrun --standalone --nproc-per-node W starts them; under torchrun itself leave it at 1",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _run(a: argparse.Namespace) -> int:
    # torch and sam2: loaded only when training
    from tomoseg.training.run import TrainJob, join_process_group, train, train_processes
    from tomoseg.training.settings import preset

    settings = preset(
        a.preset,
        epochs_stage1=a.epochs_stage1,
        epochs_stage2=a.epochs_stage2,
        seed=a.seed,
        batch_size=a.batch_size,
    )
    job = TrainJob(
        runs=a.runs,
        out=a.out,
        settings=settings,
        data_dir=a.data,
        device=resolve_device(a.device),
        init=a.init,
        stages=(a.stage,) if a.stage else (1, 2),
        progress=not a.no_progress,
    )
    if a.processes < 1:
        raise InputError(f"--processes must be >= 1, got {a.processes}")
    if a.processes > 1:
        train_processes(job, a.processes)
    else:  # one process, or one of torchrun's
        train(replace(job, device=join_process_group(job.device)))
    return 0
