#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment of tomoseg.yaml, right after conda created it
# (https://snakemake.readthedocs.io/en/stable/snakefiles/deployment.html, post-deployment scripts).
set -euo pipefail
# sam2 1.1.0 is an sdist whose build imports torch: build it against this environment's torch (no build
# isolation), CPU-only extension off, and without its own requirements (they pull torchvision and a
# CUDA torch; SAM2's video path needs neither). conda's pip section cannot carry these options.
SAM2_BUILD_CUDA=0 python -m pip install --no-build-isolation --no-deps "sam2==1.1.0"
# tomoseg itself, without dependencies (the environment file has them): from the checkout the workflow
# runs from (workflow/rules/common.smk sets TOMOSEG_SOURCE to it), or from what TOMOSEG_SOURCE names
# when the workflow was deployed without a checkout (a wheel, or git+https://...@<tag>).
python -m pip install --no-deps "${TOMOSEG_SOURCE:?set TOMOSEG_SOURCE to a tomoseg checkout, wheel or git URL}"
