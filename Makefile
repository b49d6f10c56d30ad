# satscope: `make demo` and `make test` work on a fresh machine; they build .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test lint fmt bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: its CPU build is what a CPU-only machine must get (never the CUDA one).
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[server,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/satscope demo

lint: install
	$(PY) -m ruff check .

test: install lint
	$(PY) -m pytest $(PYTEST_ARGS)

fmt: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
