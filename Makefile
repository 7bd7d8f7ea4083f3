# Dispatch. `make run` starts everything for development; `make test` runs the suite
# against real PostgreSQL and Redis (started or installed when missing).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PYTEST_ARGS ?=

.PHONY: run test test-faults bench venv services migrate clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

migrate: venv
	@mkdir -p var/broker/out var/broker/processed
	$(PY) manage.py migrate --noinput -v 0

run: venv migrate
	@$(PY) manage.py bootstrap_demo
	@$(PY) manage.py collectstatic --noinput -v 0
	$(VENV)/bin/honcho -f Procfile.dev start

services:
	@scripts/ensure-services.sh

# The fault-injection suite (real processes killed under load, a Redis outage: ~5 min) runs
# separately: `make test-faults`; .ci/run runs both.
test: venv services
	$(VENV)/bin/pytest -m "not faults" $(PYTEST_ARGS)

test-faults: venv services
	$(VENV)/bin/pytest -m faults $(PYTEST_ARGS)

bench: venv
	@scripts/ensure-services.sh --bench
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var
