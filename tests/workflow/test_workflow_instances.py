"""instances.write (issue 26 item 8): the dry run plans rule instances for each ETSAM method's mask, none for
the baselines, none when off; a bad min_voxels is refused by the schema; the rule runs on a mask."""

import re

import numpy as np
import pytest
from snakemake_helpers import make_workdir, run_snakemake

from tomoseg.core.io import read_json, read_volume, write_volume

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


def test_rule_instances_runs_on_a_mask(tmp_path):
    workdir = make_workdir(tmp_path, methods=METHODS, instances={"write": True, "min_voxels": 3})
    mask = np.zeros((6, 8, 8), dtype=np.uint8)
    mask[0:2, 0:2, 0:2] = 1  # 8 voxels
    mask[3, 5, 5] = mask[4, 6, 6] = mask[5, 7, 7] = 1  # a corner-touching chain of 3
    mask[0, 7, 0] = 1  # 1 voxel: dropped
    write_volume(workdir / "results/etsam/phantom-001/mask.mrc", mask, 10.0)
    target = "results/etsam/phantom-001/mask_instances.mrc"
    run_snakemake(workdir, "--cores", "1", "--allowed-rules", "instances", "--", target)
    labels, _ = read_volume(workdir / target)
    assert labels[0:2, 0:2, 0:2].min() == 1 and labels[5, 7, 7] == 2 and labels[0, 7, 0] == 0
    record = read_json(workdir / "results/etsam/phantom-001/mask_instances.provenance.json")
    assert record["sizes"] == [8, 3]
