"""Benchmark: split processing with the tiles as one SAM2 batch vs each tile run alone (upstream's way).

Both ETSAM stages on one synthetic normalized volume with random weights (the same checkpoints for both
paths, made once): `segment_tomogram(split=N)` (tiles batched) against N calls of
`segment_tomogram(tile, split=1)` with the split grid spacing and interval, which is what upstream's
`etsam.py --split-processing` does (one full run per quadrant; upstream also rebuilds the model per stage
and quadrant, which this comparison leaves out); and, for scale, one unsplit run of the whole volume (the
paper's settings). Alternating repeats; wall and process CPU seconds; the max |diff| between the two split
paths' merged logits. Writes benchmarks/results/split_<device>.{json,md}.

    PYTHONPATH=src python benchmarks/bench_split.py --shape 16 256 256 --image-size 256 --threads 2
    PYTHONPATH=src python benchmarks/bench_split.py --device cuda --config b+ --shape 100 928 960 \
        --dtype bfloat16 --encoder-batch 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from tomoseg.etsam.model import PAPER_CONFIG, ModelSpec, tiny_spec, write_untrained_checkpoint
from tomoseg.etsam.pipeline import EtsamOptions, segment_tomogram
from tomoseg.etsam.tiles import merge_tiles, split_tiles


def volume(shape: tuple[int, int, int]) -> np.ndarray:
    """A normalized-looking volume with dark bands drifting through the slices."""
    rng = np.random.default_rng(0)
    v = rng.random(shape, dtype=np.float32) * 0.5 + 0.25
    for z in range(shape[0]):
        for y0 in range(20, shape[1] - 10, 60):
            v[z, y0 + z % 7 : y0 + z % 7 + 5, :] = 0.05
    return v


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", type=int, nargs=3, default=[16, 256, 256])
    parser.add_argument("--config", choices=["tiny", "b+"], default="tiny")
    parser.add_argument("--image-size", type=int, default=256, help="tiny config only")
    parser.add_argument("--split", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--encoder-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spec = tiny_spec(args.image_size) if args.config == "tiny" else ModelSpec(PAPER_CONFIG)
    vol = volume(tuple(args.shape))
    with tempfile.TemporaryDirectory() as tmp:
        s1 = write_untrained_checkpoint(Path(tmp) / "s1.pt", spec, 0)
        s2 = write_untrained_checkpoint(Path(tmp) / "s2.pt", spec, 1)
        opts = EtsamOptions(
            stage1_checkpoint=str(s1),
            stage2_checkpoint=str(s2),
            device=args.device,
            dtype=args.dtype,
            encoder_batch=args.encoder_batch,
            split=args.split,
            progress=False,
        )
        alone = replace(opts, split=1, grid_spacing=opts.split_grid_spacing, every_n=opts.split_every_n)
        tiles, boxes = split_tiles(vol, args.split)
        runs = []
        for r in range(args.repeats):
            order = ("batched", "separate", "unsplit") if r % 2 == 0 else ("unsplit", "separate", "batched")
            for path in order:
                if path == "unsplit":
                    res, wall, cpu = timed(lambda: segment_tomogram(vol, replace(opts, split=1)))
                    logits = None
                    stages = {k: round(s.seconds, 2) for k, s in res.stats.items()}
                elif path == "batched":
                    res, wall, cpu = timed(lambda: segment_tomogram(vol, opts))
                    logits = res.stage2_logits
                    stages = {k: round(s.seconds, 2) for k, s in res.stats.items()}
                else:
                    parts, wall, cpu = timed(
                        lambda: [segment_tomogram(np.ascontiguousarray(t), alone) for t in tiles]
                    )
                    logits = merge_tiles([p.stage2_logits for p in parts], boxes, vol.shape)
                    stages = {
                        k: round(sum(p.stats[k].seconds for p in parts), 2) for k in ("stage1", "stage2")
                    }
                runs.append({"repeat": r, "path": path, "wall_s": wall, "cpu_s": cpu, "stages_s": stages})
                runs[-1]["_logits"] = logits
                print(f"repeat {r} {path}: wall {wall:.1f} s, cpu {cpu:.1f} s, stages {stages}")
    last = {run["path"]: run["_logits"] for run in runs[-3:] if run["_logits"] is not None}
    for run in runs:
        run.pop("_logits", None)
    diff = float(np.abs(last["batched"] - last["separate"]).max())
    paths = ("batched", "separate", "unsplit")
    best = {p: min(r["wall_s"] for r in runs if r["path"] == p) for p in paths}
    best_cpu = {p: min(r["cpu_s"] for r in runs if r["path"] == p) for p in paths}
    record = {
        "benchmark": "split processing: tiles as one batch vs each tile alone",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "shape": args.shape,
        "split": args.split,
        "tiles": [list(b) for b in boxes],
        "config": args.config,
        "image_size": args.image_size if args.config == "tiny" else 1024,
        "device": args.device,
        "dtype": args.dtype,
        "encoder_batch": args.encoder_batch,
        "threads": args.threads,
        "runs": runs,
        "best_wall_s": best,
        "best_cpu_s": best_cpu,
        "separate_over_batched_wall": best["separate"] / best["batched"],
        "separate_over_batched_cpu": best_cpu["separate"] / best_cpu["batched"],
        "batched_over_unsplit_wall": best["batched"] / best["unsplit"],
        "max_abs_diff_stage2_logits": diff,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "load_average": list(os.getloadavg()),
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"split_{args.device.split(':')[0]}"
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# Split processing benchmark ({record['date']})",
        "",
        f"Machine: {json.dumps(record['machine'])}",
        "",
        f"Volume {' x '.join(map(str, args.shape))}, {args.split} tiles, config {args.config} at "
        f"{record['image_size']} px, random weights, {args.device}, {args.dtype}, encoder batch "
        f"{args.encoder_batch}, {args.threads} torch threads, {args.repeats} alternating repeats.",
        "",
        "| path | best wall s | best CPU s | all runs (wall / CPU s) |",
        "|---|---|---|---|",
    ]
    for p in paths:
        all_runs = "; ".join(f"{r['wall_s']:.1f} / {r['cpu_s']:.1f}" for r in runs if r["path"] == p)
        lines.append(f"| {p} | {best[p]:.1f} | {best_cpu[p]:.1f} | {all_runs} |")
    lines += [
        "",
        f"Separate / batched: wall {record['separate_over_batched_wall']:.2f}x, "
        f"CPU {record['separate_over_batched_cpu']:.2f}x; max |diff| of the merged Stage 2 logits {diff:.2g}. "
        f"Batched split / unsplit run (wall): {record['batched_over_unsplit_wall']:.2f}x.",
        "",
        "batched: `segment_tomogram(split=N)`, the tiles as one SAM2 batch; separate: each tile through both "
        "stages alone (upstream's way, minus its model rebuilds); unsplit: the whole volume, paper settings.",
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
