"""Synthetic cryo-ET tomograms (phantoms) with membrane ground truth, for the offline demo and tests.

Geometry and conventions (see docs/phantoms.md):

- Arrays are (Z, Y, X); the beam is along Z at zero tilt and the tilt axis is Y. A tilt series over
  +-`tilt_range` degrees measures, by the central-slice theorem, every Fourier plane that contains the
  ky axis and the direction (kz, kx) = (-sin a, cos a) for |a| <= tilt_range. A coefficient (kz, ky, kx)
  is therefore missing when |kz| > tan(tilt_range) * |kx|: its direction, projected onto the kx-kz plane,
  lies within 90 - tilt_range degrees (30 for +-60) of the kz axis. It is a wedge extended along ky,
  not a cone. Signal and noise are both wedge-filtered, as in a weighted back-projection.
- Membranes are dark (negative), like CDP tomograms: the bilayer is two Gaussian leaflets 4 nm apart.
- SNR = variance of the noise-free tomogram / variance of the noise, both after the wedge filter,
  over the whole volume.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft as sfft

from tomoseg.core.io import write_json, write_volume
from tomoseg.core.provenance import provenance_record

log = logging.getLogger(__name__)

DISTRACTOR_LABELS: dict[str, int] = {"ice": 1, "carbon": 2, "gold": 3}
"""Values of `Phantom.distractors` (0 = no distractor)."""

LEAFLET_DISTANCE_A = 40.0  # head-group to head-group distance of a lipid bilayer
LEAFLET_SIGMA_A = 5.0  # Gaussian width of one leaflet's head-group density
MEMBRANE_AMPLITUDE = 1.0  # leaflet peak darkness (the unit of every other density)
MARGIN_A = 30.0  # minimum gap between unrelated objects (membrane bands, distractors)
NOISE_SIGMA_VOX = 0.5  # Gaussian roll-off of the noise spectrum (voxels): 0.29 of the white level at Nyquist
MIN_SIDE = 8


@dataclasses.dataclass
class Phantom:
    """One synthetic tomogram with its ground truth and the intermediate volumes tests measure."""

    tomogram: np.ndarray  # float32 (Z, Y, X): signal + noise, zero mean, unit std, membranes dark
    truth: np.ndarray  # uint8 0/1: membrane voxels (both leaflets and the gap between them)
    density: np.ndarray  # float32: clean object density (before wedge, blur and noise), leaflet peak = -1
    membranes: np.ndarray  # float32: the bilayer profiles alone (part of `density`)
    signal: np.ndarray  # float32: noise-free tomogram, scaled like `tomogram` (tomogram - signal = noise)
    distractors: np.ndarray  # uint8: DISTRACTOR_LABELS of ice, carbon and gold voxels (not in truth)
    params: dict[str, Any]
    objects: list[dict[str, Any]]
    measured_snr: float


def wedge_mask(shape: Sequence[int], tilt_range: float = 60.0) -> np.ndarray:
    """Boolean rfftn-layout mask (Z, 1, X//2+1), True where a +-tilt_range tilt series about Y measures."""
    nz, _, nx = shape
    kz = np.abs(sfft.fftfreq(nz))[:, None, None]
    kx = np.abs(sfft.rfftfreq(nx))[None, None, :]
    return ~(kz > math.tan(math.radians(tilt_range)) * kx)


class _Scene:
    """Accumulates membranes, lumen offsets, ground truth and an occupancy mask for non-overlap."""

    def __init__(self, shape: tuple[int, int, int], voxel_size: float):
        self.shape = shape
        self.v = voxel_size
        self.membrane = np.zeros(shape, np.float32)  # bilayer profiles (<= 0), combined by minimum
        self.offset = np.zeros(shape, np.float32)  # lumen / cytoplasm density offsets
        self.truth = np.zeros(shape, bool)
        self.occupied = np.zeros(shape, bool)  # truth bands widened by MARGIN_A
        self.leaflet_sigma = math.hypot(LEAFLET_SIGMA_A, voxel_size / math.sqrt(12))  # + voxel box width
        # ground truth: both leaflets out to their half maximum, and the gap (~5.5 nm at 13.48 A/voxel)
        half_max = LEAFLET_DISTANCE_A / 2 + math.sqrt(2 * math.log(2)) * self.leaflet_sigma
        self.half = max(half_max, 0.75 * voxel_size)

    def bbox(self, center_vox: np.ndarray, radius_a: float) -> tuple[slice, slice, slice] | None:
        """Slices of the volume within `radius_a` (+ band) of a centre, or None if it misses the volume."""
        r = (radius_a + self.half + MARGIN_A + 4 * self.leaflet_sigma) / self.v
        out = []
        for c, n in zip(center_vox, self.shape, strict=True):
            lo, hi = max(int(math.floor(c - r)), 0), min(int(math.ceil(c + r)) + 1, n)
            if hi <= lo:
                return None
            out.append(slice(lo, hi))
        return tuple(out)  # type: ignore[return-value]

    def fits(self, box: tuple[slice, slice, slice], d: np.ndarray) -> bool:
        """True when a membrane with signed distance `d` (Angstrom) keeps MARGIN_A from earlier ones."""
        return not np.any(self.occupied[box] & (np.abs(d) <= self.half))

    def add(self, box: tuple[slice, slice, slice], d: np.ndarray, lumen: float = 0.0) -> None:
        """Render one bilayer (two dark Gaussian leaflets) at the zero level of `d`, plus its lumen offset."""
        s = self.leaflet_sigma
        near = np.abs(d) < LEAFLET_DISTANCE_A / 2 + 5 * s
        dn = d[near]
        profile = -MEMBRANE_AMPLITUDE * (
            np.exp(-((dn - LEAFLET_DISTANCE_A / 2) ** 2) / (2 * s * s))
            + np.exp(-((dn + LEAFLET_DISTANCE_A / 2) ** 2) / (2 * s * s))
        )
        sub = self.membrane[box]
        sub[near] = np.minimum(sub[near], profile.astype(np.float32))
        self.truth[box] |= np.abs(d) <= self.half
        self.occupied[box] |= np.abs(d) <= self.half + MARGIN_A
        if lumen:
            # a soft step just inside the inner leaflet
            self.offset[box] += np.float32(lumen) / (1 + np.exp(np.clip((d + self.half) / 5.0, -50, 50)))


def _axes_a(box: tuple[slice, slice, slice], center: np.ndarray, v: float) -> list[np.ndarray]:
    """Float32 coordinates (Angstrom, relative to `center`) of a box along Z, Y and X, as 1-D arrays."""
    return [
        ((np.arange(b.start, b.stop) - c) * v).astype(np.float32) for b, c in zip(box, center, strict=True)
    ]


def _ellipsoid_sdf(
    box: tuple[slice, slice, slice], center: np.ndarray, axes_a: np.ndarray, angle: float, v: float
) -> np.ndarray:
    """Approximate signed distance (Angstrom, negative inside; exact for spheres) to an ellipsoid surface.

    The ellipsoid has semi-axes `axes_a` (z, y, x) and is rotated by `angle` about Z; the in-plane part
    is computed in 2-D so that a box costs only a few 3-D operations.
    """
    z, y, x = _axes_a(box, center, v)
    c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    qy = c * y[:, None] + s * x[None, :]  # body-frame in-plane coordinates
    qx = -s * y[:, None] + c * x[None, :]
    az, ay, ax = (float(a) for a in axes_a)
    k0 = np.sqrt((z[:, None, None] / az) ** 2 + ((qy / ay) ** 2 + (qx / ax) ** 2)[None])
    if az == ay == ax:
        return (k0 - 1) * np.float32(az)
    k1 = np.sqrt((z[:, None, None] / az**2) ** 2 + ((qy / ay**2) ** 2 + (qx / ax**2) ** 2)[None])
    return k0 * (k0 - 1) / np.maximum(k1, np.float32(1e-12))


def _plane_sdf(
    box: tuple[slice, slice, slice], point: np.ndarray, normal: np.ndarray, v: float
) -> np.ndarray:
    """Signed distance (Angstrom) to the plane through `point` (voxels) with unit `normal` (z, y, x)."""
    z, y, x = _axes_a(box, point, v)
    n = normal.astype(np.float32)
    return (n[0] * z)[:, None, None] + (n[1] * y[:, None] + n[2] * x[None, :])[None]


def _unit_xy(angle: float, tilt: float = 0.0) -> np.ndarray:
    """A unit (z, y, x) vector at `angle` in the XY plane, tilted by `tilt` radians towards Z."""
    return np.array([math.sin(tilt), math.cos(tilt) * math.sin(angle), math.cos(tilt) * math.cos(angle)])


def _place_membranes(
    scene: _Scene, rng: np.random.Generator, cell_angle: float, carbon_edge: np.ndarray
) -> list[dict[str, Any]]:
    """Cell envelope, a nearly parallel pair of sheets and a touching vesicle pair."""
    nz, ny, nx = scene.shape
    v = scene.v
    c0 = np.array([(nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2])
    half_field = min(ny, nx) / 2 * v  # Angstrom from the centre to the nearest XY edge
    objects: list[dict[str, Any]] = []
    full = (slice(0, nz), slice(0, ny), slice(0, nx))

    # 1. cell envelope: two concentric spherical membranes of a large cell crossing one side of the field
    radius = rng.uniform(1.5, 3.0) * 2 * half_field
    reach = rng.uniform(0.35, 0.6) * half_field
    gap = min(rng.uniform(200.0, 300.0), 0.3 * half_field)
    center = c0 + _unit_xy(cell_angle) * (reach + radius) / v
    d_outer = _ellipsoid_sdf(full, center, np.full(3, radius), 0.0, v)
    scene.add(full, d_outer, lumen=-0.05)
    scene.add(full, d_outer + gap, lumen=-0.07)
    objects.append(
        {"kind": "cell_envelope", "center_zyx_vox": center, "outer_radius_A": radius, "periplasm_A": gap}
    )

    # 2. a sheet and a nearly parallel second sheet (1-4 degrees apart, 10-25 nm spacing)
    for _ in range(50):
        # roughly parallel to the cell envelope (else they would cross it), on the far side of the centre
        angle = cell_angle + rng.uniform(-0.35, 0.35)
        n1 = _unit_xy(angle, rng.uniform(-0.3, 0.3))
        n2 = _unit_xy(angle + rng.uniform(1, 4) * math.pi / 180 * rng.choice([-1, 1]), math.asin(n1[0]))
        p1 = c0 - n1 * rng.uniform(0.0, 0.7) * half_field / v
        spacing = rng.uniform(100.0, 250.0)
        p2 = p1 + n1 * spacing / v
        d1, d2 = _plane_sdf(full, p1, n1, v), _plane_sdf(full, p2, n2, v)
        if scene.fits(full, d1) and scene.fits(full, d2):
            scene.add(full, d1)
            scene.add(full, d2)
            objects.append(
                {
                    "kind": "sheet_pair",
                    "point_zyx_vox": p1,
                    "normal_zyx": n1,
                    "normal2_zyx": n2,
                    "spacing_A": spacing,
                }
            )
            break

    # large membranes run into the carbon and are clipped there later; vesicles stay clear of it
    scene.occupied |= np.broadcast_to(carbon_edge > -(2 * scene.half + MARGIN_A), scene.shape)
    r_lo, r_hi = max(80.0, 0.12 * half_field), max(120.0, 0.3 * half_field)
    # 3. two spherical vesicles touching (outer bilayer edges 0-2 nm apart), side by side in XY
    for _ in range(200):
        r1, r2 = rng.uniform(r_lo, (r_lo + r_hi) / 2, size=2)
        u = _unit_xy(rng.uniform(0, 2 * math.pi))
        ca = c0 + (rng.uniform(-1, 1, 3) * (np.array([nz, ny, nx]) / 2 - 1)) * np.array([0.3, 0.6, 0.6])
        cb = ca + u * (r1 + r2 + 2 * scene.half + rng.uniform(0.0, 20.0)) / v
        members = []
        for c, r in ((ca, r1), (cb, r2)):
            box = scene.bbox(c, r)
            if box is None:
                break
            members.append((box, _ellipsoid_sdf(box, c, np.full(3, r), 0.0, v), c, r))
        if len(members) == 2 and all(scene.fits(b, d) for b, d, _, _ in members):
            for b, d, _, _ in members:
                scene.add(b, d, lumen=-0.03)
            objects += [
                {"kind": "vesicle_touching", "center_zyx_vox": c, "radii_zyx_A": np.full(3, r)}
                for _, _, c, r in members
            ]
            break

    return objects


def _place_vesicles(scene: _Scene, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Free vesicles in the remaining space: spheres and ellipsoids flattened in Z, several radii."""
    nz, ny, nx = scene.shape
    v = scene.v
    c0 = np.array([(nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2])
    half_field = min(ny, nx) / 2 * v
    r_lo, r_hi = max(80.0, 0.12 * half_field), max(120.0, 0.3 * half_field)
    objects: list[dict[str, Any]] = []
    wanted = int(np.clip(round((2 * half_field) ** 2 / 900.0**2), 3, 12))
    placed = 0
    for _ in range(wanted * 40):
        if placed >= wanted:
            break
        r = rng.uniform(r_lo, r_hi)
        axes = (
            np.full(3, r)
            if rng.random() < 0.4
            else r * np.array([rng.uniform(0.6, 0.9), rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.4)])
        )
        angle = rng.uniform(0, math.pi)
        c = c0 + rng.uniform(-1, 1, 3) * (np.array([nz, ny, nx]) / 2) * np.array([0.4, 0.95, 0.95])
        box = scene.bbox(c, float(axes.max()))
        if box is None:
            continue
        d = _ellipsoid_sdf(box, c, axes, angle, v)
        if not np.any(np.abs(d) <= scene.half) or not scene.fits(box, d):
            continue
        scene.add(box, d, lumen=float(rng.uniform(-0.08, 0.03)))
        objects.append({"kind": "vesicle", "center_zyx_vox": c, "radii_zyx_A": axes, "angle_about_z": angle})
        placed += 1
    return objects


def _soft_inside(d: np.ndarray, width: float) -> np.ndarray:
    """1 inside (d < 0), 0 outside, with a smooth edge of `width` Angstrom."""
    return (0.5 * (1 - np.tanh(d / width))).astype(np.float32)


def _carbon_edge(
    scene: _Scene, rng: np.random.Generator, away_angle: float
) -> tuple[np.ndarray, dict[str, Any]]:
    """Signed XY distance (Angstrom, (1, Y, X), > 0 on the carbon) to the edge of a large hole in a carbon film.

    The film lies beyond the edge on the side `away_angle` points to and runs through the whole
    reconstructed thickness (a thin slab in Z would sit mostly inside the missing wedge and vanish).
    """
    _, ny, nx = scene.shape
    v = scene.v
    c0 = np.array([0.0, (ny - 1) / 2, (nx - 1) / 2])
    half_field = min(ny, nx) / 2 * v
    hole_r = rng.uniform(3.0, 6.0) * 2 * half_field
    reach = rng.uniform(0.65, 0.85) * half_field
    u = _unit_xy(away_angle + rng.uniform(-math.pi / 4, math.pi / 4))
    hole_c = c0 - u * (hole_r - reach) / v
    _, y, x = _axes_a((slice(0, 1), slice(0, ny), slice(0, nx)), hole_c, v)
    d_edge = (np.sqrt(y[:, None] ** 2 + x[None, :] ** 2) - np.float32(hole_r))[None]
    return d_edge, {"kind": "carbon_edge", "hole_center_yx_vox": hole_c[1:], "hole_radius_A": hole_r}


def _place_distractors(
    scene: _Scene, rng: np.random.Generator, carbon_edge: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Carbon film, ice blobs and gold dots (dark, membrane-like contrast), kept off the membranes."""
    nz, ny, nx = scene.shape
    v = scene.v
    c0 = np.array([(nz - 1) / 2, (ny - 1) / 2, (nx - 1) / 2])
    half_field = min(ny, nx) / 2 * v
    density = np.zeros(scene.shape, np.float32)
    labels = np.zeros(scene.shape, np.uint8)
    objects: list[dict[str, Any]] = []

    # nothing biological lies over the carbon: membranes running into it are clipped, with a margin
    density += np.float32(-0.45) * _soft_inside(-carbon_edge, 8.0)
    labels[np.broadcast_to(carbon_edge >= 0, scene.shape)] = DISTRACTOR_LABELS["carbon"]
    column = np.broadcast_to(carbon_edge > -(scene.half + MARGIN_A), scene.shape)
    scene.membrane[column] = 0
    scene.offset[column] = 0
    scene.truth[column] = False
    scene.occupied |= np.broadcast_to(carbon_edge > -(2 * MARGIN_A), scene.shape)

    # ice blobs and gold fiducials, rejected where they would come within MARGIN_A of a membrane band
    area = (2 * half_field) ** 2
    kinds = [("ice", int(np.clip(round(area / 1500.0**2), 1, 4)))]
    kinds.append(("gold", int(np.clip(round(area / 1000.0**2), 2, 8))))
    for kind, count in kinds:
        placed = 0
        for _ in range(count * 60):
            if placed >= count:
                break
            if kind == "ice":
                axes = rng.uniform(max(60.0, 0.05 * half_field), max(90.0, 0.15 * half_field)) * rng.uniform(
                    0.7, 1.0, 3
                )
                amplitude, edge = -0.75, 10.0
            else:
                axes = np.full(3, 50.0)  # 10 nm gold
                amplitude, edge = -2.5, 4.0
            c = c0 + rng.uniform(-1, 1, 3) * (np.array([nz, ny, nx]) / 2) * np.array([0.5, 0.9, 0.9])
            box = scene.bbox(c, float(axes.max()))
            if box is None:
                continue
            d = _ellipsoid_sdf(box, c, axes, rng.uniform(0, math.pi), v)
            inside = d <= 0
            if (
                not inside.any()
                or np.any(scene.occupied[box] & (d <= MARGIN_A))
                or np.any(labels[box][d <= MARGIN_A])
            ):
                continue
            density[box] += np.float32(amplitude) * _soft_inside(d, edge)
            scene.occupied[box] |= d <= MARGIN_A
            labels[box][inside] = DISTRACTOR_LABELS[kind]
            objects.append({"kind": kind, "center_zyx_vox": c, "radii_zyx_A": axes})
            placed += 1
    return density, labels, objects


def _check_args(
    shape: Sequence[int], voxel_size: float, snr: float, tilt_range: float
) -> tuple[int, int, int]:
    if len(shape) != 3 or any(int(n) != n or n < MIN_SIDE for n in shape):
        raise ValueError(f"phantom shape must be three integers Z Y X, each >= {MIN_SIDE}; got {list(shape)}")
    if not (math.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"phantom voxel size must be a positive number of Angstrom; got {voxel_size}")
    if not (math.isfinite(snr) and snr > 0):
        raise ValueError(f"phantom SNR must be a positive number; got {snr}")
    if not 0 < tilt_range < 90:
        raise ValueError(f"tilt range must be between 0 and 90 degrees; got {tilt_range}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def make_phantom(
    seed: int,
    shape: Sequence[int] = (64, 256, 256),
    voxel_size: float = 13.48,
    snr: float = 0.5,
    *,
    tilt_range: float = 60.0,
    blur_sigma: float = 10.0,
    gradient: float = 0.3,
    noise_seed: int | None = None,
) -> Phantom:
    """Make a synthetic tomogram with membrane ground truth, deterministic by `seed` (and `noise_seed`).

    voxel_size and blur_sigma are in Angstrom; snr is signal variance / noise variance after the
    missing-wedge filter; gradient is the peak-to-peak amplitude of a slow in-plane density ramp
    (in units of the leaflet darkness); noise_seed (default: derived from seed) draws the noise alone.
    """
    shape3 = _check_args(shape, float(voxel_size), float(snr), float(tilt_range))
    v = float(voxel_size)
    rng = np.random.default_rng([int(seed), 0])
    noise_rng = np.random.default_rng([int(seed), 1, 0 if noise_seed is None else int(noise_seed) + 1])

    scene = _Scene(shape3, v)
    cell_angle = rng.uniform(0, 2 * math.pi)  # the cell lies on this side, the carbon film opposite
    carbon_edge, carbon = _carbon_edge(scene, rng, cell_angle + math.pi)
    membranes = _place_membranes(scene, rng, cell_angle, carbon_edge)
    distractor_density, distractors, others = _place_distractors(scene, rng, carbon_edge)
    membranes += _place_vesicles(scene, rng)
    others.insert(0, carbon)

    # slow in-plane density ramp (XY only: a Z ramp would sit mostly inside the missing wedge)
    nz, ny, nx = shape3
    ramp_dir = _unit_xy(rng.uniform(0, 2 * math.pi))
    yy, xx = np.ogrid[0:ny, 0:nx]
    ramp = ((yy - (ny - 1) / 2) * ramp_dir[1] + (xx - (nx - 1) / 2) * ramp_dir[2]) / (math.hypot(ny, nx) / 2)
    density = (
        scene.membrane
        + scene.offset
        + distractor_density
        + np.float32(gradient / 2) * ramp.astype(np.float32)
    )
    density = density.astype(np.float32)

    # reconstruction: blur (Gaussian resolution envelope) and missing wedge on the signal; the same
    # wedge on the noise (it passes through the same back-projection), which is white apart from a
    # mild roll-off towards Nyquist (reconstruction interpolation)
    kept = wedge_mask(shape3, tilt_range)
    kz = sfft.fftfreq(nz)[:, None, None]
    ky = sfft.fftfreq(ny)[None, :, None]
    kx = sfft.rfftfreq(nx)[None, None, :]
    blur = np.exp(-2 * math.pi**2 * (blur_sigma / v) ** 2 * (kz**2 + ky**2 + kx**2)).astype(np.float32)
    signal = sfft.irfftn(sfft.rfftn(density) * (blur * kept), s=shape3).astype(np.float32)
    white = noise_rng.standard_normal(shape3, dtype=np.float32)
    grain = np.exp(-2 * math.pi**2 * NOISE_SIGMA_VOX**2 * (kz**2 + ky**2 + kx**2)).astype(np.float32)
    noise = sfft.irfftn(sfft.rfftn(white) * (grain * kept), s=shape3).astype(np.float32)
    signal -= signal.mean(dtype=np.float64)
    noise -= noise.mean(dtype=np.float64)
    noise *= np.float32(
        math.sqrt(float(signal.var(dtype=np.float64)) / (snr * float(noise.var(dtype=np.float64))))
    )
    tomogram = signal + noise
    scale = np.float32(1.0 / float(tomogram.std(dtype=np.float64)))
    tomogram *= scale
    signal *= scale
    measured = float(signal.var(dtype=np.float64) / (tomogram - signal).var(dtype=np.float64))

    params = {
        "seed": int(seed),
        "noise_seed": noise_seed,
        "shape_zyx": list(shape3),
        "voxel_size_A": v,
        "snr_requested": float(snr),
        "tilt_range_deg": float(tilt_range),
        "tilt_axis": "Y",
        "beam_axis": "Z",
        "blur_sigma_A": float(blur_sigma),
        "gradient_peak_to_peak": float(gradient),
        "leaflet_distance_A": LEAFLET_DISTANCE_A,
        "leaflet_sigma_A": LEAFLET_SIGMA_A,
        "membrane_thickness_A": 2 * scene.half,
    }
    log.info(
        "phantom seed %d %s at %.2f A: %d objects, %.2f%% membrane voxels, SNR %.3f (requested %.3f)",
        seed,
        list(shape3),
        v,
        len(membranes) + len(others),
        100 * scene.truth.mean(),
        measured,
        snr,
    )
    return Phantom(
        tomogram=tomogram,
        truth=scene.truth.astype(np.uint8),
        density=density,
        membranes=scene.membrane,
        signal=signal,
        distractors=distractors,
        params=params,
        objects=membranes + others,
        measured_snr=measured,
    )


def write_phantom(out_dir: Path, seed: int, shape: Sequence[int], voxel_size: float, snr: float) -> None:
    """Write tomogram.mrc (float32), groundtruth.mrc (uint8 0/1) and phantom.json for one seed."""
    out_dir = Path(out_dir)
    phantom = make_phantom(seed, shape, voxel_size, snr)
    write_volume(
        out_dir / "tomogram.mrc", phantom.tomogram, float(voxel_size), label=f"tomoseg phantom seed {seed}"
    )
    write_volume(
        out_dir / "groundtruth.mrc",
        phantom.truth,
        float(voxel_size),
        label=f"tomoseg phantom truth seed {seed}",
    )
    record = {
        "parameters": phantom.params,
        "measured_snr": phantom.measured_snr,
        "snr_definition": "variance of the noise-free tomogram / variance of the noise, whole volume, after the missing-wedge filter",
        "wedge": f"Fourier coefficients with |kz| > tan({phantom.params['tilt_range_deg']} deg) * |kx| are zero (tilt axis Y, beam Z)",
        "truth_fraction": float(phantom.truth.mean()),
        "distractor_labels": DISTRACTOR_LABELS,
        "distractor_voxels": {
            k: int(np.count_nonzero(phantom.distractors == n)) for k, n in DISTRACTOR_LABELS.items()
        },
        "objects": phantom.objects,
        "provenance": provenance_record(
            "phantom", phantom.params, {}, packages=("tomoseg", "numpy", "scipy")
        ),
    }
    write_json(out_dir / "phantom.json", record)
    for name in ("tomogram.mrc", "groundtruth.mrc", "phantom.json"):
        log.info("wrote %s", out_dir / name)
