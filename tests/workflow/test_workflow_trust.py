"""Issue 13 at the workflow's door: each bad config or runs sheet stops Snakemake before any job runs,
with one message that names the sheet or the key."""

import pytest
from snakemake_helpers import make_workdir, run_snakemake

pytestmark = pytest.mark.workflow  # runs Snakemake: left out of `make check`

HEADER = "tomo\tsource\tdataset_id\trun_id\ttomogram_id\tpath\ttruth_path\ttruth\tsplit\n"
ROW = "p1\tphantom\t\t1\t\t\t\tphantom\ttest\n"


def _dry_run(workdir, *config):
    proc = run_snakemake(
        workdir, "-n", "--cores", "1", *(("--config", *config) if config else ()), check=False
    )
    return proc.returncode, proc.stdout + proc.stderr


def _sheet(workdir, text):
    (workdir / "config" / "runs_t.tsv").write_text(text)
    return "runs=config/runs_t.tsv"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            HEADER.replace("\n", "\tnotes\n") + ROW.replace("\n", "\thello\n"),
            "unknown: ['notes'], missing: []",
        ),
        (HEADER + ROW.replace("\n", "\tstray\n"), "not a readable runs sheet"),
        (HEADER, "the runs sheet has no rows"),
        ("", "the runs sheet has no rows"),
    ],
    ids=["extra-column", "ragged-row", "header-only", "empty-file"],
)
def test_runs_sheet_shape_is_checked_naming_the_sheet(tmp_path, text, needle):
    workdir = make_workdir(tmp_path)
    code, output = _dry_run(workdir, _sheet(workdir, text))
    assert code != 0 and "config/runs_t.tsv: " in output and needle in output, output[-2000:]
    assert "Job stats" not in output  # refused before the DAG


def test_over_long_tomo_key_is_refused_by_the_schema(tmp_path):
    workdir = make_workdir(tmp_path)
    code, output = _dry_run(workdir, _sheet(workdir, HEADER + "p" * 300 + ROW[2:]))
    assert code != 0 and "config/runs_t.tsv: invalid runs sheet" in output and "is too long" in output
    assert "PeriodicWildcardError" not in output and "File name too long" not in output


def test_unknown_device_is_refused_before_any_job(tmp_path):
    workdir = make_workdir(tmp_path, methods=["etsam"])
    settings = workdir / "config" / "config.yaml"
    settings.write_text(settings.read_text().replace("device: cpu", "device: gpu0", 1))
    code, output = _dry_run(workdir)
    assert code != 0 and "invalid configuration" in output and "'gpu0' does not match" in output
    assert "Job stats" not in output


def test_paths_checkpoints_without_paths_name_the_keys(tmp_path):
    workdir = make_workdir(tmp_path, methods=["etsam"])
    settings = workdir / "config" / "config.yaml"
    settings.write_text(settings.read_text().replace("checkpoints: test", "checkpoints: paths", 1))
    code, output = _dry_run(workdir)
    assert code != 0 and "etsam.checkpoints is 'paths' but etsam.stage1_checkpoint and" in output
    assert "have to be specified as strings" not in output
