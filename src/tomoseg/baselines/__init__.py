"""Stage: the Membrain-Seg and TARDIS baselines, each run in its own environment through a driver script.

`membrain.run_membrain` and `tardis.run_tardis` fill in the skeleton `runner.run_baseline`, which runs a
driver script through `driver.run_driver`; `checkpoints` checks for the published weights and makes tiny
random ones. Imports only `tomoseg.core`.
"""
