from pathlib import Path

from tomoseg.core.runlog import log_to
from tomoseg.training.run import TrainJob, train_processes
from tomoseg.training.settings import preset

log_to(snakemake.log[0])
p = snakemake.params
train_processes(
    TrainJob(
        runs=Path(snakemake.input.runs),
        out=Path(snakemake.output.stage1).parent,
        settings=preset(
            p.preset,
            epochs_stage1=p.epochs_stage1,
            epochs_stage2=p.epochs_stage2,
            batch_size=p.batch_size,
        ),
        data_dir=Path(p.data),
        device=p.device,
        init=Path(snakemake.input.init) if "init" in snakemake.input.keys() else None,
        progress=False,
    ),
    p.processes,  # training.gpus: one DDP process per GPU
)
