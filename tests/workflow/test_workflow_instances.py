"""instances.write (issue 26 item 8): the dry run plans rule instances for each ETSAM method's mask, none for
the baselines, none when off; a bad min_voxels is refused by the schema."""

import re

import pytest
from snakemake_helpers import make_workdir, run_snakemake

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

METHODS = ["etsam", "etsam_postprocessed", "membrain"]


def planned_outputs(tmp_path, **instances):
    workdir = make_workdir(tmp_path, methods=METHODS, instances=instances)
    proc = run_snakemake(workdir, "-n", "--cores", "1", check=False)
    return proc, set(re.findall(r"results/\S+_instances\.\S+", proc.stdout))


def test_instances_planned_for_etsam_masks_only(tmp_path):
    proc, outputs = planned_outputs(tmp_path, write=True, min_voxels=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = {
        f"results/etsam/{tomo}/{mask}_instances.{ext}"
        for tomo in ("phantom-001", "phantom-002")
        for mask in ("mask", "mask_postprocessed")
        for ext in ("mrc", "provenance.json")
    }
    assert expected <= {o.rstrip(",") for o in outputs}, proc.stdout
    assert not any("membrain" in o for o in outputs)
    assert "rule instances" in proc.stdout or "localrule instances" in proc.stdout


def test_instances_off_by_default(tmp_path):
    proc, outputs = planned_outputs(tmp_path, write=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not outputs


def test_bad_min_voxels_refused(tmp_path):
    proc, _ = planned_outputs(tmp_path, write=True, min_voxels=0)
    assert proc.returncode != 0
    assert "min_voxels" in proc.stdout + proc.stderr
