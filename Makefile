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
# Tools whose pins clash with apache-beam's get a venv of their own (scripts/sidevenv-*.txt).
SKLEARN2PMML_STAMP := .cache/venvs/sklearn2pmml/.installed
# MLServer, the model server the oip format's tests call (its fastapi, protobuf and grpcio pins clash too).
MLSERVER_STAMP := .cache/venvs/mlserver/.installed
SERVING_JAR := .cache/jars/serving/modelserving-flink.jar
JAVA_SOURCES := $(shell find scripts/java -name '*.java' 2>/dev/null)
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: setup venv proto jars sidevenvs browser test test-unit test-flink demo lint format clean

setup: venv proto jars sidevenvs

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

jars: $(JARS_STAMP) $(SERVING_JAR)
$(JARS_STAMP): scripts/jvm-deps.pom.xml scripts/fetch-jars.sh
	scripts/fetch-jars.sh
	@touch $@

# The project's Java helpers (scripts/java), compiled against PyFlink's jars and the connector.
$(SERVING_JAR): $(JAVA_SOURCES) scripts/build-jars.sh $(JARS_STAMP) $(STAMP)
	PYTHON=$(PY) scripts/build-jars.sh

sidevenvs: $(SKLEARN2PMML_STAMP) $(MLSERVER_STAMP)
$(SKLEARN2PMML_STAMP): scripts/sidevenv-sklearn2pmml.txt
	@test -x .cache/venvs/sklearn2pmml/bin/python || $(PYTHON_BOOT) -m venv .cache/venvs/sklearn2pmml
	.cache/venvs/sklearn2pmml/bin/python -m pip install -q -r scripts/sidevenv-sklearn2pmml.txt
	@touch $@
$(MLSERVER_STAMP): scripts/sidevenv-mlserver.txt
	@test -x .cache/venvs/mlserver/bin/python || $(PYTHON_BOOT) -m venv .cache/venvs/mlserver
	.cache/venvs/mlserver/bin/python -m pip install -q -r scripts/sidevenv-mlserver.txt
	@touch $@

# Headless Chromium for the dashboard test: Debian's packages, installed only when missing.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  echo "installing chromium and chromium-driver (apt-get)"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -qq chromium chromium-driver; \
	fi

# The set-up steps download independently (pip, Maven, apt), so they run side by side. Then the tests
# by cost (scripts/run-tests.sh): the unit layer on both cores with the CI fault campaign beside it,
# then the broker- and Flink-bound layers on two workers, a module each.
test:
	@$(MAKE) --no-print-directory -j4 setup browser
	@$(MAKE) --no-print-directory lint
	PY=$(PY) scripts/run-tests.sh $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/modelserving demo $(DEMO_ARGS)

lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .cache serving/pb build *.egg-info
