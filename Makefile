# eda_lab: two commands for everyone, a few more for instructors and contributors.
#
#   make lab    set up .venv (first time only), make or update workspace/ (your copies
#               of the notebooks) and open JupyterLab there
#   make test   the same setup, then every check CI runs
#   make unit   the developer's fast loop: every test but notebooks and browser
#
# Only python3 (3.11 or newer) is needed; everything else goes into .venv.
# Setup is skipped while pyproject.toml and the JupyterLab overrides are unchanged
# (a stamp file in .venv records the last install), so a second call is fast.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What a learner needs (make lab), then the test tools on top (make test).
STAMP := $(VENV)/.eda_lab-installed
TEST_STAMP := $(VENV)/.eda_lab-test-installed
BENCH_STAMP := $(VENV)/.eda_lab-bench-installed
OVERRIDES_SRC := tools/jupyterlab_overrides.json
OVERRIDES := $(VENV)/share/jupyter/lab/settings/overrides.json
PIP := $(BIN)/python -m pip --disable-pip-version-check
NOTEBOOKS = $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

# JupyterLab refuses to start as root unless told it is on purpose.
LAB_FLAGS :=
ifeq ($(shell id -u),0)
LAB_FLAGS += --allow-root
endif

.PHONY: help setup lab lab-master test unit lint run html bench notebooks clean torture walk

help:
	@echo "make lab        set up .venv, make or update workspace/ and start JupyterLab there"
	@echo "make lab-master for instructors: JupyterLab on the master notebooks/ (with solutions)"
	@echo "make test       set up .venv and run every check (ruff, mypy, unit tests, nbval, papermill)"
	@echo "make unit       the fast loop: every test except the notebook and browser ones"
	@echo "make torture    the crash suite with TORTURE_TRIALS (default 200) trials per component"
	@echo "make walk       the API walk with WALK_EXAMPLES (default 150) random bad arguments each"
	@echo "make lint       ruff over the whole repository"
	@echo "make run        run every notebook with papermill into runs/ (eda-lab run)"
	@echo "make html       offline HTML pages of the notebooks in site/ (eda-lab html)"
	@echo "make bench      install the bench extra and run every benchmarks/bench_*.py"
	@echo "make notebooks  re-execute every notebook in place, storing outputs and widget state"
	@echo "make clean      remove .venv, runs/ and caches"

setup: $(STAMP)

$(STAMP): pyproject.toml $(OVERRIDES_SRC)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --progress-bar off -e .
	@mkdir -p $(dir $(OVERRIDES))
	cp $(OVERRIDES_SRC) $(OVERRIDES)
	@touch $@

# The test tools (pytest, nbval, playwright, ruff, mypy, hypothesis, ...): only
# for make test and the developer targets, never for a learner's make lab.
$(TEST_STAMP): $(STAMP)
	$(PIP) install --progress-bar off -e '.[test]'
	@touch $@

# The learner's copies: made the first time, never overwritten (eda-lab workspace
# --reset NN restores one), new lessons added. They and the masters are signed in the
# trust store the server reads, so stored charts and widgets show on first open.
lab: $(STAMP)
	$(BIN)/eda-lab workspace --dir workspace
	$(BIN)/jupyter lab $(LAB_FLAGS) workspace/

# The masters are tracked: autosave is off there (tools/master_settings.py says why).
MASTER_SETTINGS := $(VENV)/share/eda-lab/master-settings

lab-master: $(STAMP)
	$(BIN)/jupyter trust $(NOTEBOOKS)
	$(BIN)/python tools/master_settings.py $(MASTER_SETTINGS)
	$(BIN)/jupyter lab $(LAB_FLAGS) --LabApp.app_settings_dir=$(MASTER_SETTINGS) notebooks/

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest -m "not notebooks and not browser"

# The crash suite (SIGKILL trials, crash images, damaged files) with more trials than
# make test's 20 per component: `make torture TORTURE_TRIALS=1000` for more certainty.
TORTURE_TRIALS ?= 200
torture: $(TEST_STAMP)
	TORTURE_TRIALS=$(TORTURE_TRIALS) $(BIN)/python -m pytest -m crash tests/crash

# The API walk (bad arguments to every public callable) with WALK_EXAMPLES random draws
# per callable instead of make test's 12 fixed ones: about 2 minutes for 150.
WALK_EXAMPLES ?= 150
walk: $(TEST_STAMP)
	WALK_EXAMPLES=$(WALK_EXAMPLES) $(BIN)/python -m pytest tests/test_api_walk.py

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

run: $(STAMP)
	$(BIN)/eda-lab run --output runs

html: $(STAMP)
	$(BIN)/eda-lab html --output site

$(BENCH_STAMP): $(TEST_STAMP)
	$(PIP) install --progress-bar off -e '.[test,bench]'
	@touch $@

bench: $(BENCH_STAMP)
	@set -e; for script in benchmarks/bench_*.py; do \
		test -e "$$script" || continue; \
		echo "# $$script" >&2; \
		$(BIN)/python "$$script"; \
	done

notebooks: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.store_widget_state=True \
		--ExecutePreprocessor.timeout=300 $(NOTEBOOKS)
	$(BIN)/jupyter trust $(NOTEBOOKS)

clean:
	rm -rf $(VENV) runs site build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name .ipynb_checkpoints -type d -prune -exec rm -rf {} +
