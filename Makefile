# Two commands do everything on a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DATA   ?= ./data
PORT   ?= 9093
KAFKA_PORT ?= 9092
HTTP_PORT ?= 9094

.PHONY: run test lint mypy-tree bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(PY) -m logstore.broker --data-dir $(DATA) --host 127.0.0.1 --port $(PORT) --kafka-port $(KAFKA_PORT) --http-port $(HTTP_PORT)

# The gates, cheapest first: lint, formatting, types (0 errors), then the suite (warnings are errors).
# The fast local loop skips the real brokers and subprocesses: `$(PY) -m pytest -m "not integration"`.
test: $(VENV)/.installed-test mypy-tree
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

# mypy names modules by path, so it reads the installed layout from a tree of links (see [tool.mypy]):
# build/mypy/logstore/ holds the engine's entries, then broker/, client/, wire/ and bench/.
mypy-tree:
	rm -rf build/mypy && mkdir -p build/mypy/logstore
	for entry in logstore/*; do ln -s "$$PWD/$$entry" build/mypy/logstore/; done
	for package in broker client wire bench; do ln -s "$$PWD/$$package" build/mypy/logstore/$$package; done

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-test

# The micro-benchmarks; also installs the bench extra (matplotlib) that `logstore perf sweep` plots with.
bench: $(VENV)/.installed-bench
	$(PY) -m pytest bench --benchmark-enable --benchmark-only -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info
