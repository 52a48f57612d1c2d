#!/usr/bin/env bash
# Run by Snakemake inside the new conda environment of membrain.yaml, right after conda created it
# (https://snakemake.readthedocs.io/en/stable/snakefiles/deployment.html, post-deployment scripts).
set -euo pipefail
# tomoseg itself, without dependencies (the environment file has them): from the checkout the workflow
# runs from (workflow/rules/common.smk sets TOMOSEG_SOURCE to it), or from what TOMOSEG_SOURCE names
# when the workflow was deployed without a checkout (a wheel, or git+https://...@<tag>).
python -m pip install --no-deps "${TOMOSEG_SOURCE:?set TOMOSEG_SOURCE to a tomoseg checkout, wheel or git URL}"
