"""Make docs/images/phantom.png: the central slice of the demo phantom, raw and with its ground truth.

Run from the repository root: PYTHONPATH=src python docs/make_phantom_figure.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from PIL import Image  # noqa: E402

from tomoseg.acquisition.phantoms import make_phantom  # noqa: E402

TRUTH_COLOUR = "#E69F00"  # Okabe-Ito orange
DISTRACTOR_COLOUR = "#56B4E9"  # Okabe-Ito sky blue


def _palette() -> Image.Image:
    """A 256-colour palette: 192 greys, the two outline colours and their blends with grey."""
    colours = [(g, g, g) for g in np.linspace(0, 255, 192).round().astype(int)]
    for hex_colour in (TRUTH_COLOUR, DISTRACTOR_COLOUR):
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
        for w in np.linspace(1.0, 0.3, 8):
            for grey in (64, 192):
                colours.append(tuple(int(c) for c in (w * rgb + (1 - w) * grey).round()))
    flat = [c for rgb in colours[:256] for c in rgb]
    pal = Image.new("P", (1, 1))
    pal.putpalette(flat + [0] * (768 - len(flat)))
    return pal


def main() -> None:
    """Render the figure (seed 1, 64x256x256, 13.48 A, SNR 0.5 unless told otherwise)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images" / "phantom.png")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 256, 256])
    parser.add_argument("--voxel-size", type=float, default=13.48)
    parser.add_argument("--snr", type=float, default=0.5)
    args = parser.parse_args()

    p = make_phantom(args.seed, args.shape, args.voxel_size, args.snr)
    z = args.shape[0] // 2
    image = p.tomogram[z]
    lo, hi = np.percentile(image, [1, 99])
    fig, axes = plt.subplots(1, 2, figsize=(10, 5.3), constrained_layout=True)
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_axis_off()
    axes[0].set_title(f"phantom, slice z={z} (SNR {args.snr}, {args.voxel_size} Å/voxel)")
    axes[1].contour(p.truth[z], levels=[0.5], colors=[TRUTH_COLOUR], linewidths=0.9)
    axes[1].contour(
        p.distractors[z] > 0, levels=[0.5], colors=[DISTRACTOR_COLOUR], linewidths=0.9, linestyles="dashed"
    )
    axes[1].set_title("with ground-truth outline")
    axes[1].legend(
        handles=[
            Line2D([], [], color=TRUTH_COLOUR, label="membrane ground truth"),
            Line2D(
                [], [], color=DISTRACTOR_COLOUR, linestyle="dashed", label="distractors (not in ground truth)"
            ),
        ],
        loc="lower left",
        fontsize=8,
        framealpha=0.85,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    with Image.open(args.out) as im:  # a palette of greys + the two outline colours keeps the PNG < 300 KB
        im.convert("RGB").quantize(palette=_palette(), dither=Image.Dither.NONE).save(args.out, optimize=True)
    print(f"wrote {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
