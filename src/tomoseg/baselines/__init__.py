"""Stage: the Membrain-Seg and TARDIS baselines, each run in its own environment through a driver script."""
