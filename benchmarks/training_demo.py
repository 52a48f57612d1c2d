"""Does the demo preset learn? Train ETSAM (`tomoseg.training`, preset demo) on training phantoms, segment
held-out phantoms (other seeds), and score side by side: trained Stage 1 alone, both trained stages, the
untrained test checkpoints (same architecture), and a classical baseline fitted on the training phantoms
(Gaussian-smoothed intensity below the best threshold). Also records training samples/s per stage.

    PYTHONPATH=src .venv/bin/python benchmarks/training_demo.py --work /tmp/training_demo

By default it trains what `make demo` trains: the demo config's phantom shape, the training seeds of
config/demo/train_runs.tsv and the test seeds of config/demo/runs.tsv, preset demo.

Writes benchmarks/results/training_demo.json and appends a session to benchmarks/results/training_demo.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy import ndimage

from tomoseg.acquisition.phantoms import write_phantom
from tomoseg.core.io import read_mask, read_volume
from tomoseg.core.provenance import git_commit
from tomoseg.etsam.fusion import STAGE1_THRESHOLD, STAGE2_THRESHOLD, threshold
from tomoseg.etsam.model import make_test_checkpoints
from tomoseg.etsam.options import EtsamOptions
from tomoseg.etsam.pipeline import segment_tomogram
from tomoseg.preprocess import normalize_volume
from tomoseg.training.run import TrainJob, dice, train
from tomoseg.training.settings import preset

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "config" / "demo"
HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit"
SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
log = logging.getLogger("training_demo")


def make_phantoms(work: Path, seeds: dict[int, str], shape, voxel: float, snr: float) -> Path:
    """Phantoms under work/data and a runs sheet of them."""
    lines = [HEADER]
    for seed, split in seeds.items():
        tomo = f"phantom-{seed:03d}"
        if not (work / "data" / tomo / "groundtruth.mrc").is_file():
            write_phantom(work / "data" / tomo, seed, shape, voxel, snr)
        lines.append(f"{tomo}\tphantom\t\t{seed}\t\t\t\tphantom\t{split}")
    (work / "runs.tsv").write_text("\n".join(lines) + "\n")
    return work / "runs.tsv"


def load(work: Path, tomo: str) -> tuple[np.ndarray, np.ndarray]:
    """Normalized tomogram (the inference normalization) and truth."""
    vol, _ = read_volume(work / "data" / tomo / "tomogram.mrc", dtype=np.float32)
    truth, _ = read_mask(work / "data" / tomo / "groundtruth.mrc")
    return normalize_volume(vol, "max_positive", tomo), truth


def fit_classical(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Smoothing sigma and threshold (membranes are dark: mask = smoothed < t) of best mean training Dice."""
    best = {"dice": -1.0}
    for sigma in SIGMAS:
        smooth = [ndimage.gaussian_filter(v, sigma) if sigma else v for v, _ in pairs]
        cuts = np.quantile(np.concatenate([s.ravel()[::7] for s in smooth]), np.linspace(0.01, 0.6, 60))
        for t in cuts:
            d = float(np.mean([dice(s < t, truth) for s, (_, truth) in zip(smooth, pairs, strict=True)]))
            if d > best["dice"]:
                best = {"dice": d, "sigma": sigma, "threshold": float(t)}
    return best


def classical(volume: np.ndarray, fit: dict) -> np.ndarray:
    """The fitted classical segmentation of one normalized tomogram."""
    smooth = ndimage.gaussian_filter(volume, fit["sigma"]) if fit["sigma"] else volume
    return smooth < fit["threshold"]


def mask_grid_ceiling(truth: np.ndarray, image_size: int) -> float:
    """Dice of the truth after a round trip through SAM2's low-resolution mask grid (image_size / 4 px: area
    down, bilinear up as SAM2 upsamples, best cut): what a perfect prediction on that grid could reach."""
    t = torch.from_numpy(truth.astype(np.float32))[:, None]
    low = torch.nn.functional.interpolate(t, size=(image_size // 4,) * 2, mode="area")
    up = torch.nn.functional.interpolate(low, size=truth.shape[1:], mode="bilinear", align_corners=False)
    return max(dice((up[:, 0] > cut).numpy(), truth) for cut in (0.3, 0.4, 0.5))


def etsam_dice(volume, truth, stage1: Path, stage2: Path, grid_spacing: int) -> dict[str, float]:
    """Dice of Stage 1 alone (logits > 0) and both stages (Stage 2 logits > -0.25)."""
    opts = EtsamOptions(str(stage1), str(stage2), grid_spacing=grid_spacing, progress=False)
    result = segment_tomogram(volume, opts)
    return {
        "stage1": dice(threshold(result.stage1_logits, STAGE1_THRESHOLD), truth),
        "both": dice(threshold(result.stage2_logits, STAGE2_THRESHOLD), truth),
    }


def demo_seeds(sheet: Path, split: str) -> list[int]:
    """The phantom seeds (run_id) of a demo runs sheet's rows of `split`."""
    rows = [line.split("\t") for line in sheet.read_text().splitlines()[1:] if line.strip()]
    return [int(r[3]) for r in rows if r[-1] == split]


def main() -> None:
    demo = yaml.safe_load((DEMO / "config.yaml").read_text())["phantom"]
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--shape", type=int, nargs=3, default=tuple(demo["shape"]))
    p.add_argument("--voxel-size", type=float, default=demo["voxel_size"])
    p.add_argument("--snr", type=float, default=demo["snr"])
    p.add_argument("--train-seeds", type=int, nargs="+", default=demo_seeds(DEMO / "train_runs.tsv", "train"))
    p.add_argument("--val-seeds", type=int, nargs="*", default=demo_seeds(DEMO / "train_runs.tsv", "val"))
    p.add_argument("--test-seeds", type=int, nargs="+", default=demo_seeds(DEMO / "runs.tsv", "test"))
    p.add_argument("--epochs-stage1", type=int, default=None)
    p.add_argument("--epochs-stage2", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None, help="instead of the preset's (a deviation)")
    p.add_argument("--frames", type=int, default=None, help="instead of the preset's (a deviation)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--note", default="")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(a.threads)
    load_before = os.getloadavg()[0]
    seeds = (
        {s: "train" for s in a.train_seeds}
        | {s: "val" for s in a.val_seeds}
        | {s: "test" for s in a.test_seeds}
    )
    sheet = make_phantoms(a.work, seeds, a.shape, a.voxel_size, a.snr)
    settings = preset(
        "demo",
        epochs_stage1=a.epochs_stage1,
        epochs_stage2=a.epochs_stage2,
        repeats=a.repeats,
        image_size=a.image_size,
        frames=a.frames,
    )
    job = TrainJob(sheet, a.work / "model", settings, data_dir=a.work / "data", device="cpu", progress=False)
    t0 = time.perf_counter()
    record = train(job)
    train_seconds = time.perf_counter() - t0
    untrained = make_test_checkpoints(a.work / "untrained", image_size=settings.image_size)

    train_pairs = [load(a.work, f"phantom-{s:03d}") for s in a.train_seeds]
    fit = fit_classical(train_pairs)
    rows = {}
    for s in a.test_seeds:
        tomo = f"phantom-{s:03d}"
        volume, truth = load(a.work, tomo)
        trained = etsam_dice(volume, truth, job.checkpoint(1), job.checkpoint(2), settings.grid_spacing)
        random = etsam_dice(volume, truth, untrained[0], untrained[1], settings.grid_spacing)
        rows[tomo] = {
            "trained_stage1": trained["stage1"],
            "trained_both": trained["both"],
            "untrained_stage1": random["stage1"],
            "untrained_both": random["both"],
            "classical": dice(classical(volume, fit), truth),
            "mask_grid_ceiling": mask_grid_ceiling(truth, settings.image_size),
            "truth_fraction": float(truth.mean()),
        }
    means = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
    stages = {
        k: {x: v[x] for x in ("steps", "samples", "seconds", "samples_per_second", "val_dice")}
        for k, v in record["stages"].items()
    }
    for v in stages.values():
        v["final_loss"] = None
    for k, v in record["stages"].items():
        stages[k]["final_loss"] = v["final_loss"]["total"] if v["final_loss"] else None
        stages[k]["first_loss"] = v["losses"][0]["total"] if v["losses"] else None
    result = {
        "session": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(HERE),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {a.threads}",
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "phantoms": {"shape": list(a.shape), "voxel_size": a.voxel_size, "snr": a.snr, "train": a.train_seeds,
                     "val": a.val_seeds, "test": a.test_seeds},
        "settings": settings.as_dict(),
        "train_seconds": round(train_seconds, 1),
        "stages": stages,
        "classical_fit": fit,
        "per_tomogram": rows,
        "mean": means,
        "note": a.note,
    }  # fmt: skip
    out = HERE / "results" / "training_demo.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    md = HERE / "results" / "training_demo.md"
    head = "" if md.exists() else (
        "# Demo training on phantoms (`benchmarks/training_demo.py`)\n\nHeld-out phantoms (other seeds than "
        "training). Dice per volume, mean over the test phantoms. Untrained = the test checkpoints (random "
        "Hiera-tiny at the same image size). Classical = Gaussian-smoothed normalized intensity below the "
        "threshold (and sigma) of best mean Dice on the training phantoms. The machine is shared: see the load.\n"
    )  # fmt: skip
    line = " | ".join(
        f"{means[k]:.3f}"
        for k in ("trained_stage1", "trained_both", "untrained_stage1", "untrained_both", "classical")
    )
    sps = ", ".join(
        f"{k} {v['samples_per_second']} samples/s ({v['steps']} steps, loss {v['first_loss']:.3f} -> {v['final_loss']:.3f})"
        for k, v in stages.items()
    )
    text = (
        f"{head}\n## Session {result['session']} ({result['commit']})\n\n{result['machine']}; load {result['load_1min_before_after']}; "
        f"phantoms {a.shape} at {a.voxel_size} A, SNR {a.snr}; train seeds {a.train_seeds}, val {a.val_seeds}, test {a.test_seeds}; "
        f"preset demo, image size {settings.image_size}, {settings.frames} slices a sample, epochs "
        f"{settings.epochs_stage1}/{settings.epochs_stage2}, repeats {settings.repeats}. {a.note}\n\n"
        "| trained Stage 1 | trained both stages | untrained Stage 1 | untrained both | classical |\n|---|---|---|---|---|\n"
        f"| {line} |\n\nTraining: {round(train_seconds)} s in all; {sps}. Classical fit: sigma {fit['sigma']}, "
        f"threshold {fit['threshold']:.4f} (training Dice {fit['dice']:.3f}). Ceiling of the model's "
        f"{settings.image_size // 4}-px low-resolution mask grid (the truth through it): {means['mask_grid_ceiling']:.3f}.\n"
    )  # fmt: skip
    with open(md, "a") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
