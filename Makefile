# Every target the README names. `make test` is what CI runs (.ci/run).
#
# Python packages go into the project's own virtual environment ($(VENV)), never into
# the interpreter that creates it: Debian's python3 is externally managed (PEP 668) and
# refuses `pip install` outside one. The venv does not see the system's site-packages;
# the system tools the tests need (Debian's prometheus packages) are found through PATH.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=  # e.g. make test PYTEST_ARGS='-x tests/shell'
ARGS ?=  # the demo's options, e.g. make demo ARGS='--listen 127.0.0.1:9400 --duration 300'
# Test processes (pytest-xdist): much of the suite waits on daemons, servers and
# Prometheus, so two workers share two cores well. A file stays in one worker, so its
# module fixtures start once (docs/decisions.md, "Tests in two processes").
PYTEST_WORKERS ?= 2

.PHONY: demo test lint bench render e2e venv clean-venv

# The environment itself, made once by $(PYTHON).
$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "make: cannot create $(VENV) with $(PYTHON); on Debian or Ubuntu:" \
	       "apt-get install python3-venv" >&2; exit 1; }

# The package, editable, with what each target needs; again when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/kmeans-monitor demo $(ARGS)

# Java and pyspark are installed here, so a Spark test that would skip fails instead
# (tests/spark/conftest.py): CI cannot pass without running them.
test:
	./scripts/install-test-deps
	$(MAKE) $(VENV)/.installed-test
	$(MAKE) lint
	KMEANS_MONITOR_REQUIRE_SPARK=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/mypy

bench: | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m bench lloyd
	$(BIN)/python -m bench silhouette
	$(BIN)/python -m bench pipeline

render: $(VENV)/.installed
	$(BIN)/kmeans-monitor render

# The end-to-end suite alone: real Prometheus, Alertmanager, the simulated-telemetry
# exporter and the daemon on 127.0.0.1 (docs/e2e.md). `make test` runs it too.
e2e:
	./scripts/install-test-deps
	$(MAKE) $(VENV)/.installed-test
	$(BIN)/python -m pytest tests/e2e

clean-venv:
	rm -rf $(VENV)
