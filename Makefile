# Two commands do all the set-up on a fresh machine with Python 3.11, git and make:
#   make demo   shipit's main job: watch a project and ship edits into a local cluster it starts
#   make test   lint and the whole test suite (what CI runs, through .ci/run)
#   make quick  the tests that start no cluster and no process (pytest -m "not cluster")

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo watch test test-on quick lint bench real clean fs-tools

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(PINS)
	touch $@

demo: install
	$(BIN)/python examples/demo.py

watch: install
	$(BIN)/shipit watch examples/montecarlo

lint: install
	$(BIN)/ruff check shipit tests benchmarks examples conftest.py
	$(BIN)/ruff format --check shipit tests benchmarks examples conftest.py
	$(BIN)/mypy shipit

test: lint fs-tools
	$(BIN)/python -m pytest

# The whole suite on another Python, or on the oldest Dask the pyproject allows, each in a
# venv of its own (the node venvs the tests make see that venv's Dask):
#   make test-on PY=3.10      make test-on PY=3.13      make test-on DASK=oldest
PY ?= 3.11
DASK ?= newest
DASK_FLOOR := $(shell sed -n 's/^ *"dask>=\([0-9.]*\)",$$/\1/p' pyproject.toml)
# pyenv's interpreter of that version where pyenv has one (its shim needs it selected).
PY_BIN = $(shell p=$$(ls -d "$$(pyenv root 2>/dev/null)"/versions/$(PY).*/bin/python$(PY) \
	2>/dev/null | tail -1); echo $${p:-$$(command -v python$(PY))})
test-on:
	$(MAKE) test VENV=.venv-$(PY)-$(DASK) PYTHON=$(PY_BIN) \
		PINS="$(if $(filter oldest,$(DASK)),dask==$(DASK_FLOOR) distributed==$(DASK_FLOOR))"

# File systems with Windows and macOS rules (FAT, exFAT through FUSE) for tests/test_fsrules.py.
# Best effort: as root with apt-get they are installed once; elsewhere those tests skip, saying why.
FS_TOOLS := fusefat exfat-fuse dosfstools exfatprogs
fs-tools:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v fusefat >/dev/null; then \
		echo "installing $(FS_TOOLS) for the file-system tests"; \
		(timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 \
			apt-get install -y -qq --no-install-recommends $(FS_TOOLS)) >/dev/null 2>&1 \
			|| echo "could not install $(FS_TOOLS): the file-system tests will skip"; \
	fi

# The tests that start no cluster and no shipit process, and the doctests: seconds, not minutes.
quick: install
	$(BIN)/python -m pytest -m "not cluster"

bench: install
	$(BIN)/python benchmarks/bench_watch.py
	$(BIN)/python benchmarks/bench_large.py

# shipit on real projects from the package index against a real mixed cluster (downloads).
real: install
	$(BIN)/python tests/realprojects.py

clean:
	rm -rf $(VENV) .venv-* .pytest_cache .ruff_cache
