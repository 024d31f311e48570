# `make all` regenerates every report under reports/; `make test` runs the tests.
# Both create the virtual environment from requirements.lock on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PRESET ?= quick

# Quiet TensorFlow, which neural-tangents imports but this study does not use.
export TF_CPP_MIN_LOG_LEVEL := 3
export PIP_DISABLE_PIP_VERSION_CHECK := 1

EXPERIMENTS := nngp ntk regression lazy mup
LIBRARY     := $(wildcard replication/*.py) requirements.lock

.PHONY: all setup test bench clean-reports .FORCE $(EXPERIMENTS)

all: $(EXPERIMENTS)

# The environment is rebuilt from scratch whenever the lock file changes:
# installed without resolution, so the lock is exactly what runs. The checkout
# itself goes on the venv's path through a .pth file (what an editable install
# amounts to, without needing build tools in the venv).
setup: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -c 'import site, os; open(os.path.join(site.getsitepackages()[0], "replication.pth"), "w").write(os.getcwd() + "\n")'
	touch $@

# One report per experiment, rebuilt only when its module, the library or the
# lock changed; `make ntk FORCE=1` reruns one regardless.
$(EXPERIMENTS): %: reports/%.md
reports/%.md: replication/experiments/%.py $(LIBRARY) $(if $(FORCE),.FORCE) | $(STAMP)
	$(PY) -m replication run $* --preset $(PRESET) --out reports
.FORCE:
# mup's section after training runs lazy's task and ladders.
reports/mup.md: replication/experiments/lazy.py

test: $(STAMP)
	$(PY) -m pytest -q

# Benchmarks are measurements, not build products of the code alone: always rerun.
bench: $(STAMP)
	$(PY) -m replication bench --preset $(PRESET) --out reports

clean-reports:
	rm -f $(foreach e,$(EXPERIMENTS),reports/$(e).md reports/$(e).json) reports/figures/*
