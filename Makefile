# Everything a new machine needs goes through these targets: nothing is installed by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
TOOLS := .tools
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
PROTOS := $(wildcard proto/notes/v1/*.proto)

.PHONY: breaking install install-run lock generate generate-client check-generated lint run test bench clean

# Every install is held to constraints.txt (`make lock` regenerates it with pip-compile), so CI
# and every make target get the same versions of everything, transitive ones included.
# `install` (make test, lint, bench, CI): the service with the postgres and dev extras;
# `install-run` (make run): only what serving needs.
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,postgres]'
	touch $@ $(VENV)/.installed-run

install-run: $(VENV)/.installed-run

$(VENV)/.installed-run: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e .
	touch $@

# The lock: every version, transitive ones included, for both extras. The grpcio family
# (grpcio, -tools, -status, -health-checking, -reflection, -testing) must share one minor
# version: tests/test_install.py checks it.
lock: install
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --extra dev --extra postgres \
		--output-file constraints.txt pyproject.toml

$(BUF):
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --silent --no-save --no-audit --no-fund @bufbuild/buf@$(BUF_VERSION)

# Code generated from proto/ into DIR (default generated/).
DIR ?= generated
generate: install
	mkdir -p $(DIR)/notes/v1
	$(PY) -m grpc_tools.protoc -I proto --python_out=$(DIR) --pyi_out=$(DIR) \
		--grpc_python_out=$(DIR) $(PROTOS)
	touch $(DIR)/notes/__init__.py $(DIR)/notes/v1/__init__.py

# The client package's stubs (clients/python), generated for the oldest runtime it supports:
# messages by protoc of protobuf 5.26 (grpcio-tools 1.64), services by grpcio-tools 1.62 (later
# plugins add a check that refuses older grpcio). Modules move under notes_client._gen; the
# descriptors keep their proto file names.
CLIENT_GEN := clients/python/src/notes_client/_gen
GEN_PB := $(TOOLS)/gen-pb526
GEN_GRPC := $(TOOLS)/gen-grpc162
generate-client:
	test -x $(GEN_PB)/bin/python || ($(PYTHON) -m venv $(GEN_PB) && \
		$(GEN_PB)/bin/pip install --quiet grpcio-tools==1.64.1 protobuf==5.26.1)
	test -x $(GEN_GRPC)/bin/python || ($(PYTHON) -m venv $(GEN_GRPC) && \
		$(GEN_GRPC)/bin/pip install --quiet grpcio-tools==1.62.3)
	rm -rf $(CLIENT_GEN)/notes && mkdir -p $(CLIENT_GEN)/notes/v1
	$(GEN_PB)/bin/python -m grpc_tools.protoc -I proto --python_out=$(CLIENT_GEN) \
		--pyi_out=$(CLIENT_GEN) $(PROTOS)
	$(GEN_GRPC)/bin/python -m grpc_tools.protoc -I proto --grpc_python_out=$(CLIENT_GEN) $(PROTOS)
	sed -i -e 's/^from notes\.v1 import/from notes_client._gen.notes.v1 import/' \
		-e "s/'notes\.v1\.\([a-z_]*_pb2\)'/'notes_client._gen.notes.v1.\1'/" \
		$(CLIENT_GEN)/notes/v1/*.py $(CLIENT_GEN)/notes/v1/*.pyi
	touch $(CLIENT_GEN)/__init__.py $(CLIENT_GEN)/notes/__init__.py $(CLIENT_GEN)/notes/v1/__init__.py

check-generated: install
	rm -rf $(TOOLS)/gen-check && mkdir -p $(TOOLS)/gen-check
	$(MAKE) --no-print-directory generate DIR=$(TOOLS)/gen-check
	diff -r -x __pycache__ generated $(TOOLS)/gen-check
	@echo "generated/ is up to date"

lint: install $(BUF)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd proto && ../$(BUF) lint
	$(MAKE) --no-print-directory breaking

# The contract stays compatible with the last release (proto-baseline/, updated at release).
breaking: $(BUF)
	cd proto && ../$(BUF) breaking --against ../proto-baseline

run: install-run
	mkdir -p var
	$(BIN)/notes serve

test: install
	$(BIN)/pytest

bench: install
	$(PY) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) build *.egg-info
