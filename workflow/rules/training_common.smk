# Training's inputs (training.smk, docs/training.md); TRAINING and TRAIN_ROWS are read in common.smk, where the
# data rules take training rows too.

TRAIN_DIR = "results/training"


def training_file(tomo, name):
    """A training row's tomogram or truth: a local row's file, else what the data rules make under
    results/data/{tomo}/ (phantoms, portal downloads, copick imports), where the training job looks.
    """
    row = TRAIN_ROWS[tomo]
    column = "path" if name == "tomogram.mrc" else "truth_path"
    return row[column] if row["source"] == "local" else layout.data_path(tomo, name)


def training_inputs(wildcards):
    """The training sheet and every train/val row's files (an error when no sheet is configured)."""
    if not TRAIN_ROWS:
        raise WorkflowError(
            "training: set training.runs to a runs sheet with split train rows (docs/training.md)"
        )
    files = {"runs": TRAINING["runs"]}
    for tomo in TRAIN_ROWS:
        files[f"{tomo}_tomogram"] = training_file(tomo, "tomogram.mrc")
        files[f"{tomo}_truth"] = training_file(tomo, "groundtruth.mrc")
    if TRAINING.get("init"):
        files["init"] = TRAINING["init"]
    return files
