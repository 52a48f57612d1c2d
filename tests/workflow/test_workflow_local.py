"""The `local` source: a user's own MRC files run through the real workflow (import + normalize)."""

import numpy as np
import pytest
from snakemake_helpers import make_workdir, run_snakemake

from tomoseg.core.io import read_json, read_mask, read_volume, write_volume

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"


@pytest.fixture
def local_workdir(tmp_path):
    rng = np.random.default_rng(5)
    tomogram = rng.normal(size=(6, 24, 20)).astype(np.float32)
    truth = np.zeros((6, 24, 20), np.uint8)
    truth[:, 5:8] = 255  # an unsigned 0/255 mask, as some tools write them
    write_volume(tmp_path / "mine.mrc", tomogram, (7.0, 7.0, 7.0))
    write_volume(tmp_path / "mine_truth.mrc", truth.astype(np.float32), (7.0, 7.0, 7.0))
    (tmp_path / "broken.mrc").write_text("<html>Not Found</html>")
    workdir = make_workdir(tmp_path, methods=[])
    (workdir / "config" / "runs_local.tsv").write_text(
        HEADER
        + f"mine\tlocal\t\t\t\t{tmp_path / 'mine.mrc'}\t{tmp_path / 'mine_truth.mrc'}\tlocal\ttest\n"
        + f"broken\tlocal\t\t\t\t{tmp_path / 'broken.mrc'}\t\tnone\ttest\n"
    )
    return workdir, tomogram


def test_local_tomogram_and_truth_are_imported_and_normalized(local_workdir):
    workdir, tomogram = local_workdir
    proc = run_snakemake(
        workdir, "--cores", "1", "--keep-going", "--config", "runs=config/runs_local.tsv", check=False
    )
    assert proc.returncode != 0, "the broken row must fail the run"
    data = workdir / "results" / "data"
    normalized, voxel_size = read_volume(data / "mine" / "normalized.mrc")
    expected = np.clip(tomogram, 0, None) / tomogram.max()
    np.testing.assert_allclose(normalized, expected, atol=1e-6)
    assert voxel_size == pytest.approx((7.0,) * 3)
    truth, _ = read_mask(data / "mine" / "groundtruth.mrc")
    assert truth.dtype == np.uint8 and set(np.unique(truth)) == {0, 1} and truth.sum() == 6 * 3 * 20
    assert read_json(data / "mine" / "tomogram.source.json")["sha256"]
    # The broken file fails its own job with a message naming it, and leaves nothing that looks finished.
    assert not (data / "broken" / "tomogram.mrc").exists()
    log = (workdir / "results" / "logs" / "import_local_tomogram" / "broken.log").read_text()
    assert "broken.mrc: not an MRC file (looks like an HTML/XML page" in log


def test_mismatched_local_truth_stops_the_tomogram_before_any_compute(tmp_path):
    """Issue 13: ETSAM ran on a tomogram whose local ground truth had another shape; now its import fails."""
    write_volume(tmp_path / "tomo.mrc", np.zeros((6, 24, 20), np.float32) + 1, 7.0)
    write_volume(tmp_path / "truth.mrc", np.zeros((6, 20, 24), np.uint8), 7.0)
    workdir = make_workdir(tmp_path, methods=[])
    (workdir / "config" / "runs_local.tsv").write_text(
        HEADER + f"pair\tlocal\t\t\t\t{tmp_path / 'tomo.mrc'}\t{tmp_path / 'truth.mrc'}\tlocal\ttest\n"
    )
    proc = run_snakemake(workdir, "--cores", "1", "--config", "runs=config/runs_local.tsv", check=False)
    assert proc.returncode != 0
    data = workdir / "results" / "data" / "pair"
    assert not (data / "tomogram.mrc").exists() and not (data / "normalized.mrc").exists()
    # both import jobs check the pair; whichever Snakemake ran first stops the tomogram
    logs = workdir / "results" / "logs"
    text = "".join(
        path.read_text()
        for rule in ("import_local_tomogram", "import_local_truth")
        if (path := logs / rule / "pair.log").exists()
    )
    assert "truth.mrc: ground truth shape (6, 20, 24) differs from its tomogram" in text


def test_an_ome_zarr_tomogram_is_imported_at_the_configured_level_and_normalized(tmp_path):
    pytest.importorskip("ome_zarr")
    from tomoseg.core.io import read_placement
    from tomoseg.core.omezarr import write_ome_zarr

    tomogram = np.random.default_rng(6).normal(size=(8, 24, 20)).astype(np.float32)
    write_ome_zarr(tmp_path / "mine.zarr", tomogram, 7.0, origin=(70.0, 140.0, 210.0), levels=2)
    workdir = make_workdir(tmp_path, methods=[])
    (workdir / "config" / "runs_zarr.tsv").write_text(
        HEADER + f"zarr\tlocal\t\t\t\t{tmp_path / 'mine.zarr'}\t\tnone\ttest\n"
    )
    with open(workdir / "config" / "config.yaml", "a") as config:
        config.write("\nome_zarr: {voxel_size: 14.0}\n")
    run_snakemake(workdir, "--cores", "1", "--config", "runs=config/runs_zarr.tsv")
    data = workdir / "results" / "data" / "zarr"
    normalized, voxel_size = read_volume(data / "normalized.mrc")
    assert normalized.shape == (4, 12, 10) and voxel_size == pytest.approx((14.0,) * 3)
    assert read_placement(data / "normalized.mrc").origin == pytest.approx((73.5, 143.5, 213.5))
    assert read_json(data / "tomogram.source.json")["parameters"]["target_voxel_size"] == 14.0
