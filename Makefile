# Two entry points: `make demo` (install + run the workflow on the bundled phantoms) and
# `make test` (install + the full check suite). Both start from plain Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE := $(BIN)/snakemake

.PHONY: setup demo test ci-demo lint clean-demo

setup: $(VENV)/.installed

# CPU install: torch pinned to 2.13.0 (CPU build), sam2 built without build isolation and without
# dependencies so that no CUDA torch or torchvision is pulled in (see README, "Installing").
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.13.0
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation --no-deps sam2==1.1.0
	$(BIN)/pip install -q -e ".[workflow,test]" "torch==2.13.0"
	@if $(BIN)/python -c "import torchvision" 2>/dev/null; then echo "torchvision must not be installed on CPU" >&2; exit 1; fi
	touch $@

demo: setup
	$(SNAKEMAKE) --cores $(CORES) --configfile config/demo/config.yaml --profile profiles/local
	@echo "Demo outputs are in results/ (all segmentations there come from untrained weights)."

lint: setup
	$(BIN)/ruff check src tests workflow/scripts benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint --configfile config/config.yaml

test: setup lint
	$(BIN)/pytest -ra
	$(MAKE) ci-demo

# The CI variant of the demo, end to end, in a scratch directory.
ci-demo: setup
	rm -rf .ci-demo && mkdir -p .ci-demo && cp -r config .ci-demo/
	$(SNAKEMAKE) --cores $(CORES) --directory .ci-demo --snakefile Snakefile \
		--configfile .ci-demo/config/demo/ci.yaml --profile profiles/local
	rm -rf .ci-demo
