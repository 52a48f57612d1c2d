"""The workflow trains: `snakemake train` plans the training phantoms and one GPU training job, and the
method etsam_trained segments the selected runs with the trained checkpoints."""

from snakemake_helpers import make_workdir, run_snakemake

TRAINING = {"runs": "config/demo/train_runs.tsv", "preset": "demo", "device": "cpu"}


def _jobs(stdout: str) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table."""
    table = stdout.split("Job stats:")[1].split("\n\n")[0]
    counts = {}
    for line in table.splitlines()[3:]:
        name, _, count = line.rpartition(" ")
        if count.isdigit():
            counts[name.strip()] = int(count)
    return counts


def test_train_target_plans_the_training_phantoms_and_one_training_job(tmp_path):
    workdir = make_workdir(tmp_path, training=TRAINING)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "train")
    jobs = _jobs(proc.stdout)
    assert jobs["training_phantom"] == 4 and jobs["train_etsam"] == 1
    assert "etsam_trained_stage1" not in jobs
    assert "results/training/etsam_stage2.pt" in proc.stdout


def test_etsam_trained_segments_the_selected_runs_with_the_trained_model(tmp_path):
    workdir = make_workdir(tmp_path, training=TRAINING, methods=["etsam", "etsam_trained"])
    proc = run_snakemake(workdir, "-n", "--cores", "1")
    jobs = _jobs(proc.stdout)
    assert jobs["train_etsam"] == 1
    assert jobs["etsam_trained_stage1"] == jobs["etsam_trained_stage2"] == jobs["etsam_stage1"] == 2
    assert "results/etsam_trained/phantom-001/mask.mrc" in proc.stdout
    assert jobs["training_curves"] == 1  # the loss and validation curves go into the report


def test_train_without_a_training_sheet_says_so(tmp_path):
    workdir = make_workdir(tmp_path)
    proc = run_snakemake(workdir, "-n", "--cores", "1", "train", check=False)
    assert proc.returncode != 0
    assert "training.runs" in proc.stdout + proc.stderr
