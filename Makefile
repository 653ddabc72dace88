# The README's two commands: `make run` and `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS_FILE ?=
BIN = $(VENV)/bin

.PHONY: install chromium run test test-again data subsets train

# Re-install whenever the dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

# `make run MODELS_FILE=examples/resnet18.toml` serves your own models too (README: Bring your own model).
run: install
	$(if $(MODELS_FILE),$(BIN)/convscope serve --models-file '$(MODELS_FILE)',$(BIN)/uvicorn convscope.main:app) \
		--host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium through Playwright (never Playwright's own browser
# download). Installed only when missing; sudo only when not already root.
CHROMIUM = /usr/bin/chromium
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)

chromium: $(CHROMIUM)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y --no-install-recommends chromium

test: install chromium
	$(BIN)/python -m pytest

# The numeric tests (engine and API) once more as another machine would run them: another torch
# thread count and a shuffled order (.ci/run does this after `make test`). SEED=N repeats an order;
# THREADS=N picks the count.
THREADS ?= 4
SEED ?= $(shell date +%s)
test-again: install
	CONVSCOPE_TORCH_THREADS=$(THREADS) OMP_NUM_THREADS=$(THREADS) $(BIN)/python -m pytest -p no:cacheprovider \
		-p random_order --random-order-bucket=global --random-order-seed=$(SEED) tests/engine tests/api

# Not needed to run or test: the raw data and the training of the built-in models.
data: install
	$(BIN)/python -m models.training.data fetch

# The dataset subsets shipped in data/ for the training lab (data/README.md), rebuilt from the cache.
subsets: data
	$(BIN)/python -m models.training.subsets

train: data
	$(BIN)/python -m models.training.train mnist-lenet
	$(BIN)/python -m models.training.train fashion-tinyvgg
