# One-command set-up. `make test` and `make demo` work from a fresh clone;
# each step is skipped when its inputs have not changed.
SHELL := /bin/bash
PYTHON_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(wildcard protos/*.proto)
PB_STAMP := serving/pb/.generated
JARS_STAMP := .cache/jars/.fetched
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup venv proto jars test test-unit test-flink demo lint format clean

setup: venv proto jars

venv: $(STAMP)
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,train]'
	@touch $@

proto: $(PB_STAMP)
$(PB_STAMP): $(PROTOS) scripts/gen-protos.sh $(STAMP)
	PYTHON=$(PY) scripts/gen-protos.sh
	@touch $@

jars: $(JARS_STAMP)
$(JARS_STAMP): scripts/jvm-deps.pom.xml scripts/fetch-jars.sh
	scripts/fetch-jars.sh
	@touch $@

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/modelserving demo $(DEMO_ARGS)

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .cache serving/pb build *.egg-info
