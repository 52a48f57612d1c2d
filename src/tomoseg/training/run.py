"""`tomoseg train` end to end: check every input, train Stage 1, run it over the training tomograms with the
inference pipeline, fuse as inference fuses, train Stage 2, write both checkpoints + sidecars + provenance."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tomoseg.core.io import (
    InputError,
    read_json,
    read_mask,
    read_placement,
    read_volume,
    require_writable_dir,
    sha256sum,
    write_json,
    write_volume,
)
from tomoseg.core.provenance import provenance_record
from tomoseg.etsam.fusion import STAGE1_THRESHOLD, STAGE2_THRESHOLD, fuse, threshold
from tomoseg.etsam.model import (
    ModelSpec,
    build_model,
    config_name,
    image_size_overrides,
    read_checkpoint,
    write_checkpoint,
)
from tomoseg.etsam.options import EtsamOptions
from tomoseg.etsam.pipeline import segment_tomogram
from tomoseg.evaluation.metrics import scores_from_counts
from tomoseg.preprocess import normalize_file
from tomoseg.training.data import Item, SliceDataset, TrainRow, check_row, read_rows
from tomoseg.training.loop import StageLog, StageTrainer, check_batch_split, world_rank
from tomoseg.training.settings import TrainSettings

log = logging.getLogger(__name__)

STAGE_FILES = {1: "etsam_stage1.pt", 2: "etsam_stage2.pt"}
PROVENANCE = "training.json"
PHANTOM_LABEL = "synthetic phantoms"


@dataclass
class TrainJob:
    """One `tomoseg train` run: where the rows come from, where everything goes, what to train."""

    runs: Path
    out: Path
    settings: TrainSettings = field(default_factory=TrainSettings)
    data_dir: Path = Path("results/data")
    device: str = "cpu"
    init: Path | None = None
    stages: tuple[int, ...] = (1, 2)
    progress: bool = True
    stop_after: int | None = None  # optimizer steps per stage in this call (tests, time-boxed runs)

    def checkpoint(self, stage: int) -> Path:
        """The trained checkpoint of `stage` in the output folder."""
        return self.out / STAGE_FILES[stage]


def model_spec(settings: TrainSettings) -> ModelSpec:
    """The inference model spec of the trained checkpoints (what their sidecar records)."""
    return ModelSpec(config_name(settings.model_config), image_size_overrides(settings.image_size))


def training_spec(settings: TrainSettings) -> ModelSpec:
    """The spec the model trains with: the inference spec plus stochastic depth in the trunk."""
    spec = model_spec(settings)
    if not settings.drop_path:
        return spec
    return ModelSpec(
        spec.config, (*spec.overrides, f"++model.image_encoder.trunk.drop_path_rate={settings.drop_path}")
    )


def trained_on(rows: list[TrainRow], runs: Path) -> str:
    """The label of what a model was trained on: synthetic phantoms, or the sheet's annotated tomograms."""
    train = [r for r in rows if r.split == "train"]
    if all(r.source == "phantom" for r in train):
        return PHANTOM_LABEL
    return f"{len(train)} annotated tomograms of {runs.name}"


def check_inputs(job: TrainJob) -> list[TrainRow]:
    """Every check that can fail, before any training step: settings, rows, files, init checkpoint, output."""
    job.settings.validate()
    EtsamOptions(device=job.device).validate()
    rows = read_rows(job.runs, job.data_dir)
    for row in rows:
        check_row(row, job.settings.frames)
    if job.init is not None:
        check_init(job.init, job.settings)
    if 1 not in job.stages and not job.checkpoint(1).is_file():
        raise InputError(
            f"{job.checkpoint(1)}: Stage 2 trains on the trained Stage 1's outputs; train Stage 1 first (--stage 1)"
        )
    require_writable_dir(job.out)
    return rows


def check_init(init: Path, settings: TrainSettings) -> None:
    """An init checkpoint must be a SAM2/ETSAM checkpoint of the trained model's config."""
    read_checkpoint(build_model(model_spec(settings)), init)


def _fingerprint(job: TrainJob, rows: list[TrainRow], stage: int, inputs: dict[str, str]) -> str:
    import hashlib
    import json

    blob = {
        "settings": job.settings.fingerprint(),
        "rows": [(r.tomo, r.split, inputs[r.tomo]) for r in rows],
        "init": None if job.init is None else sha256sum(job.init),
        "stage": stage,
        # Stage 2 learns from the trained Stage 1's outputs (and may start from its weights)
        "stage1": sha256sum(job.checkpoint(1)) if stage == 2 else None,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def normalized_inputs(job: TrainJob, rows: list[TrainRow]) -> dict[str, Path]:
    """Each row's tomogram normalized as inference normalizes it, cached under DIR/data/{tomo}/."""
    out = {}
    for row in rows:
        path = job.out / "data" / row.tomo / "normalized.mrc"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            normalize_file(row.tomogram, path, job.settings.normalization)
        out[row.tomo] = path
    return out


def new_model(job: TrainJob, stage: int) -> torch.nn.Module:
    """The model a stage starts from: `--init` weights, else random weights (seeded); Stage 2 from the trained
    Stage 1 with `stage2_from_stage1`."""
    torch.manual_seed(job.settings.seed + stage)
    model = build_model(training_spec(job.settings))
    start = job.checkpoint(1) if stage == 2 and job.settings.stage2_from_stage1 else job.init
    if start is not None:
        model.load_state_dict(read_checkpoint(model, start), strict=True)
    return model


def engine_options(job: TrainJob, stage1: Path, stage2: Path | None = None) -> EtsamOptions:
    """Inference options for the trained checkpoints (the paper's prompts, the job's device)."""
    return EtsamOptions(
        stage1_checkpoint=str(stage1),
        stage2_checkpoint=str(stage2 or stage1),
        device=job.device,
        grid_spacing=job.settings.grid_spacing,
        progress=False,
    )


def dice(mask: np.ndarray, truth: np.ndarray) -> float:
    """Dice of a binary mask against the truth, with the project's metric definitions."""
    m, t = mask.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(m & t))
    fp = int(np.count_nonzero(m & ~t))
    fn = int(np.count_nonzero(~m & t))
    return scores_from_counts(tp, fp, fn, int(m.size) - tp - fp - fn)[0]["dice"]


def make_validator(job: TrainJob, rows: list[TrainRow], stage: int, normalized: dict[str, Path]):
    """Validation of the current weights: the inference pipeline on the `val` rows, Dice per tomogram."""
    val = [r for r in rows if r.split == "val"]
    if not val:
        return None
    scratch = job.out / f".validate-stage{stage}.pt"

    def validate(model: torch.nn.Module) -> dict[str, float]:
        write_checkpoint(scratch, model, model_spec(job.settings), untrained=False)
        scores = {}
        for row in val:
            volume, _ = read_volume(normalized[row.tomo], dtype=np.float32)
            truth, _ = read_mask(row.truth)
            if stage == 1:
                result = segment_tomogram(volume, engine_options(job, scratch), ("stage1",), name=row.tomo)
                mask = threshold(result.stage1_logits, STAGE1_THRESHOLD)
            else:
                s1, _ = read_volume(
                    job.out / "stage2_data" / row.tomo / "stage1_logits.mrc", dtype=np.float32
                )
                opts = engine_options(job, job.checkpoint(1), scratch)
                result = segment_tomogram(volume, opts, ("stage2",), stage1_logits=s1, name=row.tomo)
                mask = threshold(result.stage2_logits, STAGE2_THRESHOLD)
            scores[row.tomo] = round(dice(mask, truth), 6)
        scores["mean"] = round(float(np.mean(list(scores.values()))), 6)
        return scores

    return validate


def stage2_inputs(job: TrainJob, rows: list[TrainRow], normalized: dict[str, Path]) -> dict[str, Path]:
    """Run the trained Stage 1 over every row with the inference pipeline and fuse exactly as inference
    does; the fused volumes (and Stage 1 logits) go to DIR/stage2_data/{tomo}/."""
    out = {}
    digest = sha256sum(job.checkpoint(1))
    for row in rows:
        folder = job.out / "stage2_data" / row.tomo
        fused_path, logits_path, stamp = (
            folder / "fused.mrc",
            folder / "stage1_logits.mrc",
            folder / "stage1.sha256",
        )
        if fused_path.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
            out[row.tomo] = fused_path
            continue
        volume, voxel = read_volume(normalized[row.tomo], dtype=np.float32)
        result = segment_tomogram(volume, engine_options(job, job.checkpoint(1)), ("stage1",), name=row.tomo)
        placement = read_placement(normalized[row.tomo])
        write_volume(logits_path, result.stage1_logits, voxel, placement=placement)
        write_volume(fused_path, fuse(volume, result.stage1_logits), voxel, placement=placement)
        stamp.write_text(digest + "\n")
        log.info("%s: Stage 2 input fused from the trained Stage 1", row.tomo)
        out[row.tomo] = fused_path
    return out


def train_stage(
    job: TrainJob,
    rows: list[TrainRow],
    stage: int,
    images: dict[str, Path],
    normalized: dict[str, Path],
    inputs: dict[str, str],
) -> StageLog:
    """Train one stage on `images` (normalized or fused volumes) and write its checkpoint + sidecar."""
    items = [Item(r.tomo, images[r.tomo], r.truth) for r in rows if r.split == "train"]
    dataset = SliceDataset(items, job.settings.frames, job.settings.repeats, job.settings.seed + stage)
    model = new_model(job, stage)
    trainer = StageTrainer(
        model,
        dataset,
        job.settings,
        stage,
        job.out / f".stage{stage}.state.pt",
        device=job.device,
        progress=job.progress,
        validate=make_validator(job, rows, stage, normalized),
        fingerprint=_fingerprint(job, rows, stage, inputs),
    )
    world, rank = world_rank()
    try:
        result = trainer.run(job.stop_after)
    finally:
        dataset.close()
        if world > 1:
            torch.distributed.barrier()  # process 0 may still be validating with the scratch checkpoint
        if rank == 0:
            for scratch in (job.out / f".validate-stage{stage}.pt", job.out / f".validate-stage{stage}.json"):
                scratch.unlink(missing_ok=True)
    if trainer.step == trainer.total_steps and rank == 0:
        write_checkpoint(job.checkpoint(stage), model, model_spec(job.settings), untrained=False)
    if world > 1:
        torch.distributed.barrier()  # Stage 2 and the record need the checkpoint
    return result


def _on_rank0_first(make: Callable[[], Any]) -> Any:
    """Under DDP process 0 makes shared files first and the others then find them (`make` skips finished
    files); one process just makes them."""
    world, rank = world_rank()
    if rank == 0:
        result = make()
    if world > 1:
        torch.distributed.barrier()
    return make() if rank > 0 else result


def train(job: TrainJob) -> dict[str, Any]:
    """Train the job's stages; returns the provenance record written to DIR/training.json.

    Under torch.distributed (`train_processes`, or torchrun) every process runs this: process 0 writes the
    shared files (normalized inputs, checkpoints, Stage 2's inputs, the record), the others wait for them.
    """
    rows = check_inputs(job)
    _, rank = world_rank()
    job.out.mkdir(parents=True, exist_ok=True)
    inputs = {r.tomo: f"{sha256sum(r.tomogram)}:{sha256sum(r.truth)}" for r in rows}
    normalized = _on_rank0_first(lambda: normalized_inputs(job, rows))
    logs: dict[int, StageLog] = {}
    if 1 in job.stages:
        logs[1] = train_stage(job, rows, 1, normalized, normalized, inputs)
    if 2 in job.stages and job.checkpoint(1).is_file():
        fused = _on_rank0_first(lambda: stage2_inputs(job, rows, normalized))
        logs[2] = train_stage(job, rows, 2, fused, normalized, inputs)
    record = provenance(job, rows, inputs, logs)
    if rank == 0:
        write_json(job.out / PROVENANCE, record)
        log.info("wrote %s", job.out / PROVENANCE)
    return record


def join_process_group(device: str) -> str:
    """Join torchrun's process group when started by it (WORLD_SIZE > 1): NCCL with one GPU per process
    (LOCAL_RANK) on CUDA, gloo on CPU. Returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    cuda = device.startswith("cuda")
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    if not cuda:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    return f"cuda:{local}"


def _train_worker(job: TrainJob) -> None:
    """One process of `train_processes` (started by torch's elastic launcher, as torchrun starts them)."""
    device = join_process_group(job.device)
    try:
        train(replace(job, device=device, progress=job.progress and os.environ.get("RANK", "0") == "0"))
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train_processes(job: TrainJob, processes: int) -> dict[str, Any]:
    """Train with `processes` DDP processes on this machine (one per GPU on CUDA, gloo on CPU), as
    `torchrun --standalone --nproc-per-node N` would; returns the record. One process: `train` itself."""
    if processes <= 1:
        return train(job)
    check_batch_split(job.settings.batch_size, processes)
    if job.device.startswith("cuda") and torch.cuda.device_count() < processes:
        raise InputError(
            f"{processes} training processes need {processes} GPUs; torch sees {torch.cuda.device_count()}"
        )
    check_inputs(job)  # bad input: one line here, not one per process
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=processes,
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",
        run_id=f"tomoseg-train-{os.getpid()}",
        max_restarts=0,
    )
    elastic_launch(config, _train_worker)(job)
    return read_json(job.out / PROVENANCE)


def provenance(
    job: TrainJob, rows: list[TrainRow], inputs: dict[str, str], logs: dict[int, StageLog]
) -> dict[str, Any]:
    """The training record: rows and digests, settings, steps, losses, validation Dice, init, versions."""
    stages = {}
    for stage, stage_log in logs.items():
        ckpt = job.checkpoint(stage)
        finished = ckpt.is_file() and bool(stage_log.losses)
        stages[f"stage{stage}"] = {
            "checkpoint": str(ckpt) if finished else None,
            "sha256": sha256sum(ckpt) if finished else None,
            "steps": len(stage_log.losses),
            "finished": finished,
            "samples": stage_log.samples,
            "seconds": round(stage_log.seconds, 3),
            "samples_per_second": round(stage_log.samples_per_second, 4) if stage_log.seconds else None,
            "final_loss": stage_log.losses[-1] if stage_log.losses else None,
            "losses": stage_log.losses,
            "val_dice": stage_log.val_dice,
        }
    tomo_sha = {r.tomo: inputs[r.tomo].split(":") for r in rows}
    return provenance_record(
        "train",
        job.settings.as_dict(),
        {"runs": str(job.runs)},
        rows=[
            {
                "tomo": r.tomo,
                "source": r.source,
                "split": r.split,
                "tomogram": str(r.tomogram),
                "tomogram_sha256": tomo_sha[r.tomo][0],
                "truth": str(r.truth),
                "truth_sha256": tomo_sha[r.tomo][1],
            }
            for r in rows
        ],  # fmt: skip
        init={"path": str(job.init), "sha256": sha256sum(job.init)} if job.init else None,
        device=job.device,
        untrained=False,
        trained_on=trained_on(rows, job.runs),
        stages=stages,
    )
