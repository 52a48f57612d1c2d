"""The report's training figure: loss per step and validation Dice per epoch of a `tomoseg train` record."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tomoseg.core.io import read_json
from tomoseg.reporting.figures import placeholder, plt, save


def training_curves(record_json: str | os.PathLike, stem: str | os.PathLike, window: int = 10) -> list[Path]:
    """Loss per optimizer step (and its running mean) and validation Dice per epoch of each trained stage,
    from a `tomoseg train` record (training.json): is the model still learning, over-fitting, or stuck?"""
    record = read_json(record_json)
    stages = {k: v for k, v in sorted((record.get("stages") or {}).items()) if v.get("losses")}
    if not stages:
        return placeholder(f"no training steps recorded in {Path(record_json).name}", stem)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (stage, info) in enumerate(stages.items()):
        c = f"C{i}"
        steps = np.array([row["step"] for row in info["losses"]])
        loss = np.array([row["total"] for row in info["losses"]], dtype=float)
        axes[0].plot(steps, loss, color=c, alpha=0.3, lw=0.8)
        k = min(window, len(loss))
        mean = np.convolve(loss, np.ones(k) / k, mode="valid")
        axes[0].plot(steps[k - 1 :], mean, color=c, lw=1.6, label=f"{stage} (running mean of {k})")
        val = info.get("val_dice") or []
        if val:
            axes[1].plot([v["epoch"] for v in val], [v["mean"] for v in val], "o-", color=c, label=stage)
    axes[0].set_xlabel("optimizer step")
    axes[0].set_ylabel("training loss (weighted total)")
    axes[0].legend(frameon=False, fontsize=8)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation Dice (mean over val rows)")
    axes[1].set_ylim(0, 1)
    if axes[1].lines:
        axes[1].legend(frameon=False, fontsize=8)
    else:
        axes[1].text(0.5, 0.5, "no val rows", ha="center", va="center", transform=axes[1].transAxes)
    fig.suptitle(f"Training on {record.get('trained_on', '?')}")
    fig.tight_layout()
    return save(fig, stem)
