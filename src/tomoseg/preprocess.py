"""Intensity normalization of tomograms to [0, 1], as the ETSAM code feeds them to SAM2."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np

from tomoseg.core.io import InputError, check_outputs, read_placement, read_volume, write_json, write_volume
from tomoseg.core.presets import canonical_normalization
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)

NormalizationMode = Literal["max_positive", "minmax", "softplus_minmax"]
NORMALIZATION_MODES: tuple[str, ...] = ("max_positive", "minmax", "softplus_minmax")
SOFTPLUS_THRESHOLD = 20.0  # torch.nn.functional.softplus's default: x itself above it


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)) in float32, as torch.nn.functional.softplus (beta 1, threshold 20) computes it."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        soft = np.log1p(np.exp(np.minimum(x, np.float32(SOFTPLUS_THRESHOLD))))
    return np.where(x > np.float32(SOFTPLUS_THRESHOLD), x, soft).astype(np.float32, copy=False)


def normalize_volume(
    volume: np.ndarray, mode: NormalizationMode = "max_positive", name: str = "volume"
) -> np.ndarray:
    """Scale a tomogram to float32 in [0, 1].

    `max_positive` is the published ETSAM code (negatives clipped to 0, divided by the volume maximum);
    `minmax` is what the paper's text describes ((v - min) / (max - min)); `softplus_minmax` is the
    current upstream ETSAM option (softplus, then min-max over the volume). Upstream's name
    `min_max_positive_values` is accepted for `max_positive`. A constant, non-finite or (for
    `max_positive`) all-non-positive volume raises InputError naming `name`.
    """
    mode = canonical_normalization(mode)  # type: ignore[assignment]
    if volume.ndim != 3:
        raise InputError(f"{name}: expected a 3-D volume, found shape {volume.shape}")
    if volume.size == 0:
        raise InputError(f"{name}: empty volume (shape {volume.shape})")
    out = np.asarray(volume, dtype=np.float32).copy()
    if not np.isfinite(out).all():
        raise InputError(f"{name}: non-finite values (NaN or inf); cannot normalize")
    lo, hi = float(out.min()), float(out.max())
    if hi == lo:
        raise InputError(f"{name}: constant volume (every voxel is {lo}); cannot normalize")
    if mode == "max_positive":
        if hi <= 0:
            raise InputError(
                f"{name}: no positive voxel (max {hi}); the published ETSAM normalization clips negatives "
                "to 0 and divides by the maximum. Use normalization 'minmax' for such data"
            )
        np.maximum(out, 0, out=out)
        out /= np.float32(hi)
    elif mode == "minmax":
        out -= np.float32(lo)
        out /= np.float32(hi - lo)
    elif mode == "softplus_minmax":
        out = softplus(out)
        slo, shi = float(out.min()), float(out.max())
        if shi == slo:
            raise InputError(f"{name}: constant after softplus (range {lo:.4g}..{hi:.4g}); cannot normalize")
        out -= np.float32(slo)
        out /= np.float32(shi - slo)
    else:
        raise ValueError(f"unknown normalization mode {mode!r}; choose one of {NORMALIZATION_MODES}")
    positive_fraction = float(np.count_nonzero(out > 0)) / out.size
    log.info(
        "%s: normalized with %s (input range %.4g..%.4g, %.1f%% voxels > 0)",
        name,
        mode,
        lo,
        hi,
        100 * positive_fraction,
    )
    return out


def normalize_file(tomogram: Path, out: Path, mode: str) -> None:
    """Normalize one MRC tomogram into `out` (float32) with a provenance record beside it."""
    mode = canonical_normalization(mode)
    check_outputs([out, out.with_suffix(".json")], [tomogram])
    volume, voxel_size = read_volume(tomogram)
    normalized = normalize_volume(volume, mode, name=str(tomogram))  # type: ignore[arg-type]
    write_volume(out, normalized, voxel_size, placement=read_placement(tomogram))
    write_json(
        out.with_suffix(".json"),
        provenance_record("normalize", {"mode": mode}, {"tomogram": str(tomogram)}, shape=list(volume.shape)),
    )
    log.info("wrote %s (%s)", out, mode)
    log.info("wrote %s", out.with_suffix(".json"))
