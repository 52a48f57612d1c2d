"""Synthetic tomograms: measured properties (wedge, SNR, bilayer profile, distractors, truth), files, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tomoseg.acquisition.phantoms import DISTRACTOR_LABELS, Phantom, make_phantom, write_phantom
from tomoseg.cli import main
from tomoseg.core.io import read_header, read_mask, read_volume
from tomoseg.preprocess import normalize_volume

SHAPE = (32, 128, 128)
VOXEL = 13.48
SNR = 0.5


@pytest.fixture(scope="module", params=[1, 2, 3])  # the demo's seeds
def phantom(request) -> Phantom:
    return make_phantom(request.param, SHAPE, VOXEL, SNR)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "p1"
    write_phantom(out, seed=1, shape=list(SHAPE), voxel_size=VOXEL, snr=SNR)
    return out


def _missing(shape: tuple[int, int, int], tilt: float = 60.0, around: str = "kz") -> np.ndarray:
    """Full-FFT mask of directions whose projection onto the kx-kz plane is within 90-tilt deg of an axis.

    Written independently of tomoseg.acquisition.phantoms: a tilt series about Y over +-tilt measures the central
    planes normal to the beam, i.e. directions in the kx-kz plane up to `tilt` from kx.
    """
    nz, ny, nx = shape
    kz = np.fft.fftfreq(nz)[:, None, None] / VOXEL
    kx = np.fft.fftfreq(nx)[None, None, :] / VOXEL
    angle_from_kz = np.degrees(np.arctan2(np.abs(kx), np.abs(kz)))  # 0 on the kz axis, 90 on kx
    if around == "kx":
        angle_from_kz = 90 - angle_from_kz
    mask = (angle_from_kz < 90 - tilt) & ~((kz == 0) & (kx == 0))  # the ky axis is measured at every tilt
    return np.broadcast_to(mask, shape)


def _wedge_power_ratio(volume: np.ndarray, around: str = "kz") -> float:
    power = np.abs(np.fft.fftn(volume.astype(np.float64))) ** 2
    power[0, 0, 0] = 0  # the mean
    inside = _missing(volume.shape, around=around)
    return float(power[inside].sum() / power[~inside].sum())


def test_files_shapes_dtypes_and_header(written):
    tomo, vs = read_volume(written / "tomogram.mrc")
    truth, vs_truth = read_mask(written / "groundtruth.mrc")
    assert tomo.shape == SHAPE and truth.shape == SHAPE
    assert tomo.dtype == np.float32
    assert read_header(written / "groundtruth.mrc")[1] == np.int8  # masks are MRC mode 0
    assert truth.dtype == np.uint8
    assert set(np.unique(truth)) == {0, 1}
    assert vs == pytest.approx((VOXEL,) * 3, rel=1e-6) and vs_truth == pytest.approx((VOXEL,) * 3, rel=1e-6)
    assert read_header(written / "tomogram.mrc")[0] == SHAPE
    # the files hold exactly what make_phantom returns for the same seed
    same = make_phantom(1, SHAPE, VOXEL, SNR)
    assert same.truth.dtype == np.uint8
    np.testing.assert_array_equal(tomo, same.tomogram)
    np.testing.assert_array_equal(truth, same.truth)
    record = json.loads((written / "phantom.json").read_text())
    assert record["parameters"]["seed"] == 1 and record["parameters"]["shape_zyx"] == list(SHAPE)
    assert record["measured_snr"] == pytest.approx(same.measured_snr)
    kinds = {o["kind"] for o in record["objects"]}
    assert {
        "cell_envelope",
        "sheet_pair",
        "vesicle_touching",
        "vesicle",
        "carbon_edge",
        "ice",
        "gold",
    } <= kinds
    assert not list(written.glob(".*part"))  # no temporary files left behind


def test_deterministic_by_seed(phantom):
    seed = phantom.params["seed"]
    again = make_phantom(seed, SHAPE, VOXEL, SNR)
    np.testing.assert_array_equal(again.tomogram, phantom.tomogram)
    np.testing.assert_array_equal(again.truth, phantom.truth)
    np.testing.assert_array_equal(again.distractors, phantom.distractors)
    other = make_phantom(seed + 10, SHAPE, VOXEL, SNR)
    assert not np.array_equal(other.truth, phantom.truth)
    assert np.abs(other.tomogram - phantom.tomogram).mean() > 0.5


def test_polarity_and_range_like_cdp(phantom):
    t = phantom.tomogram
    assert t.dtype == np.float32
    assert abs(float(t.mean())) < 1e-3 and float(t.std()) == pytest.approx(1.0, rel=1e-3)
    assert t.min() < -3 and t.max() > 3  # noise tails on both sides of zero
    assert float(np.mean(phantom.density[phantom.truth == 1])) < -0.3  # membranes are dense = dark


def test_missing_wedge_power_below_one_percent(phantom):
    # measured on the final tomogram (signal + noise: the noise goes through the same back-projection)
    ratio = _wedge_power_ratio(phantom.tomogram)
    assert ratio < 0.01, ratio
    assert _wedge_power_ratio(phantom.signal) < 0.01
    # the measurement can fail: before the wedge the object has wedge power, and a wedge of the same
    # size around kx (the wrong axis) holds plenty of power in the final tomogram
    assert _wedge_power_ratio(phantom.density) > 0.02
    assert _wedge_power_ratio(phantom.tomogram, around="kx") > 0.1


@pytest.mark.parametrize("snr", [0.2, 0.5, 2.0])
def test_measured_snr_within_20_percent(snr):
    p = make_phantom(5, SHAPE, VOXEL, snr)
    noise = p.tomogram.astype(np.float64) - p.signal
    measured = float(np.var(p.signal.astype(np.float64)) / np.var(noise))
    assert measured == pytest.approx(snr, rel=0.2)
    # independent estimate from data alone: two noise realizations of the same object; their
    # correlation is S / (S + N), so SNR = rho / (1 - rho)
    q = make_phantom(5, SHAPE, VOXEL, snr, noise_seed=7)
    np.testing.assert_array_equal(q.truth, p.truth)
    rho = float(np.corrcoef(p.tomogram.ravel(), q.tomogram.ravel())[0, 1])
    assert rho / (1 - rho) == pytest.approx(snr, rel=0.2)


def test_bilayer_has_two_dark_leaflets_4nm_apart(phantom):
    spheres = [
        o for o in phantom.objects if o["kind"].startswith("vesicle") and np.ptp(o["radii_zyx_A"]) == 0
    ]
    assert spheres, "no spherical vesicle in the phantom"
    zz, yy, xx = np.indices(SHAPE)
    best = (0.0, None)
    for o in spheres:  # the most intact sphere: the largest share of its mid-plane in the ground truth
        c, radius = o["center_zyx_vox"], float(o["radii_zyx_A"][0])
        offset = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) * VOXEL - radius
        mid = np.abs(offset) < 10
        intact = phantom.truth[mid].mean() if mid.sum() >= 200 else 0.0
        if intact > best[0]:
            best = (intact, offset)
    assert best[0] > 0.5, "no intact spherical vesicle"
    offset = best[1]
    near = np.abs(offset) < 60
    # radial profile of the clean density along the membrane normals, in 2 A bins; the median of each
    # bin ignores the minority of directions where a neighbour touches or the carbon clipped the vesicle
    edges = np.arange(-60.0, 60.1, 2.0)
    which = np.digitize(offset[near], edges) - 1
    values = phantom.density[near]
    profile = np.array([np.median(values[which == i]) for i in range(len(edges) - 1)])
    centres = (edges[:-1] + edges[1:]) / 2
    minima = [
        i for i in range(1, len(profile) - 1) if profile[i] < profile[i - 1] and profile[i] <= profile[i + 1]
    ]
    two = sorted(sorted(minima, key=lambda i: profile[i])[:2])
    assert len(two) == 2, profile
    distance = centres[two[1]] - centres[two[0]]
    assert distance == pytest.approx(40.0, abs=5.0), (distance, profile)  # ~4 nm head-group to head-group
    background = np.median(profile[(np.abs(centres) > 45)])
    depth = background - profile[two].max()
    assert depth > 0.5, profile  # both leaflets dense (dark)
    gap = profile[two[0] : two[1] + 1].max()
    assert gap - profile[two].max() > 0.5 * depth, profile  # a lighter gap between them


def test_truth_aligned_with_dark_membranes(phantom):
    t, truth = phantom.tomogram, phantom.truth.astype(bool)
    assert float(t[truth].mean()) < float(t[~truth].mean()) - 0.3
    assert float(phantom.density[truth].mean()) < float(phantom.density[~truth].mean()) - 0.3
    # the truth band holds every voxel where the bilayer is darker than half its peak, and little else
    assert truth[phantom.membranes < -0.5].mean() > 0.999
    assert float(phantom.membranes[~truth].min()) > -0.6
    assert float(phantom.membranes[truth].mean()) < -0.4


def test_distractors_dark_like_membranes_and_absent_from_truth(phantom):
    truth = phantom.truth.astype(bool)
    assert not np.any(truth & (phantom.distractors > 0))
    background = np.median(phantom.signal[~truth & (phantom.distractors == 0)])
    membrane = background - float(phantom.signal[truth].mean())
    assert membrane > 0
    for kind, label in DISTRACTOR_LABELS.items():
        where = phantom.distractors == label
        assert where.any(), f"no {kind} in the phantom"
        ratio = (background - float(phantom.signal[where].mean())) / membrane
        if kind == "gold":
            assert ratio > 1.0, (kind, ratio)  # gold is darker than membranes, as in real tomograms
        else:
            assert 0.5 < ratio < 2.0, (kind, ratio)


def test_normalize_max_positive_on_phantom(phantom):
    out = normalize_volume(phantom.tomogram, "max_positive")
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert 0.3 < float(np.mean(out == 0)) < 0.7  # about half the voxels (the dark side) clip to 0
    truth = phantom.truth.astype(bool)
    assert float(out[truth].mean()) < 0.5 * float(out[~truth].mean())  # membranes stay dark


def test_odd_small_shape():
    p = make_phantom(3, (9, 33, 20), 20.0, 1.0)
    assert p.tomogram.shape == (9, 33, 20) and p.truth.shape == (9, 33, 20)
    assert np.isfinite(p.tomogram).all()
    assert _wedge_power_ratio(p.tomogram) < 0.01


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"shape": (32, 128)}, "three integers"),
        ({"shape": (4, 128, 128)}, ">= 8"),
        ({"voxel_size": 0.0}, "voxel size"),
        ({"snr": -1.0}, "SNR"),
        ({"snr": math.nan}, "SNR"),
    ],
)
def test_bad_parameters_raise(kwargs, message):
    args = {"seed": 0, "shape": SHAPE, "voxel_size": VOXEL, "snr": SNR} | kwargs
    with pytest.raises(ValueError, match=message):
        make_phantom(**args)


def test_cli_writes_phantom(tmp_path):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "phantom",
                "--out",
                str(out),
                "--seed",
                "4",
                "--shape",
                "16",
                "48",
                "40",
                "--voxel-size",
                "10",
                "--snr",
                "1",
            ]
        )
        == 0
    )
    tomo, vs = read_volume(out / "tomogram.mrc")
    assert tomo.shape == (16, 48, 40) and vs == pytest.approx((10.0, 10.0, 10.0))
    assert json.loads((out / "phantom.json").read_text())["parameters"]["snr_requested"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shape", "16", "48"], "--shape"),
        (["--shape", "16", "48", "x"], "expected an integer"),
        (["--shape", "16", "48", "4"], "at least 8"),
        (["--shape", "16", "48", "40", "--snr", "0"], "--snr"),
        (["--shape", "16", "48", "40", "--voxel-size", "-2"], "--voxel-size"),
    ],
)
def test_cli_bad_arguments(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["phantom", "--out", str(tmp_path / "bad"), "--seed", "1", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
