# Two entry points: `make demo` (install + run the workflow on the bundled phantoms) and
# `make test` (install + the full check suite). Both start from plain Python 3.11. `make check` is the
# inner loop once installed: lint and the tests that run no Snakemake, Slurm or browser.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
SNAKEMAKE := $(BIN)/snakemake

.PHONY: setup baselines demo report test check ci-demo lint clean-demo

# The two baseline environments build in parallel (each is mostly pip waiting on I/O).
setup: $(VENV)/.installed
	$(MAKE) --no-print-directory -j2 baselines

# CPU install: torch pinned to 2.13.0 (CPU build), sam2 built without build isolation and without
# dependencies so that no CUDA torch or torchvision is pulled in (see docs/install.md).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q torch==2.13.0
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --no-build-isolation --no-deps sam2==1.1.0
	$(BIN)/pip install -q -e ".[etsam,workflow,zarr,copick,test]" "torch==2.13.0"
	@if $(BIN)/python -c "import torchvision" 2>/dev/null; then echo "torchvision must not be installed on CPU" >&2; exit 1; fi
	touch $@

# The two baseline tools, each in its own virtual environment under venvs/ (selected by the
# config's `baselines:` section; conda users have workflow/envs/membrain.yaml and workflow/envs/tardis.yaml instead).
# torch is installed first, pinned, and kept by a constraint file so that neither tool pulls a CUDA
# torch; torchvision must stay out (PyPI's build fails to import on CPU torch 2.13 and would break
# membrain through lightning -> torchmetrics). `click` is listed because membrain's CLI imports it but
# typer >= 0.29 no longer depends on it.
BASELINE_VENVS ?= venvs
baselines: $(BASELINE_VENVS)/membrain/.installed $(BASELINE_VENVS)/tardis/.installed

$(BASELINE_VENVS)/membrain/.installed: workflow/envs/constraints-cpu.txt
	rm -rf $(BASELINE_VENVS)/membrain
	$(PYTHON) -m venv $(BASELINE_VENVS)/membrain
	$(BASELINE_VENVS)/membrain/bin/pip install -q --upgrade pip setuptools wheel
	$(BASELINE_VENVS)/membrain/bin/pip install -q torch==2.13.0
	$(BASELINE_VENVS)/membrain/bin/pip install -q -c workflow/envs/constraints-cpu.txt membrain-seg==0.0.10 click
	@if $(BASELINE_VENVS)/membrain/bin/python -c "import torchvision" 2>/dev/null; then echo "torchvision must not be installed in $(BASELINE_VENVS)/membrain" >&2; exit 1; fi
	$(BASELINE_VENVS)/membrain/bin/membrain --help >/dev/null
	touch $@

$(BASELINE_VENVS)/tardis/.installed: workflow/envs/constraints-cpu.txt
	rm -rf $(BASELINE_VENVS)/tardis
	$(PYTHON) -m venv $(BASELINE_VENVS)/tardis
	$(BASELINE_VENVS)/tardis/bin/pip install -q --upgrade pip setuptools wheel
	$(BASELINE_VENVS)/tardis/bin/pip install -q torch==2.13.0
	$(BASELINE_VENVS)/tardis/bin/pip install -q -c workflow/envs/constraints-cpu.txt tardis-em==0.3.36
	@if $(BASELINE_VENVS)/tardis/bin/python -c "import torchvision" 2>/dev/null; then echo "torchvision must not be installed in $(BASELINE_VENVS)/tardis" >&2; exit 1; fi
	$(BASELINE_VENVS)/tardis/bin/python -c "import tardis_em"
	touch $@

DEMO_CONFIG ?= config/demo/config.yaml
demo: setup
	$(SNAKEMAKE) --cores $(CORES) --configfile $(DEMO_CONFIG) --profile profiles/local
	$(MAKE) --no-print-directory report
	@echo "Demo outputs are in results/, the report in report.html: etsam_trained was trained here on synthetic phantoms (results/training/training.json); every other segmentation comes from untrained weights."

# The report of the last run of $(DEMO_CONFIG) (or REPORT_CONFIG=...): one HTML file to open in a browser.
REPORT_CONFIG ?= $(DEMO_CONFIG)
report: setup
	$(SNAKEMAKE) --cores $(CORES) --configfile $(REPORT_CONFIG) --profile profiles/local --report report.html

define LINT
	$(BIN)/ruff check src tests workflow/scripts benchmarks docs
	$(BIN)/ruff format --check src tests workflow/scripts benchmarks docs
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/snakefmt --check workflow/Snakefile workflow/rules
	$(SNAKEMAKE) --lint --configfile config/config.yaml
endef

lint: setup
	$(LINT)

# The inner loop (an installed .venv; it installs nothing): the lint, then every test not marked
# `workflow` (runs Snakemake), `browser`, `slurm` or `slow` (pyproject.toml's markers).
CHECK_MARKERS ?= not workflow and not browser and not slurm and not slow
check:
	@test -x $(BIN)/pytest || { echo "make check: no $(BIN)/pytest; run make setup first" >&2; exit 1; }
	$(LINT)
	$(BIN)/pytest -q -p no:cacheprovider -m "$(CHECK_MARKERS)" --durations=15

# Three sessions side by side, so that one's waiting is another's work: the Slurm cluster test (~4 min,
# mostly waiting on Slurm's scheduler and status polls; its own pytest session and temporary folder), the
# CI demo (`make ci-demo`), and the rest of the suite. The logs of the first two are shown after the
# rest; the target fails if any of the three fails.
TEST_LOGS ?= /tmp/tomoseg-test-logs
test: setup lint
	@rm -rf $(TEST_LOGS); mkdir -p $(TEST_LOGS); \
	$(BIN)/pytest -ra -m slurm -p no:cacheprovider --basetemp=$(TEST_LOGS)/slurm-tmp > $(TEST_LOGS)/slurm.log 2>&1 & \
	slurm_pid=$$!; \
	$(MAKE) --no-print-directory ci-demo > $(TEST_LOGS)/ci-demo.log 2>&1 & \
	demo_pid=$$!; \
	$(BIN)/pytest -ra -m "not slurm" --durations=15; rest=$$?; \
	wait $$slurm_pid; slurm=$$?; wait $$demo_pid; demo=$$?; \
	echo "--- Slurm cluster tests (pytest -m slurm, run beside the others): exit $$slurm ---"; \
	cat $(TEST_LOGS)/slurm.log; \
	echo "--- CI demo (make ci-demo, run beside the tests): exit $$demo, last lines ---"; \
	tail -n 30 $(TEST_LOGS)/ci-demo.log; \
	test $$rest -eq 0 -a $$slurm -eq 0 -a $$demo -eq 0

# The CI variant of the demo, end to end, in a scratch directory.
ci-demo: setup
	rm -rf .ci-demo && mkdir -p .ci-demo && cp -r config .ci-demo/
	$(SNAKEMAKE) --cores $(CORES) --directory .ci-demo --snakefile workflow/Snakefile \
		--configfile .ci-demo/config/demo/ci.yaml .ci-demo/config/demo/ci_trained.yaml --profile profiles/local
	rm -rf .ci-demo
