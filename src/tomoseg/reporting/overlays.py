"""Per-tomogram figures: slice overlays of each method's mask (TP/FP/FN where there is ground truth), mask
statistics and Dice along Z, drawn from files that stay memory-mapped.

The workflow's `overlay` rule and the nightly's run pages draw them; the summary figures are in
`tomoseg.reporting.figures`, whose `save` and `placeholder` these share.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.colors
import matplotlib.patches
import numpy as np

from tomoseg.core.methods import colour, label
from tomoseg.reporting.figures import placeholder, plt, save

CONFUSION_COLOURS = {"TP": "#009E73", "FP": "#D55E00", "FN": "#56B4E9"}


def overlay_views(shape: tuple[int, ...], n_xy: int = 3) -> list[tuple[str, int, int]]:
    """The slices an overlay draws: `n_xy` XY slices spread through Z (quartiles) and the central XZ slice.

    Each view is (name, axis, index) with axis 0 = XY at z=index, axis 1 = XZ at y=index.
    """
    nz, ny = shape[0], shape[1]
    zs = sorted({min(nz - 1, int(round(nz * (k + 1) / (n_xy + 1)))) for k in range(n_xy)})
    return [(f"XY, z={z}", 0, z) for z in zs] + [(f"XZ, y={ny // 2}", 1, ny // 2)]


def _cut(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """One slice of a (z, y, x) volume: XY (axis 0) or XZ (axis 1)."""
    return np.asarray(volume[index] if axis == 0 else volume[:, index, :])


def scale_bar_nm(width_px: int, pixel_nm: float) -> float:
    """A round scale-bar length in nm of about a fifth of the image width."""
    target = width_px * pixel_nm / 5
    nice = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000]
    return max([v for v in nice if v <= target] or [nice[0]])


def _draw_scale_bar(ax: plt.Axes, width_px: int, height_px: int, pixel_nm: float) -> None:
    """A white scale bar with its length in nm in the lower left corner of an image axis."""
    length_nm = scale_bar_nm(width_px, pixel_nm)
    length_px = length_nm / pixel_nm
    x0, y0 = 0.05 * width_px, 0.92 * height_px
    ax.plot([x0, x0 + length_px], [y0, y0], color="white", lw=3, solid_capstyle="butt")
    ax.text(
        x0 + length_px / 2,
        y0 - 0.03 * height_px,
        f"{length_nm:g} nm",
        color="white",
        ha="center",
        va="bottom",
        fontsize=7,
    )


def confusion_rgba(pred: np.ndarray, truth: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """An RGBA overlay of one slice: true positives, false positives and false negatives in their colours."""
    pred, truth = pred != 0, truth != 0
    rgba = np.zeros((*pred.shape, 4), np.float32)
    for name, where in (("TP", pred & truth), ("FP", pred & ~truth), ("FN", ~pred & truth)):
        rgba[where] = matplotlib.colors.to_rgba(CONFUSION_COLOURS[name], alpha)
    return rgba


def slice_overlays(
    tomogram: np.ndarray,
    masks: dict[str, np.ndarray],
    stem: str | os.PathLike,
    title: str,
    untrained: Iterable[str] | Mapping[str, str] = (),
    formats: Sequence[str] = ("png", "pdf"),
    truth: np.ndarray | None = None,
    voxel_size_nm: float | None = None,
) -> list[Path]:
    """Several XY slices through Z and the central XZ slice of the tomogram, each mask overlaid.

    With ground truth, each method's mask is drawn as true positives, false positives and false
    negatives; without, as a tint in the method's colour. A scale bar in nm when the voxel size is known.
    """
    nz, ny, nx = tomogram.shape
    views = overlay_views(tomogram.shape)
    panels: list[tuple[str, np.ndarray | None]] = [("tomogram", None)]
    if truth is not None:
        panels.append(("groundtruth", truth))
    panels += list(masks.items())
    xz_height = max(nz, ny // 4)
    fig, axes = plt.subplots(
        len(views),
        len(panels),
        figsize=(2.4 * len(panels), 2.4 * (len(views) - 1) + 2.4 * xz_height / ny + 0.9),
        squeeze=False,
        gridspec_kw={"height_ratios": [ny] * (len(views) - 1) + [xz_height]},
    )
    order = list(masks)
    for row, (vname, axis, index) in enumerate(views):
        img = _cut(tomogram, axis, index).astype(np.float32)
        lo, hi = np.percentile(img, [1, 99])
        truth_cut = _cut(truth, axis, index) if truth is not None else None
        for col, (name, mask) in enumerate(panels):
            ax = axes[row, col]
            aspect = "auto" if axis == 1 else "equal"
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect=aspect)
            if mask is not None:
                m = _cut(mask, axis, index) != 0
                if truth_cut is not None and name != "groundtruth":
                    rgba = confusion_rgba(m, truth_cut)
                else:
                    rgba = np.zeros((*m.shape, 4), np.float32)
                    tint = colour(name, order) if name != "groundtruth" else "#F0E442"
                    rgba[m] = matplotlib.colors.to_rgba(tint, 0.6)
                ax.imshow(rgba, interpolation="nearest", aspect=aspect)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(
                    label(name, untrained) if name not in ("tomogram", "groundtruth") else name, fontsize=9
                )
            if col == 0:
                ax.set_ylabel(vname)
                if voxel_size_nm:
                    _draw_scale_bar(ax, nx, img.shape[0], voxel_size_nm)
    handles = [matplotlib.patches.Patch(color=c, label=k) for k, c in CONFUSION_COLOURS.items()]
    if truth is not None and masks:
        fig.legend(handles=handles, loc="upper right", ncols=3, frameon=False, fontsize=9)
    fig.suptitle(title if voxel_size_nm else f"{title} (voxel size unknown: no scale bar)")
    fig.tight_layout()
    return save(fig, stem, formats)


def mask_statistics(masks: dict[str, np.ndarray], truth: np.ndarray | None = None) -> dict:
    """Mask fraction of each mask (and the truth) and, with truth, each method's Dice per Z slice.

    Reads one slice at a time (memory-mapped volumes). A slice where mask and truth are both empty has
    no Dice (None).
    """
    nz = next(iter(masks.values())).shape[0] if masks else (truth.shape[0] if truth is not None else 0)
    sums = {m: np.zeros(nz, np.int64) for m in masks}
    tps = {m: np.zeros(nz, np.int64) for m in masks}
    truth_sum = np.zeros(nz, np.int64)
    voxels = 0
    for z in range(nz):
        t = np.asarray(truth[z]) != 0 if truth is not None else None
        if t is not None:
            truth_sum[z] = int(t.sum())
        for m, vol in masks.items():
            p = np.asarray(vol[z]) != 0
            voxels = p.size * nz
            sums[m][z] = int(p.sum())
            if t is not None:
                tps[m][z] = int((p & t).sum())
    if truth is not None:
        voxels = int(np.prod(truth.shape))
    out: dict = {
        "slices": nz,
        "mask_fraction": {m: float(sums[m].sum()) / voxels if voxels else None for m in masks},
    }
    if truth is not None:
        out["truth_fraction"] = float(truth_sum.sum()) / voxels
        out["truth_per_slice"] = truth_sum.tolist()
        out["dice_z"] = {
            m: [
                (2 * float(tp) / float(ps + ts)) if ps + ts else None
                for tp, ps, ts in zip(tps[m], sums[m], truth_sum, strict=True)
            ]
            for m in masks
        }
    return out


def dice_along_z(
    stats: dict, stem: str | os.PathLike, title: str, untrained: Iterable[str] | Mapping[str, str] = ()
) -> list[Path]:
    """Dice of each method per Z slice (drift of slice-to-slice propagation shows as a trend along Z)."""
    if "dice_z" not in stats:
        return placeholder(f"{title}: no ground truth, so no Dice along Z", stem)
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    order = list(stats["dice_z"])
    z = np.arange(stats["slices"])
    for m, values in stats["dice_z"].items():
        y = np.array([np.nan if v is None else v for v in values], float)
        ax.plot(z, y, color=colour(m, order), lw=1.4, label=label(m, untrained))
    empty = np.array(stats["truth_per_slice"]) == 0
    if empty.any():  # slices without truth: Dice is only a false-positive count there
        ax.fill_between(z, 0, 1, where=empty, color="#dddddd", step="mid", label="no truth in slice")
    ax.set_xlabel("Z slice")
    ax.set_ylabel("Dice")
    ax.set_xlim(0, max(stats["slices"] - 1, 1))
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}: Dice along Z")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return save(fig, stem)


def overlay_files(
    tomogram: str | os.PathLike,
    masks: dict[str, str | os.PathLike],
    stem: str | os.PathLike,
    truth: str | os.PathLike | None = None,
    title: str | None = None,
    untrained: Iterable[str] | Mapping[str, str] = (),
    formats: Sequence[str] = ("png", "pdf"),
    dice_z_stem: str | os.PathLike | None = None,
    stats_json: str | os.PathLike | None = None,
) -> list[Path]:
    """Slice overlays from files (memory-mapped), and optionally the Dice-along-Z plot and mask statistics."""
    import contextlib

    from tomoseg.core.io import InputError, open_volume, write_json

    title = title or Path(tomogram).parent.name
    with contextlib.ExitStack() as stack:
        tomo, voxel_size = stack.enter_context(open_volume(tomogram))
        arrays = {}
        named = dict(masks)
        if truth is not None:
            named = {"groundtruth": truth, **named}
        for name, path in named.items():
            data, _ = stack.enter_context(open_volume(path))
            if data.shape != tomo.shape:
                raise InputError(
                    f"shape mismatch: {name} mask {path} has shape {data.shape}, tomogram {tomogram} has {tomo.shape}"
                )
            arrays[name] = data
        gt = arrays.pop("groundtruth", None)
        pixel_nm = voxel_size[2] / 10 if voxel_size[2] > 0 else None  # MRC voxel size is in Angstrom
        written = slice_overlays(
            tomo, arrays, stem, title, untrained, formats, truth=gt, voxel_size_nm=pixel_nm
        )
        if dice_z_stem is not None or stats_json is not None:
            stats = mask_statistics(arrays, gt)
            stats.update({"tomo": title, "shape": list(tomo.shape), "voxel_size_zyx": list(voxel_size)})
            if stats_json is not None:
                write_json(stats_json, stats)
                written.append(Path(stats_json))
            if dice_z_stem is not None:
                written += dice_along_z(stats, dice_z_stem, title, untrained)
        return written
