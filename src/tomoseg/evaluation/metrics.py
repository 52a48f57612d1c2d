"""Segmentation metrics and score histograms, streamed over Z-chunks of memory-mapped volumes.

Confusion counts (and Dice, IoU, precision, recall) come from the predicted mask against the ground
truth. With a score volume, every voxel's score is converted to a logit (the ranking variable; the
probability is its sigmoid) and counted in a fixed-bin histogram split by truth:

* bins are uniform in logit space on [-32, 32] with 2**21 bins (width 2**-15 = 3.05e-5 logit units);
  bin k holds logits in (lo + k*w, lo + (k+1)*w] so that "logit > t" is exact for every t on a bin
  edge (every multiple of 2**-15 in [-32, 32], e.g. -0.25 or 0.5); logits outside the range go to the
  end bins;
* some values are kept exactly as "atoms" (value, positives, negatives) instead of being binned: the
  ETSAM floor (-max logit, which ~30 % of voxels share), and -inf/+inf (probabilities 0 and 1).

From these, average precision follows scikit-learn's ``average_precision_score`` definition
(sum over distinct thresholds of (R_k - R_{k-1}) * P_k); voxels whose scores differ but share a bin are
treated as tied, which is the only approximation. Histograms of several tomograms add up (pooled AUPRC).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tomoseg.core.io import InputError, atomic_path, open_volume, read_placement
from tomoseg.evaluation.masks import nonzero_mask
from tomoseg.evaluation.orientation import DEFAULT_BINS, DEFAULT_K, ThetaOptions, theta_wise
from tomoseg.evaluation.planewise import PlaneOptions, plane_wise

log = logging.getLogger(__name__)

SCORE_KINDS = ("etsam-logits", "logits", "probabilities")
LOGIT_RANGE = 32.0
NBINS = 2**21
BIN_WIDTH = 2 * LOGIT_RANGE / NBINS
# the paper's threshold ablation (logit units; for probabilities, p > sigmoid(t))
DEFAULT_THRESHOLDS = (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass
class ScoreHistogram:
    """Voxel counts per logit bin split by truth, plus exact atoms (value, positives, negatives)."""

    pos: np.ndarray = field(default_factory=lambda: np.zeros(NBINS, np.int64))
    neg: np.ndarray = field(default_factory=lambda: np.zeros(NBINS, np.int64))
    atoms: dict[float, list[int]] = field(default_factory=dict)
    lo: float = -LOGIT_RANGE
    width: float = BIN_WIDTH

    @property
    def n_pos(self) -> int:
        """Positive (ground-truth) voxels counted, bins and atoms together: the recall denominator."""
        return int(self.pos.sum() + sum(a[0] for a in self.atoms.values()))

    @property
    def n_neg(self) -> int:
        """Negative (background) voxels counted, bins and atoms together."""
        return int(self.neg.sum() + sum(a[1] for a in self.atoms.values()))

    def add_atom(self, value: float, pos: int, neg: int) -> None:
        """Count voxels at exactly `value` outside the bins, so that ties at that value stay exact."""
        if pos or neg:
            entry = self.atoms.setdefault(float(value), [0, 0])
            entry[0] += int(pos)
            entry[1] += int(neg)

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        if (self.lo, self.width, len(self.pos)) != (other.lo, other.width, len(other.pos)):
            raise ValueError("histograms with different bins cannot be added")
        out = ScoreHistogram(self.pos + other.pos, self.neg + other.neg, {}, self.lo, self.width)
        for h in (self, other):
            for v, (p, n) in h.atoms.items():
                out.add_atom(v, p, n)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write as a compressed .npz, atomically."""
        values = np.array(sorted(self.atoms), dtype=np.float64)
        with atomic_path(path, suffix=".npz.part") as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                pos=self.pos,
                neg=self.neg,
                atom_values=values,
                atom_pos=np.array([self.atoms[v][0] for v in values], np.int64),
                atom_neg=np.array([self.atoms[v][1] for v in values], np.int64),
                lo=self.lo,
                width=self.width,
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScoreHistogram:
        """Read a histogram written by `save` (to pool tomograms); an unreadable file raises InputError."""
        try:
            with np.load(path) as z:
                atoms = {
                    float(v): [int(p), int(n)]
                    for v, p, n in zip(z["atom_values"], z["atom_pos"], z["atom_neg"], strict=True)
                }
                return cls(
                    z["pos"].astype(np.int64),
                    z["neg"].astype(np.int64),
                    atoms,
                    float(z["lo"]),
                    float(z["width"]),
                )
        except (OSError, KeyError, ValueError) as err:
            raise InputError(f"{path}: not a readable score histogram ({err})") from None

    def points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, positives, negatives) of every non-empty bin (at its centre) and atom, value descending."""
        nz = np.flatnonzero(self.pos + self.neg)
        values = self.lo + (nz + 0.5) * self.width
        pos, neg = self.pos[nz], self.neg[nz]
        if self.atoms:
            av = np.array(list(self.atoms), np.float64)
            ap = np.array([a[0] for a in self.atoms.values()], np.int64)
            an = np.array([a[1] for a in self.atoms.values()], np.int64)
            values, pos, neg = (
                np.concatenate([values, av]),
                np.concatenate([pos, ap]),
                np.concatenate([neg, an]),
            )
        order = np.argsort(-values, kind="stable")
        values, pos, neg = values[order], pos[order], neg[order]
        # merge exactly equal values (an atom at a bin centre)
        uniq, start = np.unique(-values, return_index=True)
        if len(uniq) != len(values):
            values = -uniq
            pos, neg = np.add.reduceat(pos, start), np.add.reduceat(neg, start)
        return values, pos, neg

    def counts_above(self, threshold: float) -> tuple[int, int]:
        """(true positives, false positives) of the rule logit > threshold (exact on bin edges)."""
        k = int(math.ceil((threshold - self.lo) / self.width))
        k = min(max(k, 0), len(self.pos))
        tp = int(self.pos[k:].sum())
        fp = int(self.neg[k:].sum())
        for v, (p, n) in self.atoms.items():
            if v > threshold:
                tp += p
                fp += n
        return tp, fp


def average_precision(hist: ScoreHistogram) -> float:
    """Average precision (scikit-learn's definition) from a histogram; NaN without positives."""
    _, pos, neg = hist.points()
    total_pos = pos.sum()
    if total_pos == 0:
        return float("nan")
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    precision = tp / (tp + fp)
    recall_step = pos / total_pos
    return float(np.sum(recall_step * precision))


def pr_curve(hist: ScoreHistogram, max_points: int = 2000) -> dict[str, list[float]]:
    """Precision-recall curve (thinned to about max_points points) with the logit threshold of each point."""
    values, pos, neg = hist.points()
    total_pos = pos.sum()
    if total_pos == 0 or len(values) == 0:
        return {"threshold": [], "precision": [], "recall": []}
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    precision, recall = tp / (tp + fp), tp / total_pos
    # keep points spread in recall and precision, always the first and last
    keep = np.unique(
        np.concatenate(
            [
                np.searchsorted(recall, np.linspace(0, 1, max_points // 2)).clip(0, len(recall) - 1),
                np.linspace(0, len(recall) - 1, max_points // 2).astype(int),
            ]
        )
    )
    return {
        "threshold": values[keep].tolist(),
        "precision": precision[keep].tolist(),
        "recall": recall[keep].tolist(),
    }


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> tuple[dict[str, float], dict[str, str]]:
    """Dice, IoU, precision, recall from confusion counts; undefined values are NaN with a reason."""
    values: dict[str, float] = {}
    reasons: dict[str, str] = {}
    if tp + fn == 0:
        for name in ("dice", "iou", "recall"):
            values[name] = float("nan")
            reasons[name] = "ground truth is empty (no positive voxels)"
    else:
        values["dice"] = 2 * tp / (2 * tp + fp + fn)
        values["iou"] = tp / (tp + fp + fn)
        values["recall"] = tp / (tp + fn)
    if tp + fp == 0:
        values["precision"] = float("nan")
        reasons["precision"] = "prediction is empty (no positive voxels)"
    else:
        values["precision"] = tp / (tp + fp)
    return {k: values[k] for k in ("dice", "iou", "precision", "recall")}, reasons


def threshold_table(
    hist: ScoreHistogram, thresholds: tuple[float, ...] | list[float]
) -> list[dict[str, Any]]:
    """Dice/IoU/precision/recall of 'logit > t' for each t, from the histogram alone."""
    rows = []
    total_pos = hist.n_pos
    total = total_pos + hist.n_neg
    for t in thresholds:
        tp, fp = hist.counts_above(float(t))
        fn = total_pos - tp
        values, _ = scores_from_counts(tp, fp, fn, total - tp - fp - fn)
        rows.append({"threshold": float(t), "tp": tp, "fp": fp, "fn": fn, **values})
    return rows


def dice_at_edges(hist: ScoreHistogram) -> tuple[np.ndarray, np.ndarray]:
    """(edge thresholds, Dice of 'logit > edge') at every bin edge; atoms counted on their exact side."""
    edges = hist.lo + np.arange(len(hist.pos)) * hist.width
    tp = np.cumsum(hist.pos[::-1])[::-1].astype(np.float64)
    fp = np.cumsum(hist.neg[::-1])[::-1].astype(np.float64)
    for v, (p, n) in hist.atoms.items():
        above = edges < v
        tp[above] += p
        fp[above] += n
    total_pos = hist.n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2 * tp / (tp + fp + total_pos)
    return edges, dice


@dataclass
class Evaluation:
    """What `evaluate_volumes` measured: the JSON record and, with scores, the histogram."""

    record: dict[str, Any]
    histogram: ScoreHistogram | None


def to_logits(block: np.ndarray, kind: str, floor: float | None, path: Path, z: int) -> np.ndarray:
    """Scores of `kind` as float64 logits (etsam-logits raised to `floor`); non-finite or out-of-range is an InputError."""
    x = np.asarray(block, dtype=np.float64)
    if not np.isfinite(x).all():
        raise InputError(f"{path}: non-finite scores (NaN or inf) in slices starting at {z}")
    if kind == "probabilities":
        if x.min() < 0 or x.max() > 1:
            raise InputError(
                f"{path}: --score-kind probabilities needs values in [0, 1], found {x.min():g}..{x.max():g} near slice {z}"
            )
        with np.errstate(divide="ignore"):
            return np.log(x) - np.log1p(-x)
    if kind == "etsam-logits":
        if floor is None:
            raise ValueError("etsam-logits scores need the floor logit (minus the volume's maximum)")
        np.maximum(x, floor, out=x)
    return x


def max_of(data: np.ndarray, chunk: int) -> float:
    """The maximum of a memory-mapped volume, read Z-chunk by Z-chunk."""
    return float(max(np.max(data[z : z + chunk]) for z in range(0, data.shape[0], chunk)))


GEOMETRY_RTOL = 1e-3
"""Voxel sizes agree within this relative tolerance, origins within this fraction of a voxel."""


def check_geometry(
    pred_path: Path,
    pred_voxel: tuple[float, float, float],
    truth_path: Path,
    truth_voxel: tuple[float, float, float],
    strict: bool = False,
) -> str | None:
    """Compare the voxel size and origin of prediction and truth; warn (or with `strict`, refuse) when they differ.

    Equal shapes with another voxel size or origin mean the two volumes do not cover the same place (a
    binned prediction, a cropped or shifted truth): the scores would compare different voxels. Returns the
    message (None when they agree); a header without a voxel size (0) is not compared.
    """
    problems = []
    if all(v > 0 for v in (*pred_voxel, *truth_voxel)) and any(
        abs(a - b) > GEOMETRY_RTOL * max(a, b) for a, b in zip(pred_voxel, truth_voxel, strict=True)
    ):
        problems.append(f"voxel size {tuple(pred_voxel)} A vs {tuple(truth_voxel)} A")
    pred_origin, truth_origin = read_placement(pred_path).origin, read_placement(truth_path).origin
    scale = max([*pred_voxel, *truth_voxel, 1.0])
    if any(abs(a - b) > GEOMETRY_RTOL * scale for a, b in zip(pred_origin, truth_origin, strict=True)):
        problems.append(f"origin {pred_origin} A vs {truth_origin} A (z, y, x)")
    if not problems:
        return None
    message = (
        f"prediction {pred_path} and ground truth {truth_path} differ in {' and '.join(problems)}: "
        "they may not cover the same voxels"
    )
    if strict:
        raise InputError(f"{message} (refused: --strict-geometry)")
    log.warning("%s; scored voxel by voxel anyway (--strict-geometry refuses)", message)
    return message


def evaluate_volumes(
    pred_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    scores_path: str | os.PathLike | None = None,
    score_kind: str | None = None,
    thresholds: tuple[float, ...] | list[float] = DEFAULT_THRESHOLDS,
    chunk_voxels: int = 1 << 22,
    strict_geometry: bool = False,
) -> Evaluation:
    """Confusion counts, metrics and (with scores) the score histogram, reading Z-chunks of memory maps."""
    pred_path, truth_path = Path(pred_path), Path(truth_path)
    if scores_path is not None and score_kind not in SCORE_KINDS:
        raise ValueError(f"score_kind must be one of {SCORE_KINDS}, got {score_kind!r}")
    with open_volume(pred_path) as (pred, voxel_size), open_volume(truth_path) as (truth, truth_voxel):
        if pred.shape != truth.shape:
            raise InputError(
                f"shape mismatch: prediction {pred_path} has shape {pred.shape}, "
                f"ground truth {truth_path} has shape {truth.shape}"
            )
        geometry = check_geometry(pred_path, voxel_size, truth_path, truth_voxel, strict_geometry)
        chunk = max(1, chunk_voxels // (pred.shape[1] * pred.shape[2]))
        hist: ScoreHistogram | None = None
        floor: float | None = None
        # With scores: the histogram, the open score volume, its kind (valid, checked above) and its path.
        scored: tuple[ScoreHistogram, np.ndarray, str, Path] | None = None
        with contextlib.ExitStack() as stack:
            if scores_path is not None and score_kind is not None:
                hist = ScoreHistogram()
                scores, _ = stack.enter_context(open_volume(scores_path))
                if scores.shape != truth.shape:
                    raise InputError(
                        f"shape mismatch: scores {scores_path} have shape {scores.shape}, "
                        f"ground truth {truth_path} has shape {truth.shape}"
                    )
                if score_kind == "etsam-logits":
                    floor = -max_of(scores, chunk)
                scored = (hist, scores, score_kind, Path(scores_path))
            tp = fp = fn = 0
            n = 0
            for z in _progress(range(0, pred.shape[0], chunk), pred_path):
                p = nonzero_mask(pred[z : z + chunk], pred_path, z)
                t = nonzero_mask(truth[z : z + chunk], truth_path, z)
                n += p.size
                ptp = int(np.count_nonzero(p & t))
                tp += ptp
                fp += int(np.count_nonzero(p)) - ptp
                fn += int(np.count_nonzero(t)) - ptp
                if scored is not None:
                    into, scores, kind, where = scored
                    _accumulate(into, to_logits(scores[z : z + chunk], kind, floor, where, z), t, floor)
    tn = n - tp - fp - fn
    values, reasons = scores_from_counts(tp, fp, fn, tn)
    record: dict[str, Any] = {
        "pred": str(pred_path),
        "truth": str(truth_path),
        "shape": list(pred.shape),
        "voxel_size_zyx": list(voxel_size),
        "voxels": n,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        **values,
        "undefined": reasons,
    }
    if geometry is not None:
        record["geometry_warning"] = geometry
    if hist is not None:
        ap = average_precision(hist)
        record.update(
            {
                "scores": str(scores_path),
                "score_kind": score_kind,
                "score_floor_logit": floor,
                "auprc": ap,
                "histogram": {
                    "space": "logit",
                    "range": [-LOGIT_RANGE, LOGIT_RANGE],
                    "bins": NBINS,
                    "bin_width": BIN_WIDTH,
                    "atoms": {str(v): a for v, a in sorted(hist.atoms.items())},
                },
                "thresholds": threshold_table(hist, thresholds),
            }
        )
        if math.isnan(ap):
            reasons["auprc"] = "ground truth is empty (no positive voxels)"
        edges, dice = dice_at_edges(hist)
        if np.isfinite(dice).any():
            k = int(np.nanargmax(dice))
            record["best_threshold"] = {"threshold": float(edges[k]), "dice": float(dice[k])}
    return Evaluation(record, hist)


def _accumulate(hist: ScoreHistogram, x: np.ndarray, truth: np.ndarray, floor: float | None) -> None:
    idx = np.ceil((x - hist.lo) * (1.0 / hist.width)) - 1
    np.clip(idx, 0, len(hist.pos) - 1, out=idx)
    idx = idx.astype(np.int64).ravel()
    t = truth.ravel()
    all_counts = np.bincount(idx, minlength=len(hist.pos))
    pos_counts = np.bincount(idx[t], minlength=len(hist.pos))
    hist.pos += pos_counts
    hist.neg += all_counts - pos_counts
    # exact atoms: move these voxels out of their bin
    specials = [v for v in (floor, -np.inf, np.inf) if v is not None]
    for v in specials:
        eq = (x == v).ravel()
        n_eq = int(np.count_nonzero(eq))
        if not n_eq:
            continue
        p_eq = int(np.count_nonzero(eq & t))
        k = int(idx[np.flatnonzero(eq)[0]])
        hist.pos[k] -= p_eq
        hist.neg[k] -= n_eq - p_eq
        hist.add_atom(float(v), p_eq, n_eq - p_eq)


def _progress(iterable: range, path: Path) -> Iterable[int]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return iterable
    bar: Iterable[int] = tqdm(iterable, desc=f"evaluate {path.name}", unit="chunk", leave=False, disable=None)
    return bar


def evaluate_files(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    json_out: str | os.PathLike,
    scores: str | os.PathLike | None = None,
    score_kind: str | None = None,
    method: str | None = None,
    tomo: str | None = None,
    thresholds: tuple[float, ...] | list[float] = DEFAULT_THRESHOLDS,
    extra: dict[str, Any] | None = None,
    strict_geometry: bool = False,
    planes: PlaneOptions | None = None,
    orientation: ThetaOptions | None = None,
) -> dict[str, Any]:
    """Evaluate and write `json_out` (and the histogram beside it as `<stem>.hist.npz`).

    With `planes`, the record gets `plane_wise`; with `orientation`, `theta_wise` (and the truth's θ map
    where `orientation.theta_map` names a file).
    """
    from tomoseg.core.io import check_outputs, write_json

    theta_map = orientation.theta_map if orientation else None
    truth_theta = orientation.truth_theta if orientation else None
    check_outputs([json_out, histogram_path(json_out), theta_map], [pred, truth, scores, truth_theta])
    result = evaluate_volumes(pred, truth, scores, score_kind, thresholds, strict_geometry=strict_geometry)
    record = {"method": method, "tomo": tomo, "status": "ok", **(extra or {}), **result.record}
    record.update(extended_metrics(pred, truth, planes, orientation))
    if result.histogram is not None:
        hist_path = histogram_path(json_out)
        result.histogram.save(hist_path)
        record["histogram"]["file"] = hist_path.name
    write_json(json_out, record)
    return record


def extended_options(
    plane_wise: bool = False,
    plane_empty: str = "zero",
    theta_wise: bool = False,
    theta_bins: Sequence[float] = DEFAULT_BINS,
    theta_k: int = DEFAULT_K,
    truth_theta: str | os.PathLike | None = None,
) -> tuple[PlaneOptions | None, ThetaOptions | None]:
    """The plane-wise and theta-wise options from the workflow's settings (config evaluate.plane_wise, ...)."""
    planes = PlaneOptions(plane_empty) if plane_wise else None
    if not theta_wise:
        return planes, None
    return planes, ThetaOptions(tuple(theta_bins), theta_k, truth_theta=truth_theta)


def extended_metrics(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    planes: PlaneOptions | None,
    orientation: ThetaOptions | None,
) -> dict[str, Any]:
    """The plane-wise and theta-wise parts of a metrics record (empty when neither is asked for)."""
    out: dict[str, Any] = {}
    if planes is not None:
        out["plane_wise"] = plane_wise(pred, truth, planes.empty)
        out["plane_wise_empty_slices"] = planes.empty
    if orientation is not None:
        found = theta_wise(
            pred,
            truth,
            orientation.bins,
            orientation.k,
            orientation.theta_map,
            truth_theta=orientation.truth_theta,
        )
        out["theta_wise"] = found["bins"]
        out["theta_wise_unbinned"] = found["unbinned"]
        out["theta_wise_normals"] = {
            "method": "local PCA of the k nearest voxels and ties",
            "k": orientation.k,
        }
    return out


def histogram_path(json_path: str | os.PathLike) -> Path:
    """Where the histogram of a metrics JSON lives: `<dir>/<stem>.hist.npz`."""
    p = Path(json_path)
    return p.with_name(p.stem + ".hist.npz")


def evaluate_method_output(
    pred: str | os.PathLike,
    truth: str | os.PathLike,
    json_out: str | os.PathLike,
    scores: str | os.PathLike | None,
    score_kind: str | None,
    method: str,
    tomo: str,
    thresholds: tuple[float, ...] | list[float] = DEFAULT_THRESHOLDS,
    provenance: str | os.PathLike | None = None,
    record_failures: bool = False,
    planes: PlaneOptions | None = None,
    orientation: ThetaOptions | None = None,
) -> dict[str, Any]:
    """Workflow entry: evaluate one method's output and record whether it came from untrained weights.

    With `record_failures`, bad input (InputError) is written as a record with status "failed" and the
    reason (and an empty histogram) instead of failing the job, so that summaries can list it.
    """
    from tomoseg.core.io import write_json
    from tomoseg.core.provenance import trained_on, untrained_flag

    flag = untrained_flag(provenance)
    if flag is None:
        log.warning(
            "%s: no provenance.json with 'untrained' at %s; untrained status unknown", method, provenance
        )
    extra = {
        "untrained": flag,
        "trained_on": trained_on(provenance),
        "provenance": str(provenance) if provenance else None,
    }
    try:
        return evaluate_files(
            pred,
            truth,
            json_out,
            scores,
            score_kind,
            method=method,
            tomo=tomo,
            thresholds=thresholds,
            extra=extra,
            planes=planes,
            orientation=orientation,
        )
    except InputError as err:
        if not record_failures:
            raise
        log.error("%s %s: evaluation failed: %s", method, tomo, err)
        record = {"method": method, "tomo": tomo, "status": "failed", "reason": str(err), **extra}
        if scores is not None:
            ScoreHistogram().save(histogram_path(json_out))
        write_json(json_out, record)
        return record
