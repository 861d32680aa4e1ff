# Every target the README names. `make test` is what CI runs (.ci/run).
PYTHON ?= python3

.PHONY: demo test lint bench render e2e

demo:
	$(PYTHON) -m pip install -q . && kmeans-monitor demo

test:
	./scripts/install-test-deps
	$(MAKE) lint
	$(PYTHON) -m pytest

lint:
	ruff check monitor tests bench
	ruff format --check monitor tests bench
	mypy

bench:
	$(PYTHON) -m pip install -q -e '.[bench]'
	$(PYTHON) -m bench lloyd
	$(PYTHON) -m bench silhouette
	$(PYTHON) -m bench pipeline

render:
	kmeans-monitor render

# The end-to-end suite alone: real Prometheus, Alertmanager, the simulated-telemetry
# exporter and the daemon on 127.0.0.1 (docs/e2e.md). `make test` runs it too.
e2e:
	./scripts/install-test-deps
	$(PYTHON) -m pytest tests/e2e
