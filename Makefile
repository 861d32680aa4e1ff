# Every target the README names. `make test` is what CI runs (.ci/run).
PYTHON ?= python3

.PHONY: demo test lint bench render

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
