"""Is the demo's Dice target reachable through SAM2's mask grid? A small 2-D convolutional network trained on
the demo's training phantoms, once predicting at full resolution and once on SAM2's quarter-resolution mask
grid (logits at image/4, bilinearly upsampled as SAM2 upsamples its masks), scored on the held-out test
phantoms every 100 steps. A reference for `benchmarks/training_demo.py`, not a method of tomoseg.

    PYTHONPATH=src .venv/bin/python benchmarks/grid_cnn.py --work /tmp/training_demo

Prints one line per evaluation and appends the session to benchmarks/results/grid_cnn.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from training_demo import DEMO, demo_seeds, load, make_phantoms

from tomoseg.core.provenance import git_commit
from tomoseg.training.run import dice

HERE = Path(__file__).resolve().parent


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
    )  # fmt: skip


class SliceNet(nn.Module):
    """A two-level U-Net on single slices; `on_grid` predicts at a quarter of the resolution instead."""

    def __init__(self, on_grid: bool):
        super().__init__()
        self.on_grid = on_grid
        self.enc1, self.enc2, self.enc3 = conv_block(1, 16), conv_block(16, 32), conv_block(32, 64)
        self.dec2, self.dec1 = conv_block(96, 32), conv_block(48, 16)
        self.grid_head = nn.Sequential(conv_block(64, 64), nn.Conv2d(64, 1, 1))
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.enc1(x)
        b = self.enc2(F.max_pool2d(a, 2))
        c = self.enc3(F.max_pool2d(b, 2))
        if self.on_grid:
            return F.interpolate(self.grid_head(c), size=x.shape[-2:], mode="bilinear", align_corners=False)
        d = self.dec2(torch.cat([F.interpolate(c, scale_factor=2), b], 1))
        return self.head(self.dec1(torch.cat([F.interpolate(d, scale_factor=2), a], 1)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import yaml

    demo = yaml.safe_load((DEMO / "config.yaml").read_text())["phantom"]
    train_seeds = demo_seeds(DEMO / "train_runs.tsv", "train")
    test_seeds = demo_seeds(DEMO / "runs.tsv", "test")
    seeds = {s: "train" for s in train_seeds} | {s: "test" for s in test_seeds}
    make_phantoms(a.work, seeds, tuple(demo["shape"]), demo["voxel_size"], demo["snr"])
    train = [load(a.work, f"phantom-{s:03d}") for s in train_seeds]
    test = [load(a.work, f"phantom-{s:03d}") for s in test_seeds]
    images = torch.from_numpy(np.concatenate([v[:, None] for v, _ in train])).float()
    labels = torch.from_numpy(np.concatenate([t for _, t in train])).float()[:, None]
    lines = []
    for on_grid in (False, True):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        net = SliceNet(on_grid)
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        t0 = time.perf_counter()
        for step in range(1, a.steps + 1):
            idx = torch.from_numpy(rng.integers(0, len(images), 8))
            x, y = images[idx], labels[idx]
            if rng.random() < 0.5:
                x, y = x.flip(-1), y.flip(-1)
            logits = net(x)
            prob = logits.sigmoid()
            soft_dice = (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
            loss = F.binary_cross_entropy_with_logits(logits, y) + 1 - soft_dice
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0:
                net.eval()
                with torch.no_grad():
                    scores = [dice((net(torch.from_numpy(v[:, None]))[:, 0] > 0).numpy(), t) for v, t in test]
                net.train()
                name = "quarter grid" if on_grid else "full resolution"
                line = (
                    f"| {name} | {step} | {time.perf_counter() - t0:.0f} | "
                    + " / ".join(f"{s:.3f}" for s in scores)
                    + f" | {np.mean(scores):.3f} |"
                )
                print(line, flush=True)
                lines.append(line)
    md = HERE / "results" / "grid_cnn.md"
    head = (
        ""
        if md.exists()
        else "# A convolutional reference through SAM2's mask grid (`benchmarks/grid_cnn.py`)\n"
    )
    session = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    text = (
        f"{head}\n## Session {session} ({git_commit(HERE)})\n\n"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {a.threads}; "
        f"phantoms {demo['shape']} at SNR {demo['snr']}, train seeds {train_seeds}, test seeds {test_seeds}; "
        "batch of 8 slices, AdamW 1e-3, BCE + soft Dice, random horizontal flips.\n\n"
        "| output | step | seconds | Dice per test phantom | mean |\n|---|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n"
    )
    with md.open("a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
