# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   - create .venv, install, create the project-local AiiDA profile, run the main job
#   make test   - create .venv, install, run the test suite
# Both are idempotent: a second run skips what is done.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sseff-installed
# The project keeps its AiiDA configuration in the checkout, never in the user's home by surprise.
export AIIDA_PATH := $(CURDIR)/.aiida
# verdi must be on the PATH for the daemon (aiida-core looks it up there)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PROFILE ?= sseff
PROTOCOL ?= fast
PYTEST_ARGS ?=
# two test processes (pytest-xdist), each with its own temporary profile, one thread each: a serial run keeps about
# one core busy, so two workers halve the wall time on a 2-core CI runner; PYTEST_WORKERS=0 runs serially
PYTEST_WORKERS ?= 2

.PHONY: install demo test lint profile clean-profile docs test-production

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel

# torch first, pinned: on these machines 2.13.0 is a CPU build on local disk; a bare `torch` requirement pulled in
# by a dependency would otherwise fetch a multi-GB CUDA build.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

profile: $(STAMP)
	$(BIN)/aiida-sseff setup --profile-name $(PROFILE)

demo: profile
	$(BIN)/aiida-sseff -p $(PROFILE) demo --protocol $(PROTOCOL) --output results

test: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check aiida_sseff tests benchmarks examples

clean-profile:
	-$(BIN)/verdi -p $(PROFILE) daemon stop
	rm -rf .aiida

# The production profile (issue #13): PostgreSQL + RabbitMQ + 2 daemon workers + a loopback SSH/Slurm computer, as
# root without systemd; then the suite that needs them. `make test` needs none of this.
PROD_PROFILE ?= sseff-prod
test-production: $(STAMP)
	bash scripts/production/install.sh
	bash scripts/production/start.sh
	SSEFF_PROD_PROFILE=$(PROD_PROFILE) bash scripts/production/profile.sh
	SSEFF_PROD_PROFILE=$(PROD_PROFILE) OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m production tests/production $(PYTEST_ARGS)
