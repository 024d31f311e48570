# `make all` regenerates every report under reports/; `make test` runs the tests.
# Both create the virtual environment from requirements.lock on first use.

# The first of these that runs and is Python 3.11 to 3.13; `make test PYTHON=python3.13` picks one.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
            $$p -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null \
            && { command -v $$p; break; }; done)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV   := .venv
PY     := $(VENV)/bin/python
# One stamp per interpreter version: choosing another Python rebuilds the environment.
STAMP  := $(VENV)/.installed-$(PYTHON_VERSION)
PRESET ?= quick
REPORTS ?= reports

export PIP_DISABLE_PIP_VERSION_CHECK := 1
# XLA's compiled programs, kept on disk across runs and shared by every process (pytest's
# workers, the experiments run side by side): a program compiled once is loaded, not recompiled.
export JAX_COMPILATION_CACHE_DIR ?= $(HOME)/.cache/replication/jax
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS ?= 0.1

# By their wall times in `make all` (ntk 489 s, digits 497 s, mup 355 s, nngp 196 s, regression
# 140 s, lazy 33 s): `make all` runs JOBS experiments at a time, each taking the next one as it
# finishes, so this order ends both lanes of a 2-core machine together (ntk, nngp, regression,
# lazy on one; digits, mup on the other).
EXPERIMENTS := ntk digits nngp mup regression lazy
# Most of an experiment's steps keep one core busy (small matrices, one network at
# a time), so two at once finish sooner on 2 cores. With one accelerator, JOBS=1.
JOBS ?= 2

.PHONY: all setup test bench landing clean-reports $(EXPERIMENTS)

# Every report, JOBS at a time, then the landing page of verdicts built from their sidecars.
# JOBS experiments on as many cores: one BLAS thread each (numpy's), so that one experiment's
# threads do not spin on the core the other needs (measured: regression's kernels took 2.3x their
# time alone beside another experiment with two threads each).
ifneq ($(JOBS),1)
all: export OPENBLAS_NUM_THREADS ?= 1
endif
all: | $(STAMP)
	@$(MAKE) --no-print-directory -j$(JOBS) $(EXPERIMENTS)
	@$(MAKE) --no-print-directory landing

# The environment is rebuilt from scratch whenever the lock file changes:
# installed without resolution, so the lock is exactly what runs. The checkout
# itself goes on the venv's path through a .pth file (what an editable install
# amounts to, without needing build tools in the venv).
setup: $(STAMP)
$(STAMP): requirements.lock pyproject.toml
	@test -n "$(PYTHON_VERSION)" || { echo "make: no Python 3.11-3.13 found; give one with PYTHON=" >&2; exit 2; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -c 'import site, os; open(os.path.join(site.getsitepackages()[0], "replication.pth"), "w").write(os.getcwd() + "\n")'
	touch $@

# One report per experiment, rebuilt only when what it is built from changed:
# the digest of its module, the modules it imports and the lock file
# (replication.provenance) against the one in its sidecar. Contents decide,
# not modification times, so a fresh clone has nothing to redo.
# `make ntk FORCE=1` reruns one regardless.
$(EXPERIMENTS): | $(STAMP)
	@if [ -z "$(FORCE)" ] && $(PY) -m replication.provenance fresh $@ --preset $(PRESET) --out $(REPORTS); \
	then echo "$(REPORTS)/$@.md is up to date"; \
	else echo "$(PY) -m replication run $@ --preset $(PRESET) --out $(REPORTS)"; \
	     $(PY) -m replication run $@ --preset $(PRESET) --out $(REPORTS); fi

landing: | $(STAMP)
	@$(PY) -m replication landing --out $(REPORTS) >/dev/null

# Tests are shared among JOBS worker processes (pytest-xdist); an idle one takes over pending tests of a busy one.
test: $(STAMP)
	$(PY) -m pytest -q -n $(JOBS) --dist worksteal --durations=15

# Benchmarks are measurements, not build products of the code alone: always rerun.
bench: $(STAMP)
	$(PY) -m replication bench --preset $(PRESET) --out $(REPORTS)

clean-reports:
	rm -f $(foreach e,$(EXPERIMENTS),reports/$(e).md reports/$(e).json) reports/README.md reports/figures/*
