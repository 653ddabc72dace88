# The README's two commands: `make run` and `make test`. Both set up the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN = $(VENV)/bin

.PHONY: install run test data train

# Re-install whenever the dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/uvicorn app.main:app --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest

# Not needed to run or test: the raw data and the training of the built-in models.
data: install
	$(BIN)/python -m models.data fetch

train: data
	$(BIN)/python -m models.train mnist-lenet
	$(BIN)/python -m models.train fashion-tinyvgg
