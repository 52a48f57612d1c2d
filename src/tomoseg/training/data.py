"""Training data: the runs sheet's `train`/`val` rows, their input checks, and samples of consecutive slices
read lazily from memory-mapped MRC files (never a whole training set in RAM)."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomoseg.core.io import InputError, open_volume, read_header

log = logging.getLogger(__name__)

TRAIN_SPLITS = ("train", "val")
VOXEL_TOLERANCE = 1e-3  # relative difference of voxel sizes taken as equal


@dataclass(frozen=True)
class TrainRow:
    """One annotated tomogram of the runs sheet: its key, source, split and the two files."""

    tomo: str
    source: str
    split: str
    tomogram: Path
    truth: Path


def read_rows(runs: str | os.PathLike, data_dir: str | os.PathLike) -> list[TrainRow]:
    """The `train` and `val` rows of a runs sheet with their files.

    A row with `path`/`truth_path` (local rows) uses those; every other row uses the workflow's data
    folder: `data_dir/{tomo}/tomogram.mrc` and `groundtruth.mrc`. A train/val row without truth is refused.
    """
    runs = Path(runs)
    try:
        text = runs.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{runs}: runs sheet not readable ({err})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    missing = {"tomo", "source", "truth", "split"} - set(reader.fieldnames or [])
    if missing:
        raise InputError(f"{runs}: runs sheet lacks the column(s) {sorted(missing)} (config/README.md)")
    rows = []
    for row in reader:
        split = (row.get("split") or "").strip()
        if split not in TRAIN_SPLITS:
            continue
        tomo = row["tomo"]
        if (row.get("truth") or "none") == "none":
            raise InputError(f"{runs}: row {tomo} is in split {split!r} but has no ground truth (truth none)")
        folder = Path(data_dir) / tomo
        tomogram = Path(row["path"]) if row.get("path") else folder / "tomogram.mrc"
        truth = Path(row["truth_path"]) if row.get("truth_path") else folder / "groundtruth.mrc"
        rows.append(TrainRow(tomo, row.get("source") or "", split, tomogram, truth))
    if not any(r.split == "train" for r in rows):
        raise InputError(f"{runs}: no rows with split 'train'; mark the annotated tomograms to train on")
    return rows


def check_row(row: TrainRow, frames: int, chunk: int = 16) -> tuple[int, int, int]:
    """Refuse a row whose truth differs in shape or voxel size, is empty or all membrane, or that has
    fewer slices than a sample; returns its shape. Reads the truth slab by slab (memory-mapped)."""
    for path in (row.tomogram, row.truth):
        if not path.is_file():
            raise InputError(
                f"{path}: not found (runs sheet row {row.tomo}; the workflow's data rules write it)"
            )
    shape, _, voxel = read_header(row.tomogram)
    tshape, _, tvoxel = read_header(row.truth)
    if tuple(tshape) != tuple(shape):
        raise InputError(
            f"{row.truth}: truth shape {tuple(tshape)} differs from the tomogram's {tuple(shape)}"
        )
    if any(
        abs(a - b) > VOXEL_TOLERANCE * max(abs(a), abs(b), 1e-9) for a, b in zip(voxel, tvoxel, strict=True)
    ):
        raise InputError(
            f"{row.truth}: truth voxel size {tuple(tvoxel)} differs from the tomogram's {tuple(voxel)}"
        )
    if shape[0] < frames:
        raise InputError(f"{row.tomogram}: {shape[0]} slices, fewer than a training sample's {frames}")
    positive = 0
    with open_volume(row.truth) as (data, _):
        for z in range(0, shape[0], chunk):
            positive += int(np.count_nonzero(np.asarray(data[z : z + chunk])))
    total = int(np.prod(shape))
    if positive == 0:
        raise InputError(f"{row.truth}: the truth is empty (no membrane voxel); nothing to learn from")
    if positive == total:
        raise InputError(f"{row.truth}: the truth is membrane everywhere; not a usable annotation")
    return shape


@dataclass(frozen=True)
class Item:
    """One volume pair the dataset samples from: the model's input (normalized or fused) and its truth."""

    tomo: str
    image: Path
    truth: Path


class SliceDataset:
    """Samples of `frames` consecutive slices of memory-mapped volume pairs, drawn deterministically by index.

    Sample s belongs to epoch s // per_epoch; each epoch visits every volume `repeats` times in an order
    drawn from (seed, epoch), each visit at a start slice drawn from (seed, epoch, position). The data
    position of a run is therefore the number of samples drawn, and resuming needs nothing else.
    """

    def __init__(self, items: Sequence[Item], frames: int, repeats: int = 1, seed: int = 0):
        if not items:
            raise ValueError("a dataset needs at least one volume")
        self.items, self.frames, self.repeats, self.seed = list(items), frames, repeats, seed
        self._stack = contextlib.ExitStack()
        self._open: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.depth = [read_header(it.image)[0][0] for it in self.items]

    @property
    def per_epoch(self) -> int:
        """Samples in one epoch."""
        return len(self.items) * self.repeats

    def _arrays(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._open:
            image, _ = self._stack.enter_context(open_volume(self.items[k].image))
            truth, _ = self._stack.enter_context(open_volume(self.items[k].truth))
            self._open[k] = (image, truth)
        return self._open[k]

    def position(self, s: int) -> tuple[int, int]:
        """(volume index, start slice) of sample `s`."""
        epoch, i = divmod(s, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.per_epoch)
        k = int(order[i]) % len(self.items)
        start = int(np.random.default_rng([self.seed, epoch, i]).integers(0, self.depth[k] - self.frames + 1))
        return k, start

    def sample(self, s: int) -> tuple[np.ndarray, np.ndarray, str, int]:
        """Sample `s`: (image slices float32, truth slices uint8 0/1, tomo, start slice)."""
        k, start = self.position(s)
        image, truth = self._arrays(k)
        stop = start + self.frames
        img = np.array(image[start:stop], dtype=np.float32)
        lab = np.asarray(truth[start:stop])
        lab = (lab != 0 if lab.dtype == np.int8 else lab > 0).astype(np.uint8)
        return img, lab, self.items[k].tomo, start

    def close(self) -> None:
        """Close the memory maps."""
        self._stack.close()
        self._open.clear()
